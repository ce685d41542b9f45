package containerruntime

import (
	"testing"

	goldenfile "github.com/kinstall/kinstall/internal/golden"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func host(facts map[string]string) *runner.Host {
	h := &runner.Host{Host: &cluster.Host{Name: "node1"}}
	for k, v := range facts {
		h.SetFact(k, v)
	}
	return h
}

// The config follows the host: a VM with cgroup v2, and a host that is itself a container.
func TestConfigForHostGolden(t *testing.T) {
	cases := map[string]map[string]string{
		"vm-cgroup2.toml":     {FactCgroupV2: "yes", FactSysResource: "yes", FactVarLibOverlay: "no"},
		"container-host.toml": {FactCgroupV2: "no", FactSysResource: "no", FactVarLibOverlay: "yes"},
	}
	for name, facts := range cases {
		b, err := Render(SettingsFor(host(facts)))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, b)
	}
	b, err := HostsTOML("docker.io", []string{"https://mirror.example.com", "http://10.0.0.5:5000"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "docker.io-hosts.toml", b)
}
