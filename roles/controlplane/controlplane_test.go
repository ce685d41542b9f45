package controlplane

import (
	"strings"
	"testing"

	goldenfile "github.com/kinstall/kinstall/internal/golden"
	"github.com/kinstall/kinstall/internal/state"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/inventory"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/role"
)

const inventoryINI = `[all]
master1 ansible_host=192.168.0.2 ip=10.0.0.2
master2 ansible_host=192.168.0.3 ip=10.0.0.3
master3 ansible_host=192.168.0.4 ip=10.0.0.4
node1 ansible_host=192.168.0.5 ip=10.0.0.5 node_labels="disk=ssd,zone=a"
[kube-master]
master1
master2
master3
[etcd]
master1
master2
master3
[kube-node]
node1
master3
[k8s-cluster:children]
kube-master
kube-node
`

func testCluster(t *testing.T, yaml string) *cluster.Cluster {
	t.Helper()
	inv, err := inventory.Parse("hosts.ini", []byte(inventoryINI))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("common.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.New(inv, cfg, "hosts.ini")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

// The kubeadm configurations of each kind of node, for a VIP and an external load balancer.
func TestKubeadmConfigGolden(t *testing.T) {
	modes := map[string]string{
		"vip":      "loadbalancer_apiserver: {address: 10.0.0.100, port: 6443}\nloadbalancer_apiserver_mode: vip\n",
		"external": "loadbalancer_apiserver: {address: 10.0.0.253, port: 8443}\n",
	}
	for mode, yaml := range modes {
		c := testCluster(t, yaml)
		r, err := New(&role.Env{Cluster: c, State: state.Dir(t.TempDir())})
		if err != nil {
			t.Fatal(err)
		}
		hash := strings.TrimPrefix(r.CAHash(), "sha256:")
		host := func(name string) *runner.Host {
			h := &runner.Host{Host: c.Host(name)}
			h.SetFact(containerruntime.FactCgroupV2, "no")
			h.SetFact(factBridgeNF, "yes")
			return h
		}
		cases := []struct {
			file          string
			host          string
			init, secrets bool
		}{
			{"init", "master1", true, false},
			{"init-secrets", "master1", true, true},
			{"join-master", "master3", false, true},
			{"join-worker", "node1", false, true},
		}
		for _, tc := range cases {
			got, err := r.Config(host(tc.host), tc.init, tc.secrets, "abcdef.0123456789abcdef", "0011223344556677889900112233445566778899001122334455667788990011")
			if err != nil {
				t.Fatal(err)
			}
			// The CA is made per test: keep goldens stable.
			got = []byte(strings.ReplaceAll(string(got), hash, "CAHASH"))
			golden(t, mode+"-"+tc.file+".yaml", got)
		}
	}
}

func TestCertSANsAndPreflight(t *testing.T) {
	c := testCluster(t, "loadbalancer_apiserver: {address: 10.0.0.100, port: 6443}\nloadbalancer_apiserver_mode: vip\n")
	r, err := New(&role.Env{Cluster: c, State: state.Dir(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	sans := strings.Join(r.CertSANs(), ",")
	for _, want := range []string{"lb.kubesphere.local", "10.0.0.100", "master1", "10.0.0.2", "192.168.0.2", "127.0.0.1", "localhost"} {
		if !strings.Contains(","+sans+",", ","+want+",") {
			t.Errorf("certSANs %s lack %s", sans, want)
		}
	}
	if !r.BindsNodeIP() {
		t.Errorf("vip mode on the API's port: the API must bind the node IP")
	}
	h := &runner.Host{Host: c.Host("master2")}
	h.SetFact(factBridgeNF, "no")
	if got := strings.Join(r.ignorePreflight(h), ","); got != "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables,Port-6443" {
		t.Errorf("ignored preflight checks: %s", got)
	}
	ext := testCluster(t, "loadbalancer_apiserver: {address: 10.0.0.253, port: 6443}\n")
	re, _ := New(&role.Env{Cluster: ext, State: state.Dir(t.TempDir())})
	if re.BindsNodeIP() {
		t.Errorf("external LB: the API binds every address")
	}
}

func TestKnownLabels(t *testing.T) {
	c := testCluster(t, "loadbalancer_apiserver: {address: 10.0.0.253, port: 6443}\n")
	got := KnownLabels(c.Host("node1"))
	if got["disk"] != "ssd" || got["zone"] != "a" || len(got) != 3 {
		t.Errorf("labels: %v", got)
	}
	if _, ok := KnownLabels(c.Host("master1"))["node-role.kubernetes.io/worker"]; ok {
		t.Errorf("a master that is not a worker got the worker label")
	}
}
