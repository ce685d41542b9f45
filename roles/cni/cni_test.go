package cni

import (
	"testing"

	goldenfile "github.com/kinstall/kinstall/internal/golden"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/runner"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func TestRenderedFilesGolden(t *testing.T) {
	r := &Role{c: &cluster.Cluster{Config: config.Default()}}
	for name, ns := range map[string][]string{"Corefile-forward": {"192.168.0.2", "192.168.0.3"}, "Corefile-no-upstream": nil} {
		got, err := r.Corefile(ns)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, got)
	}
	h := &runner.Host{Host: &cluster.Host{Name: "node1"}}
	if !parseSubnet(h, "FLANNEL_NETWORK=10.233.64.0/18\nFLANNEL_SUBNET=10.233.65.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n") {
		t.Fatal("subnet.env not parsed")
	}
	conf, err := templates.Render("10-kinstall.conflist.tmpl", map[string]string{"Subnet": h.Fact(factSubnet), "MTU": h.Fact(factMTU)})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "10-kinstall.conflist", conf)
	if parseSubnet(h, "FLANNEL_SUBNET=bogus\n") {
		t.Error("a bad subnet.env was accepted")
	}
}
