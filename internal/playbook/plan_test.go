package playbook

import (
	"os"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/cluster"
)

func TestSamplePlanGolden(t *testing.T) {
	c, err := cluster.Load("../../conf/hosts.ini", "../../conf/common.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	PrintPlan(&b, Rows(Install(c)))
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile("testdata/sample.golden", []byte(b.String()), 0o644)
	}
	want, _ := os.ReadFile("testdata/sample.golden")
	if b.String() != string(want) {
		t.Errorf("plan differs:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestHostSelection(t *testing.T) {
	c, err := cluster.Load("../../conf/examples/kubesphere-ha.ini", "../../conf/examples/kubesphere-ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Row{}
	for _, p := range Rows(Install(c)) {
		got[p.Name] = p
	}
	check := func(name, hosts string, serial int, critical bool) {
		p := got[name]
		if strings.Join(p.Hosts, ",") != hosts || p.Serial != serial || p.Critical != critical {
			t.Errorf("%s: %v serial %d critical %v; want %s %d %v", name, p.Hosts, p.Serial, p.Critical, hosts, serial, critical)
		}
	}
	check("etcd", "master1,master2,master3", 0, true)
	check("control-plane/init", "master1", 0, true)
	check("control-plane/join", "master2,master3", 1, true)
	check("workers", "node1,node2,node3", 0, false)
	check("loadbalancer", "master1,master2,master3,node1,node2,node3", 0, false)
}
