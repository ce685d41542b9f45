package containerruntime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/config"
	goldenfile "github.com/kinstall/kinstall/internal/golden"
	"github.com/kinstall/kinstall/roles/role"

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
	b, err := HostsTOML("docker.io", []string{"https://mirror.example.com", "http://10.0.0.5:5000"}, "")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "docker.io-hosts.toml", b)
}

// A private registry: credentials in config.toml (quoted for TOML, the file is 0600) and its
// CA in hosts.toml; the pause image follows kube_image_repo.
func TestPrivateRegistryGolden(t *testing.T) {
	cfg := config.Default()
	cfg.KubeImageRepo = "10.0.0.5:5000/k8s"
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("PEM"), 0o600)
	cfg.ContainerdRegistryAuth = []config.RegistryAuth{
		{Registry: "10.0.0.5:5000", Username: "kinstall", Password: `p"w\x`, CAFile: ca},
		{Registry: "registry.example.com", Auth: "tok"},
	}
	r, _ := New(&role.Env{Cluster: &cluster.Cluster{Config: cfg}})
	s, err := r.settings(host(map[string]string{FactCgroupV2: "yes", FactSysResource: "yes"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "private-registry.toml", b)
	b, err = HostsTOML("10.0.0.5:5000", nil, CertsDir+"/10.0.0.5:5000/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "private-registry-hosts.toml", b)
	var names []string
	for _, task := range r.registryFiles() {
		names = append(names, task.Name)
	}
	if strings.Join(names, ",") != "CA of 10.0.0.5:5000,registry 10.0.0.5:5000" {
		t.Errorf("registry files: %v", names)
	}
}
