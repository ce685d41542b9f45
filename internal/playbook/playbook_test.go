package playbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/state"
	"github.com/kinstall/kinstall/internal/transport"
)

// fakeConn answers commands from a script of (substring -> result) rules and records them.
type fakeConn struct {
	name  string
	d     *fakeDialer
	rules []rule
}

type rule struct {
	contains string
	exit     int
	stdout   string
}

func (c *fakeConn) Name() string { return c.name }
func (c *fakeConn) Run(_ context.Context, cmd transport.Cmd) (transport.Result, error) {
	c.d.record(c.name + ": " + cmd.Command)
	for _, r := range c.rules {
		if strings.Contains(cmd.Command, r.contains) {
			return transport.Result{ExitCode: r.exit, Stdout: []byte(r.stdout)}, nil
		}
	}
	return transport.Result{}, nil
}
func (c *fakeConn) WriteFile(context.Context, []byte, transport.FileSpec) (bool, error) {
	return false, nil
}
func (c *fakeConn) Upload(context.Context, string, transport.FileSpec) (bool, error) {
	return false, nil
}
func (c *fakeConn) Close() error { return nil }

// fakeDialer hands out fakeConns; rules apply to every host, hostRules to one.
type fakeDialer struct {
	rules     []rule
	hostRules map[string][]rule
	mu        sync.Mutex
	log       []string
	dials     int
}

func (d *fakeDialer) Get(_ context.Context, t transport.Target) (transport.Conn, error) {
	d.mu.Lock()
	d.dials++
	d.mu.Unlock()
	return &fakeConn{name: t.Name, d: d, rules: append(append([]rule{}, d.hostRules[t.Name]...), d.rules...)}, nil
}

func (d *fakeDialer) record(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, s)
}

func (d *fakeDialer) commands() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string{}, d.log...)
}

const haInventory = `[all]
m1 ansible_host=127.0.0.11 ip=127.0.0.11
m2 ansible_host=127.0.0.12 ip=127.0.0.12
m3 ansible_host=127.0.0.13 ip=127.0.0.13
w1 ansible_host=127.0.0.21 ip=127.0.0.21
w2 ansible_host=127.0.0.22 ip=127.0.0.22
[kube-master]
m[1:3]
[etcd]
m[1:3]
[kube-node]
w1
w2
[k8s-cluster:children]
kube-master
kube-node
`

const vipConfig = "loadbalancer_apiserver: {address: 127.0.0.100, port: 8443}\n"

// session opens a session on a fake dialer, with the state directory in a temp dir.
func session(t *testing.T, ini, yaml string, d *fakeDialer, dry bool) *Session {
	t.Helper()
	dir := t.TempDir()
	inv, cfg := filepath.Join(dir, "hosts.ini"), filepath.Join(dir, "common.yaml")
	if err := os.WriteFile(inv, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s, err := Open(Options{Inventory: inv, Config: cfg, State: state.Dir(filepath.Join(dir, "state")), DryRun: dry, Dialer: d, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestSelect(t *testing.T) {
	var phases []Phase
	for _, n := range []string{"preflight", "etcd", "control-plane/init", "control-plane/join", "workers"} {
		phases = append(phases, Phase{Name: n})
	}
	tests := []struct {
		only, skip []string
		want       string
		err        string
	}{
		{[]string{"control-plane"}, []string{"control-plane/join"}, "control-plane/init", ""},
		{nil, []string{"preflight", "workers"}, "etcd,control-plane/init,control-plane/join", ""},
		{[]string{"etcd", "workers"}, nil, "etcd,workers", ""},
		{nil, nil, "preflight,etcd,control-plane/init,control-plane/join,workers", ""},
		{[]string{"control"}, nil, "", `no phase "control"`},
		{nil, []string{"nosuch"}, "", `no phase "nosuch"`},
	}
	for _, tt := range tests {
		got, err := Select(phases, tt.only, tt.skip)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("only %v skip %v: err %v, want %q", tt.only, tt.skip, err, tt.err)
			}
			continue
		}
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
		}
		if err != nil || strings.Join(names, ",") != tt.want {
			t.Errorf("only %v skip %v: %v %v, want %s", tt.only, tt.skip, names, err, tt.want)
		}
	}
}

// The rows `kinstall plan` prints are the phases the run executes: same names, hosts, order
// and policy, for every layout.
func TestPlanRowsAreTheRunPhases(t *testing.T) {
	layouts := map[string]string{
		"vip":         vipConfig,
		"local-proxy": "loadbalancer_apiserver_mode: local-proxy\n",
		"external":    "loadbalancer_apiserver: {address: 10.9.9.9, port: 6443}\nloadbalancer_apiserver_mode: external\n",
	}
	for name, yaml := range layouts {
		t.Run(name, func(t *testing.T) {
			s := session(t, haInventory, yaml, &fakeDialer{}, true)
			phases := Install(s.Cluster)
			built, err := s.Build(phases)
			if err != nil {
				t.Fatal(err)
			}
			rows := Rows(phases)
			if len(built) != len(rows) {
				t.Fatalf("%d rows, %d run phases", len(rows), len(built))
			}
			for i, r := range rows {
				b := built[i]
				var hosts []string
				for _, h := range b.Hosts {
					hosts = append(hosts, h.Name)
				}
				if hosts == nil {
					hosts = []string{}
				}
				if b.Name != r.Name || !reflect.DeepEqual(hosts, r.Hosts) || b.Serial != r.Serial || b.Critical != r.Critical || b.Lockstep != r.Lockstep || (len(b.Tasks) == 0 && len(hosts) > 0) {
					t.Errorf("row %d %+v differs from the run phase %s %v serial %d critical %v lockstep %v (%d tasks)", i, r, b.Name, hosts, b.Serial, b.Critical, b.Lockstep, len(b.Tasks))
				}
			}
		})
	}
}

func TestInstallRefusesAnInvalidCluster(t *testing.T) {
	d := &fakeDialer{}
	// Two masters and no load balancer: refused before any host is contacted.
	s := session(t, "[kube-master]\n127.0.0.11\n127.0.0.12\n[etcd]\n127.0.0.11\n", "", d, false)
	err := s.Install(context.Background(), nil, nil)
	var invalid *ErrInvalid
	if !errors.As(err, &invalid) || len(invalid.Report.Errors) == 0 {
		t.Fatalf("err = %v, want the check report's errors", err)
	}
	if d.dials != 0 {
		t.Errorf("an invalid cluster dialed %d hosts", d.dials)
	}
}

func TestEtcdResetPlan(t *testing.T) {
	s := session(t, haInventory, vipConfig, &fakeDialer{}, false)
	c := s.Cluster
	ctx := context.Background()
	// Every member goes: no need to ask etcd.
	got, err := s.EtcdResetPlan(ctx, c.RoleHosts())
	if err != nil || !got["m1"] || !got["m2"] || !got["m3"] || got["w1"] {
		t.Errorf("whole cluster: %v %v", got, err)
	}
	// Workers only: no etcd data goes.
	got, err = s.EtcdResetPlan(ctx, []*cluster.Host{c.Host("w1")})
	if err != nil || len(got) != 0 {
		t.Errorf("a worker: %v %v", got, err)
	}
	// One member of a cluster that stays, and etcd cannot be asked: refused, its data kept.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = s.EtcdResetPlan(ctx, []*cluster.Host{c.Host("m2")})
	if err == nil || !strings.Contains(err.Error(), "refusing to touch their etcd data") {
		t.Errorf("a member with etcd unreachable: %v", err)
	}
}

func TestRemoveNodeRefusals(t *testing.T) {
	tests := []struct {
		name, ini, host string
		confirm         bool
		want            string
	}{
		{"unknown host", haInventory, "nosuch", true, "nosuch is not a cluster host"},
		{"last master", "[kube-master]\n127.0.0.11\n[etcd]\n127.0.0.11\n[kube-node]\n127.0.0.21\n", "127.0.0.11", true, "is the last master"},
		{"not confirmed", haInventory, "w1", false, "not confirmed, nothing was changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDialer{}
			s := session(t, tt.ini, vipConfig, d, false)
			err := s.RemoveNode(context.Background(), tt.host, time.Minute, func(string) bool { return tt.confirm })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if cmds := d.commands(); len(cmds) != 0 {
				t.Errorf("a refused remove-node ran commands: %v", cmds)
			}
		})
	}
}

// remove-node of a worker: drained and deleted from a master that stays, then reset; no load
// balancer change (only a master's removal rewrites the configs).
func TestRemoveNodeWorker(t *testing.T) {
	d := &fakeDialer{rules: []rule{{contains: "[ -e ", exit: 1}}} // reset finds nothing left
	s := session(t, haInventory, vipConfig, d, false)
	if err := s.RemoveNode(context.Background(), "w2", 90*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, c := range d.commands() {
		switch {
		case strings.HasPrefix(c, "m1: ") && strings.Contains(c, "get node w2"):
			order = append(order, "get")
		case strings.HasPrefix(c, "m1: ") && strings.Contains(c, "drain w2") && strings.Contains(c, "--timeout=90s"):
			order = append(order, "drain")
		case strings.HasPrefix(c, "m1: ") && strings.Contains(c, "delete node w2"):
			order = append(order, "delete")
		case strings.HasPrefix(c, "w2: ") && strings.Contains(c, "/etc/kubernetes"):
			order = append(order, "reset")
		case strings.Contains(c, "haproxy") && !strings.HasPrefix(c, "w2: "):
			t.Errorf("removing a worker touched a load balancer: %s", c)
		}
	}
	if got := strings.Join(dedupe(order), ","); got != "get,drain,delete,reset" {
		t.Errorf("steps %s, want get,drain,delete,reset; commands:\n%s", got, strings.Join(d.commands(), "\n"))
	}
}

// A node the API does not know is not drained.
func TestRemoveNodeNotRegistered(t *testing.T) {
	d := &fakeDialer{rules: []rule{{contains: "get node w2", exit: 1}, {contains: "[ -e ", exit: 1}}}
	s := session(t, haInventory, vipConfig, d, false)
	if err := s.RemoveNode(context.Background(), "w2", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.commands() {
		if strings.Contains(c, "drain") || strings.Contains(c, "delete node") {
			t.Errorf("an unregistered node was drained or deleted: %s", c)
		}
	}
}

func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

func TestUpgradeOrder(t *testing.T) {
	s := session(t, haInventory, vipConfig, &fakeDialer{}, false)
	all := map[string]string{"m1": "v1.34.4", "m2": "v1.34.4", "m3": "v1.35.4", "w1": "v1.34.4", "w2": "v1.34.4"}
	tests := []struct {
		name    string
		nodes   map[string]string
		u       KubeUpgrade
		masters string
		workers string
		err     string
	}{
		{"both, masters first", all, KubeUpgrade{Version: "v1.35.4"}, "m1,m2,m3", "w1,w2", ""},
		{"masters only", all, KubeUpgrade{Role: "kube-master", Version: "v1.35.4"}, "m1,m2,m3", "", ""},
		{"workers only", all, KubeUpgrade{Role: "kube-node", Version: "v1.35.4"}, "", "w1,w2", ""},
		{"not a node yet", map[string]string{"m1": "v1.34.4"}, KubeUpgrade{Version: "v1.35.4"}, "", "", "m2 is in"},
		{"downgrade", all, KubeUpgrade{Version: "v1.34.3"}, "", "", "nothing was changed"},
		{"skips a minor", all, KubeUpgrade{Version: "v1.36.0"}, "", "", "nothing was changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, w, err := UpgradeOrder(s.Cluster, tt.nodes, tt.u)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || HostNames(m) != tt.masters || HostNames(w) != tt.workers {
				t.Errorf("masters %s workers %s err %v", HostNames(m), HostNames(w), err)
			}
		})
	}
}

func TestUpgradeEtcdNeedsAVersion(t *testing.T) {
	d := &fakeDialer{}
	s := session(t, haInventory, vipConfig, d, false)
	if err := s.UpgradeEtcd(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "--version is required") {
		t.Fatalf("err = %v", err)
	}
	if err := s.UpgradeKubernetes(context.Background(), KubeUpgrade{}); err == nil || !strings.Contains(err.Error(), "--version is required") {
		t.Fatalf("err = %v", err)
	}
	if d.dials != 0 {
		t.Errorf("a refused upgrade dialed %d hosts", d.dials)
	}
}

// verify's and certs' commands go through the runner: logged in the run's host log, and
// bounded by --forks.
func TestHostCommandsAreLogged(t *testing.T) {
	d := &fakeDialer{rules: []rule{{contains: "openssl", stdout: ""}}}
	s := session(t, haInventory, vipConfig, d, false)
	if _, err := s.CertsCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(s.RunDir, "*.log"))
	if len(logs) != len(s.Cluster.RoleHosts()) {
		t.Fatalf("%d host logs, want %d: %v", len(logs), len(s.Cluster.RoleHosts()), logs)
	}
	b, err := os.ReadFile(filepath.Join(s.RunDir, "m1.log"))
	if err != nil || !strings.Contains(string(b), "(sudo)") {
		t.Errorf("m1's log lacks the certs command: %s %v", b, err)
	}
}

func TestExec(t *testing.T) {
	d := &fakeDialer{hostRules: map[string][]rule{"w1": {{contains: "uptime", exit: 3, stdout: "bad\n"}}}, rules: []rule{{contains: "uptime", stdout: "up\n"}}}
	s := session(t, haInventory, vipConfig, d, false)
	out, err := s.Exec(context.Background(), "uptime", false)
	if err == nil || !strings.Contains(err.Error(), "exit code 3") {
		t.Errorf("err = %v, want w1's exit code", err)
	}
	if out["m1"] != "rc=0\nup" || out["w1"] != "rc=3\nbad" || len(out) != 5 {
		t.Errorf("outputs %q", out)
	}
}

func ExampleRows() {
	c, _ := cluster.Load("../../conf/hosts.ini", "../../conf/common.yaml")
	for _, r := range Rows(Install(c)) {
		fmt.Println(r.Name, r.Hosts)
	}
	// Output:
	// preflight [master1 master2 master3 node1 node2]
	// preflight/artifacts [master1 master2 master3 node1 node2]
	// bootstrap [master1 master2 master3 node1 node2]
	// artifacts [master1 master2 master3 node1 node2]
	// container-runtime [master1 master2 master3 node1 node2]
	// etcd [master1 master2 master3]
	// loadbalancer [master1 master2 master3]
	// kubelet [master1 master2 master3 node1 node2]
	// control-plane/init [master1]
	// control-plane/join [master2 master3]
	// workers [node1 node2]
	// cni [master1 master2 master3 node1 node2]
	// kubeconfig [master1]
}
