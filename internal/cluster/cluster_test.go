package cluster

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/inventory"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestCheckReports prints the topology report of each example and compares it with its golden file.
func TestCheckReports(t *testing.T) {
	cases := map[string][2]string{
		"sample":        {"../../conf/hosts.ini", "../../conf/common.yaml"},
		"kubesphere-ha": {"../../conf/examples/kubesphere-ha.ini", "../../conf/examples/kubesphere-ha.yaml"},
	}
	files, _ := filepath.Glob("testdata/*.ini")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ini")
		cases[name] = [2]string{f, strings.TrimSuffix(f, ".ini") + ".yaml"}
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Load(files[0], files[1])
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			c.Check().Print(&b)
			golden(t, filepath.Join("testdata", name+".golden"), b.String())
		})
	}
}

func TestCheckRules(t *testing.T) {
	load := func(name string) *Report {
		c, err := Load("testdata/"+name+".ini", "testdata/"+name+".yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c.Check()
	}
	tests := []struct {
		name      string
		quorum    int
		tolerated int
		errors    int
		contains  string
	}{
		{"etcd2", 2, 0, 0, "2 etcd members are worse than 1"},
		{"etcd4", 3, 1, 0, "use an odd count"},
		{"single", 1, 0, 0, "1 control plane"},
		{"nolb", 2, 1, 1, "no load balancer"},
		{"vipclash", 2, 1, 1, "the VIP 10.1.0.2 is host h2's address"},
		{"etcdworker", 3, 1, 0, "etcd on h4, which is a worker"},
		{"kubespray", 2, 0, 0, "2 etcd members are worse than 1"},
	}
	for _, tt := range tests {
		r := load(tt.name)
		all := strings.Join(append(append(r.Errors, r.Warnings...), r.Notes...), "\n")
		if r.Quorum != tt.quorum || r.Tolerated != tt.tolerated || len(r.Errors) != tt.errors || !strings.Contains(all, tt.contains) {
			t.Errorf("%s: quorum %d tolerated %d errors %v; want %d %d %d errors and %q in:\n%s", tt.name, r.Quorum, r.Tolerated, r.Errors, tt.quorum, tt.tolerated, tt.errors, tt.contains, all)
		}
	}
}

func TestQuorum(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := Quorum(n); got != want {
			t.Errorf("Quorum(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestModelFromKubesprayNames(t *testing.T) {
	c, err := Load("testdata/kubespray.ini", "testdata/kubespray.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Masters) != 2 || len(c.Etcd) != 2 || len(c.Workers) != 1 || c.Config.Mode() != config.LBLocalProxy {
		t.Errorf("masters %d etcd %d workers %d mode %s", len(c.Masters), len(c.Etcd), len(c.Workers), c.Config.Mode())
	}
	if got := c.LoadBalancerAddressFor(c.Host("w1")); got != "127.0.0.1" {
		t.Errorf("a worker in local-proxy mode reaches the API at %s", got)
	}
	if got := c.LoadBalancerAddressFor(c.Host("cp1")); got != "10.0.0.1" {
		t.Errorf("a master reaches the API at %s", got)
	}
}

func TestTargets(t *testing.T) {
	inv, err := inventory.Parse("t.ini", []byte(`[all]
a ansible_host=10.0.0.1 ansible_port=2222 ansible_user=ops ansible_ssh_pass=pw ansible_become=yes ansible_sudo_pass=sp
b ansible_host=10.0.0.2 ip=192.168.1.2 ansible_user=root ansible_ssh_private_key_file=/k ansible_become=False
ks ansible_host=10.0.0.3 ip=10.0.0.3 ansible_user=ubuntu ansible_become_pass=Qcloud@123
tb ansible_connection=local ip=10.0.0.9
[kube-master]
a
[etcd]
a
[kube-node]
b
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(inv, config.Default(), "t.ini")
	if err != nil {
		t.Fatal(err)
	}
	a, b, tb := c.Host("a").Target, c.Host("b"), c.Host("tb")
	if a.Port != 2222 || a.User != "ops" || a.Password != "pw" || !a.Become || a.BecomePassword != "sp" {
		t.Errorf("a: %+v", a)
	}
	if b.IP != "192.168.1.2" || b.Target.KeyFile != "/k" || b.Target.Become || b.Target.Address != "10.0.0.2" {
		t.Errorf("b: %+v", b)
	}
	// KubeSphere's non-root sample: no ansible_become, yet sudo is implied for a non-root login.
	if ks := c.Host("ks").Target; !ks.Become || ks.BecomePassword != "Qcloud@123" {
		t.Errorf("ks: a non-root login must imply become: %+v", ks)
	}
	if !tb.Target.Local || c.Taskbox != tb {
		t.Errorf("taskbox not found: %+v", tb)
	}
}

func TestModelErrors(t *testing.T) {
	tests := []struct{ name, ini, want string }{
		{"no address", "[kube-master]\nm1\n[etcd]\nm1\n", "t.ini:2: host m1: has a role but no address"},
		{"duplicate ip", "[all]\na ansible_host=10.0.0.1\nb ansible_host=10.0.0.1\n[kube-master]\na\n[etcd]\nb\n", "t.ini:3: host b: has the same ip 10.0.0.1 as host a (line 2)"},
		{"no master", "[etcd]\n10.0.0.1\n", "no control plane"},
		{"no etcd", "[kube-master]\n10.0.0.1\n", "no etcd member"},
		{"bad port", "[kube-master]\n10.0.0.1 ansible_port=99999\n[etcd]\n10.0.0.1\n", "t.ini:2: host 10.0.0.1: ansible_port \"99999\" is not a TCP port"},
		{"bad become", "[kube-master]\n10.0.0.1 ansible_become=maybe\n[etcd]\n10.0.0.1\n", "ansible_become: maybe is not a boolean"},
		{"become off for a non-root login", "[kube-master]\n10.0.0.1 ansible_user=ubuntu ansible_become=false\n[etcd]\n10.0.0.1\n", "t.ini:2: host 10.0.0.1: ansible_become=false, but it logs in as ubuntu and kinstall needs root"},
		{"bad connection", "[kube-master]\n10.0.0.1 ansible_connection=winrm\n[etcd]\n10.0.0.1\n", "ansible_connection=winrm is not supported"},
		{"override type", "[kube-master]\n10.0.0.1\n[etcd]\n10.0.0.1\n[all:vars]\nkube_apiserver_port=high\n", "t.ini [all:vars]: kube_apiserver_port must be a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := inventory.Parse("t.ini", []byte(tt.ini))
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(inv, config.Default(), "t.ini")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
