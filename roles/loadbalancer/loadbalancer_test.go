package loadbalancer

import (
	"testing"

	goldenfile "github.com/kinstall/kinstall/internal/golden"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/cluster"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

// The sample cluster (vip mode) and the KubeSphere example (external), plus local-proxy.
func TestRenderedConfigsGolden(t *testing.T) {
	c, err := cluster.Load("../../conf/hosts.ini", "../../conf/common.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := New(&role.Env{Cluster: c})
	m2 := c.Host("master2")
	b, err := r.HAProxyConfig(m2)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "vip-haproxy.cfg", b)
	b, err = r.KeepalivedConfig(m2, "eth0", "24")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "vip-keepalived.conf", b)
	if _, err := r.KeepalivedConfig(m2, "", ""); err == nil {
		t.Error("keepalived without an interface rendered")
	}
	if got := len(Hosts(c)); got != 3 {
		t.Errorf("vip mode runs on %d hosts, want the 3 masters", got)
	}

	c.Config.LoadBalancerMode = "local-proxy"
	b, err = r.HAProxyConfig(c.Host("node1"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "local-proxy-haproxy.cfg", b)
	for _, h := range Hosts(c) {
		if h.Master {
			t.Errorf("local-proxy on master %s", h.Name)
		}
	}
}
