package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinstall/kinstall/internal/lab"
)

// k8sEnv is a lab of its own for one Kubernetes cluster (the shared lab's hosts are reused by
// the etcd and load balancer tests, which want 6443 free).
type k8sEnv struct {
	*env
	f files
}

// newK8sLab boots n fresh hosts named like the shared lab's, on another subnet. yaml and
// inventory, when set, replace the lab's own files (the lab's inventory text is passed in so a
// test can edit it).
func newK8sLab(t *testing.T, name, subnet string, n int, edit func(inv, cfg string, l *lab.Lab) (string, string)) *k8sEnv {
	t.Helper()
	base := lab_(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Name: name, N: n, Subnet: subnet}, os.Stderr)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	if os.Getenv("KINSTALL_KEEP_LAB") == "" {
		t.Cleanup(func() { _ = l.Down(context.Background()) })
	}
	cfgData, err := os.ReadFile(l.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	inv, cfg := l.Inventory(), string(cfgData)
	if edit != nil {
		inv, cfg = edit(inv, cfg, l)
	}
	dir := t.TempDir()
	f := files{inventory: filepath.Join(dir, "hosts.ini"), config: filepath.Join(dir, "common.yaml"), state: filepath.Join(dir, "state")}
	if err := os.WriteFile(f.inventory, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := *base
	e.lab = l
	return &k8sEnv{env: &e, f: f}
}

func (k *k8sEnv) kinstall(t *testing.T, args ...string) result {
	t.Helper()
	return k.run(t, k.f, args...)
}

func (k *k8sEnv) mustInstall(t *testing.T) result {
	t.Helper()
	r := k.kinstall(t, "install")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	if strings.Contains(r.out, "not implemented yet") {
		t.Errorf("install skipped phases:\n%s", r.out)
	}
	return r
}

func (k *k8sEnv) mustVerify(t *testing.T) string {
	t.Helper()
	r := k.kinstall(t, "verify")
	if r.code != 0 {
		t.Fatalf("verify (%d):\n%s", r.code, r.out)
	}
	return r.out
}

// kubectl runs kubectl on a master with its admin kubeconfig.
func (k *k8sEnv) kubectl(t *testing.T, master, args string) string {
	t.Helper()
	return k.sh(t, master, "kubectl --kubeconfig /etc/kubernetes/admin.conf "+args)
}

// assertKubeconfig: the taskbox's admin kubeconfig exists, is 0600 and `kinstall kubeconfig`
// prints it.
func (k *k8sEnv) assertKubeconfig(t *testing.T) {
	t.Helper()
	r := k.kinstall(t, "kubeconfig")
	path := strings.TrimSpace(r.out)
	st, err := os.Stat(path)
	if r.code != 0 || err != nil {
		t.Fatalf("kinstall kubeconfig (%d): %s %v", r.code, r.out, err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %o, want 0600", path, st.Mode().Perm())
	}
}

// The KubeSphere HA layout: 3 masters that are also etcd, 2 workers, keepalived VIP + HAProxy.
// Install from bare hosts, verify, re-run (nothing changes), then the HA drill.
func TestKubernetesHA(t *testing.T) {
	k := newK8sLab(t, "k8s-ha", "172.31.10.0/24", 5, nil)
	r := k.mustInstall(t)
	t.Logf("HA cluster (3 masters + etcd, 2 workers, VIP) installed from bare hosts in %s", r.took.Round(time.Second))
	out := k.mustVerify(t)
	t.Logf("verify:\n%s", out)
	k.assertKubeconfig(t)
	nodesOut := k.kubectl(t, "node1", "get nodes -o wide")
	t.Logf("kubectl get nodes:\n%s", nodesOut)
	if n := strings.Count(nodesOut, " Ready "); n != 5 {
		t.Errorf("%d nodes Ready, want 5", n)
	}
	// The API binds only the node's IP (HAProxy holds VIP:6443 on every master).
	if got := k.sh(t, "node2", "grep -c -- '--bind-address=' /etc/kubernetes/manifests/kube-apiserver.yaml"); got != "1" {
		t.Errorf("node2's kube-apiserver has %s --bind-address flags", got)
	}
	// Nothing secret is left on the hosts after the joins.
	for _, h := range []string{"node1", "node2", "node4"} {
		if got := k.sh(t, h, "ls /etc/kubernetes/kinstall/kubeadm-run.yaml 2>/dev/null; true"); got != "" {
			t.Errorf("%s kept the kubeadm file holding the join secrets", h)
		}
	}
	again := k.kinstall(t, "install")
	if again.code != 0 {
		t.Fatalf("re-run (%d):\n%s", again.code, again.out)
	}
	recapUnchanged(t, again.out, nodes)
	t.Logf("re-run on the finished cluster: %s, nothing changed", again.took.Round(100*time.Millisecond))

	ha := k.kinstall(t, "verify", "--ha", "--yes")
	t.Logf("verify --ha (%d):\n%s", ha.code, ha.out)
	if ha.code != 0 || !strings.Contains(ha.out, "PASSED") {
		t.Fatalf("HA drill failed")
	}
	if m := regexp.MustCompile(`longest API outage via \S+\s+([0-9.]+) s`).FindStringSubmatch(ha.out); m != nil {
		t.Logf("API outage through the VIP while its master was down: %s s", m[1])
	}
	upgradeUnderLoad(t, k)
	day2RemoveAddReset(t, k)
}

// Versions of Kubernetes in the lab bundle (make bundle builds both).
const (
	kubeOld = "v1.34.4"
	kubeNew = "v1.35.4"
)

// upgradeUnderLoad upgrades every node to the next minor version while a probe hits the API
// through the VIP every 100 ms and a client writes to etcd every 50 ms: no long gap, every
// acknowledged write kept; then kube_version is set and a re-run changes nothing.
func upgradeUnderLoad(t *testing.T, k *k8sEnv) {
	plan := k.kinstall(t, "upgrade", "--version", kubeNew, "--check")
	if plan.code != 0 || !strings.Contains(plan.out, "node1") || !strings.Contains(plan.out, kubeOld+" -> "+kubeNew) {
		t.Fatalf("upgrade --check (%d):\n%s", plan.code, plan.out)
	}
	if skip := k.kinstall(t, "upgrade", "--version", "v1.36.1", "--check"); skip.code == 0 || !strings.Contains(skip.out, "one minor version at a time") {
		t.Errorf("a skip of a minor version was not refused (%d):\n%s", skip.code, skip.out)
	}
	cl, c := (&etcdLab{e: k.env, f: k.f}).client(t)
	cli, err := cl.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var mu sync.Mutex
	var acked []string
	stopWrites := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stopWrites:
				return
			case <-time.After(50 * time.Millisecond):
			}
			key := fmt.Sprintf("/kube-upgrade/%06d", i)
			if put(t, cli, key, "v") == nil {
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		}
	}()
	probe := startAPIProbe(t, k)
	up := k.kinstall(t, "upgrade", "--version", kubeNew)
	gap := probe()
	close(stopWrites)
	<-writerDone
	t.Logf("upgrade %s -> %s of %d nodes (%d):\n%s", kubeOld, kubeNew, len(c.KubeNodes()), up.code, up.out)
	if up.code != 0 {
		t.Fatalf("upgrade failed")
	}
	t.Logf("upgrade took %s; longest gap of the API through the VIP: %s; %d etcd writes acknowledged", up.took.Round(time.Second), gap, len(acked))
	if gap > 5*time.Second {
		t.Errorf("the API was unreachable for %s during the upgrade", gap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := cli.Get(ctx, "/kube-upgrade/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || got.Count < int64(len(acked)) {
		t.Errorf("etcd has %v of %d acknowledged writes (%v)", got, len(acked), err)
	}
	if v := k.kubectl(t, "node1", "get nodes -o jsonpath='{.items[*].status.nodeInfo.kubeletVersion}'"); strings.Count(v, kubeNew) != 5 {
		t.Errorf("kubelet versions after the upgrade: %s", v)
	}
	old := k.kinstall(t, "install", "--check")
	if old.code == 0 || !strings.Contains(old.out, "set kube_version: "+kubeNew) {
		t.Errorf("an install with the old kube_version must be refused (%d):\n%s", old.code, old.out)
	}
	cfg, _ := os.ReadFile(k.f.config)
	if err := os.WriteFile(k.f.config, append(cfg, []byte("\nkube_version: "+kubeNew+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	k.mustVerify(t)
	// The first install on the new version may sync kinstall's own copies (its kubeadm config,
	// CoreDNS's Corefile that kubeadm rewrote); the one after changes nothing.
	if sync := k.kinstall(t, "install"); sync.code != 0 {
		t.Fatalf("install after the upgrade (%d):\n%s", sync.code, sync.out)
	}
	again := k.kinstall(t, "install")
	if again.code != 0 {
		t.Fatalf("second install after the upgrade (%d):\n%s", again.code, again.out)
	}
	recapUnchanged(t, again.out, nodes)
}

// day2RemoveAddReset: reset refuses an etcd member that stays; a worker and a master (with its
// etcd member) are removed while the cluster keeps serving, the etcd data of the members that
// stay untouched; both come back with add-node; certs check lists the PKI; reset removes it all.
func day2RemoveAddReset(t *testing.T, k *k8sEnv) {
	full, err := os.ReadFile(k.f.inventory)
	if err != nil {
		t.Fatal(err)
	}
	ex := k.kinstall(t, "exec", "--become", "--limit", "kube-node", "--", "systemctl", "is-active", "kubelet")
	if ex.code != 0 || !strings.Contains(ex.out, "node4 | rc=0") || !strings.Contains(ex.out, "node5 | rc=0") || strings.Contains(ex.out, "node1 |") {
		t.Errorf("exec on the workers (%d):\n%s", ex.code, ex.out)
	}
	if bad := k.kinstall(t, "exec", "--limit", "node4", "--", "false"); bad.code == 0 {
		t.Errorf("exec of a failing command exited 0:\n%s", bad.out)
	}
	certs := k.kinstall(t, "certs", "check")
	if certs.code != 0 || !strings.Contains(certs.out, "/etc/kubernetes/pki/apiserver.crt") || !strings.Contains(certs.out, "kube-apiserver-etcd-client.pem") {
		t.Errorf("certs check (%d):\n%s", certs.code, certs.out)
	}
	refused := k.kinstall(t, "reset", "--limit", "node2", "--yes")
	if refused.code == 0 || !strings.Contains(refused.out, "is a member of the etcd cluster that stays") {
		t.Fatalf("reset of an etcd member that stays was not refused (%d):\n%s", refused.code, refused.out)
	}
	if got := k.sh(t, "node2", "test -d /var/lib/etcd/member && systemctl is-active etcd kubelet | paste -sd,"); got != "active,active" {
		t.Fatalf("a refused reset touched node2: %s", got)
	}
	const etcdctl = "ETCDCTL_CACERT=/etc/ssl/etcd/ssl/ca.pem ETCDCTL_CERT=/etc/ssl/etcd/ssl/admin.pem ETCDCTL_KEY=/etc/ssl/etcd/ssl/admin-key.pem etcdctl --endpoints=https://127.0.0.1:2379 "
	k.sh(t, "node1", etcdctl+"put /kinstall-test/before-remove kept >/dev/null")
	probe := startAPIProbe(t, k)
	for _, name := range []string{"node5", "node3"} {
		r := k.kinstall(t, "remove-node", name, "--yes")
		if r.code != 0 {
			t.Fatalf("remove-node %s (%d):\n%s", name, r.code, r.out)
		}
		t.Logf("remove-node %s: %s", name, r.took.Round(100*time.Millisecond))
		if got := k.sh(t, name, "ls /etc/kubernetes /var/lib/etcd /var/lib/kubelet 2>/dev/null; ip -o link show cni0 2>/dev/null; iptables-save | grep -c KUBE-; true"); got != "0" {
			t.Errorf("%s after remove-node still has: %q", name, got)
		}
	}
	gaps := probe()
	t.Logf("API through the VIP while a worker and a master were removed: longest gap %s", gaps)
	if gaps > 5*time.Second {
		t.Errorf("the API was unreachable for %s while nodes were removed", gaps)
	}
	without := regexp.MustCompile(`(?m)^node[35]\n`).ReplaceAllString(string(full), "")
	without = regexp.MustCompile(`(?m)^node[35] .*\n`).ReplaceAllString(without, "")
	if err := os.WriteFile(k.f.inventory, []byte(without), 0o600); err != nil {
		t.Fatal(err)
	}
	// The members that stay kept their data (the write made before is still there) and quorum.
	st := k.kinstall(t, "etcd", "status")
	if st.code != 0 || strings.Contains(st.out, "node3") {
		t.Errorf("etcd after removing node3 (%d):\n%s", st.code, st.out)
	}
	if got := k.sh(t, "node2", etcdctl+"get --print-value-only /kinstall-test/before-remove"); got != "kept" {
		t.Errorf("etcd lost data when node3 left: %q", got)
	}
	if got := k.sh(t, "node1", "grep -c 'server node3' /etc/haproxy/haproxy.cfg; true"); got != "0" {
		t.Errorf("HAProxy on node1 still lists node3")
	}
	k.mustVerify(t)

	// Both back: node3 as master and etcd member, node5 as worker.
	if err := os.WriteFile(k.f.inventory, full, 0o600); err != nil {
		t.Fatal(err)
	}
	add := k.kinstall(t, "add-node")
	if add.code != 0 || !strings.Contains(add.out, "new in") {
		t.Fatalf("add-node (%d):\n%s", add.code, add.out)
	}
	t.Logf("add-node (a master with its etcd member and a worker): %s", add.took.Round(time.Second))
	k.mustVerify(t)

	all := k.kinstall(t, "reset", "--yes")
	if all.code != 0 {
		t.Fatalf("reset (%d):\n%s", all.code, all.out)
	}
	for _, h := range nodes {
		if got := k.sh(t, h, "ls /etc/kubernetes /var/lib/etcd /etc/haproxy/haproxy.cfg 2>/dev/null; systemctl is-active kubelet etcd haproxy keepalived flanneld 2>/dev/null | grep -c '^active'; true"); got != "0" {
			t.Errorf("%s after reset still has: %q", h, got)
		}
	}
}

// startAPIProbe hits the API through the endpoint every 100 ms until the returned function is
// called, which returns the longest time without a good answer.
func startAPIProbe(t *testing.T, k *k8sEnv) func() time.Duration {
	t.Helper()
	url := "https://" + k.lab.VIP + ":6443/readyz"
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var longest time.Duration
		last := time.Now()
		for {
			select {
			case <-stop:
				done <- longest
				return
			case <-time.After(100 * time.Millisecond):
			}
			if resp, err := insecure.Get(url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					if g := time.Since(last); g > longest {
						longest = g
					}
					last = time.Now()
				}
			}
		}
	}()
	return func() time.Duration { close(stop); return <-done }
}

// One master (also etcd), one worker, no load balancer.
func TestKubernetesSingleMaster(t *testing.T) {
	k := newK8sLab(t, "k8s-one", "172.31.11.0/24", 2, func(inv, cfg string, l *lab.Lab) (string, string) {
		inv = regexp.MustCompile(`(?s)\[kube-master\]\n.*?\n\n`).ReplaceAllString(inv, "[kube-master]\nnode1\n\n")
		inv = regexp.MustCompile(`(?s)\[etcd\]\n.*?\n\n`).ReplaceAllString(inv, "[etcd]\nnode1\n\n")
		inv = regexp.MustCompile(`(?s)\[kube-node\]\n.*?\n\n`).ReplaceAllString(inv, "[kube-node]\nnode2\n\n")
		return inv, "kube_version: v1.34.4\n"
	})
	dry := k.kinstall(t, "install", "--check")
	if dry.code != 0 || !strings.Contains(dry.out, "would join the cluster") {
		t.Fatalf("dry run on bare hosts (%d):\n%s", dry.code, dry.out)
	}
	if got := k.sh(t, "node1", "ls /etc/kubernetes /usr/local/bin/kubelet /etc/containerd/config.toml 2>/dev/null; true"); got != "" {
		t.Fatalf("the dry run changed node1: %s", got)
	}
	r := k.mustInstall(t)
	t.Logf("single-master cluster installed in %s", r.took.Round(time.Second))
	t.Logf("verify:\n%s", k.mustVerify(t))
	if ha := k.kinstall(t, "verify", "--ha", "--yes"); ha.code == 0 || !strings.Contains(ha.out, "cannot tolerate") {
		t.Errorf("verify --ha on one master must be refused (%d):\n%s", ha.code, ha.out)
	}
}

// Two masters behind the operator's own HAProxy on a host outside the cluster.
func TestKubernetesExternalLB(t *testing.T) {
	var lbIP string
	k := newK8sLab(t, "k8s-ext", "172.31.12.0/24", 4, func(inv, cfg string, l *lab.Lab) (string, string) {
		lbIP, _ = l.IP("node4")
		inv = regexp.MustCompile(`(?s)\[kube-master\]\n.*?\n\n`).ReplaceAllString(inv, "[kube-master]\nnode1\nnode2\n\n")
		inv = regexp.MustCompile(`(?s)\[etcd\]\n.*?\n\n`).ReplaceAllString(inv, "[etcd]\nnode1\nnode2\nnode3\n\n")
		inv = regexp.MustCompile(`(?s)\[kube-node\]\n.*?\n\n`).ReplaceAllString(inv, "[kube-node]\nnode3\n\n")
		return inv, fmt.Sprintf("loadbalancer_apiserver:\n  address: %s\n  port: 6443\nloadbalancer_apiserver_mode: external\n", lbIP)
	})
	setupExternalHAProxy(t, k.env, "node4", "node1", "node2")
	r := k.mustInstall(t)
	t.Logf("2 masters behind an external HAProxy installed in %s", r.took.Round(time.Second))
	t.Logf("verify:\n%s", k.mustVerify(t))
	if got := k.sh(t, "node3", "getent ahostsv4 lb.kubesphere.local | awk '{print $1; exit}'"); got != lbIP {
		t.Errorf("node3 resolves lb.kubesphere.local to %q, want %s", got, lbIP)
	}
	ha := k.kinstall(t, "verify", "--ha", "--yes")
	t.Logf("verify --ha (%d):\n%s", ha.code, ha.out)
	if ha.code != 0 || !strings.Contains(ha.out, "PASSED") {
		t.Errorf("HA drill through the external LB failed")
	}
}
