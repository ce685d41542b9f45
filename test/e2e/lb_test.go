package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// lbLab is a cluster definition for load balancer tests: the lab's hosts with a chosen mode.
type lbLab struct {
	e *env
	f files
}

// newLBLab wipes HAProxy and keepalived settings (packages stay) and starts the fake API on
// the given masters.
func newLBLab(t *testing.T, e *env, yaml string, masters ...string) *lbLab {
	t.Helper()
	var wg sync.WaitGroup
	for _, h := range nodes {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			_, _ = e.lab.Exec(context.Background(), h, "systemctl disable --now keepalived haproxy >/dev/null 2>&1; rm -f /etc/keepalived/keepalived.conf /etc/haproxy/haproxy.cfg; ip addr del "+e.lab.VIP+"/24 dev eth0 2>/dev/null; true")
		}(h)
	}
	wg.Wait()
	for _, h := range masters {
		startFakeAPI(t, e, h)
	}
	dir := t.TempDir()
	inv := regexp.MustCompile(`(?s)\[kube-master\]\n.*?\n\n`).ReplaceAllString(e.lab.Inventory(), "[kube-master]\n"+strings.Join(masters, "\n")+"\n\n")
	f := files{inventory: filepath.Join(dir, "hosts.ini"), config: filepath.Join(dir, "common.yaml"), state: filepath.Join(dir, "state")}
	if err := os.WriteFile(f.inventory, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return &lbLab{e: e, f: f}
}

func (l *lbLab) setInventory(t *testing.T, inv string) {
	t.Helper()
	if err := os.WriteFile(l.f.inventory, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startFakeAPI runs test/fakeapi on a master's own IP:6443, where kube-apiserver will listen.
func startFakeAPI(t *testing.T, e *env, host string) {
	t.Helper()
	ip, _ := e.lab.IP(host)
	ctr := e.lab.Name + "-lab-" + host
	if out, err := exec.Command("docker", "cp", e.fake, ctr+":/usr/local/bin/fakeapi").CombinedOutput(); err != nil {
		t.Fatalf("docker cp: %v %s", err, out)
	}
	e.sh(t, host, "systemctl stop fakeapi 2>/dev/null; systemctl reset-failed fakeapi 2>/dev/null; systemd-run --quiet --unit fakeapi /usr/local/bin/fakeapi -listen "+ip+":6443")
}

var insecure = &http.Client{Timeout: time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}

// who asks the endpoint which master answers.
func who(url string) (string, error) {
	resp, err := insecure.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func spread(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := who(url)
		if err != nil {
			name = "error"
		}
		got[name]++
	}
	return got
}

func names(m map[string]int) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func vipHolder(t *testing.T, e *env, hosts ...string) string {
	t.Helper()
	var holders []string
	for _, h := range hosts {
		if strings.Contains(e.sh(t, h, "ip -4 -o addr show"), " "+e.lab.VIP+"/") {
			holders = append(holders, h)
		}
	}
	if len(holders) != 1 {
		t.Fatalf("VIP %s held by %v, want exactly one host", e.lab.VIP, holders)
	}
	return holders[0]
}

// VIP mode on 3 masters: connections spread over every master; a stopped backend is avoided;
// the VIP moves when its master stops; adding a master rewrites every config without a failed
// request.
func TestLoadBalancerVIP(t *testing.T) {
	e := lab_(t)
	cfg := fmt.Sprintf("loadbalancer_apiserver:\n  address: %s\n  port: 6443\nloadbalancer_apiserver_mode: vip\n", e.lab.VIP)
	l := newLBLab(t, e, cfg, "node1", "node2", "node3")
	r := e.run(t, l.f, "install", "--only", "bootstrap,loadbalancer")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	t.Logf("vip mode installed on 3 masters in %s", r.took.Round(time.Millisecond))
	url := "https://" + e.lab.VIP + ":6443/"
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := who(url); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := spread(t, url, 30); names(got) != "node1,node2,node3" {
		t.Fatalf("30 connections to the VIP reached %v, want all three masters", got)
	}
	again := e.run(t, l.f, "install", "--only", "bootstrap,loadbalancer")
	if again.code != 0 {
		t.Fatalf("re-run (%d):\n%s", again.code, again.out)
	}
	recapUnchanged(t, again.out, []string{"node1", "node2", "node3"})

	// A master whose API stops answering leaves the rotation (fall 2 x inter 1s).
	e.sh(t, "node2", "systemctl stop fakeapi")
	time.Sleep(3 * time.Second)
	if got := spread(t, url, 30); names(got) != "node1,node3" {
		t.Errorf("with node2's API down, connections reached %v", got)
	}
	startFakeAPI(t, e, "node2")

	// The master holding the VIP stops: the VIP moves and the endpoint answers again.
	holder := vipHolder(t, e, "node1", "node2", "node3")
	start := time.Now()
	if err := e.lab.Stop(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(start)
	var back time.Duration
	for time.Since(start) < 30*time.Second {
		if name, err := who(url); err == nil && name != holder {
			back = time.Since(start)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := e.lab.Start(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	startFakeAPI(t, e, holder)
	if back == 0 {
		t.Fatalf("the endpoint did not answer within 30 s after %s (VIP holder) stopped", holder)
	}
	t.Logf("VIP failover: %s stopped (docker stop took %s); the endpoint answered again %s after the stop began", holder, stopped.Round(time.Millisecond), back.Round(time.Millisecond))
	if back > 10*time.Second {
		t.Errorf("failover took %s", back)
	}
	others := []string{}
	for _, h := range []string{"node1", "node2", "node3"} {
		if h != holder {
			others = append(others, h)
		}
	}
	newHolder := vipHolder(t, e, others...)
	t.Logf("VIP moved %s -> %s", holder, newHolder)

	// A crash (docker kill: no goodbye from keepalived) of the new holder: the others notice
	// the missing adverts (3 x advert_int) and take over.
	start = time.Now()
	if err := e.lab.Kill(context.Background(), newHolder); err != nil {
		t.Fatal(err)
	}
	back = 0
	for time.Since(start) < 30*time.Second {
		if name, err := who(url); err == nil && name != newHolder {
			back = time.Since(start)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := e.lab.Start(context.Background(), newHolder); err != nil {
		t.Fatal(err)
	}
	startFakeAPI(t, e, newHolder)
	t.Logf("VIP failover after a crash of %s: the endpoint answered again %s after the kill", newHolder, back.Round(time.Millisecond))
	if back == 0 || back > 10*time.Second {
		t.Errorf("failover after a crash took %s (0: never)", back)
	}

	// A fourth master: every HAProxy gets it, reloads go one host at a time, and a client
	// hitting the VIP all along sees no failure.
	startFakeAPI(t, e, "node4")
	inv, _ := os.ReadFile(l.f.inventory)
	l.setInventory(t, strings.Replace(string(inv), "[kube-master]\nnode1\nnode2\nnode3\n", "[kube-master]\nnode1\nnode2\nnode3\nnode4\n", 1))
	ctx, stop := context.WithCancel(context.Background())
	var failures, requests int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_, err := who(url)
			requests++
			if err != nil && ctx.Err() == nil {
				failures++
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	add := e.run(t, l.f, "install", "--only", "loadbalancer")
	stop()
	wg.Wait()
	if add.code != 0 {
		t.Fatalf("install with a 4th master (%d):\n%s", add.code, add.out)
	}
	if failures > 0 {
		t.Errorf("%d of %d requests through the VIP failed while the configs were rewritten", failures, requests)
	}
	for _, h := range []string{"node1", "node2", "node3", "node4"} {
		if !strings.Contains(e.sh(t, h, "cat /etc/haproxy/haproxy.cfg"), "server node4 ") {
			t.Errorf("%s: haproxy.cfg lacks node4", h)
		}
	}
	time.Sleep(2500 * time.Millisecond) // rise 2 x inter 1s
	if got := spread(t, url, 40); got["node4"] == 0 || got["error"] > 0 {
		t.Errorf("after adding node4, connections reached %v", got)
	}
	// upgrade --role loadbalancer goes one host at a time; nothing is newer in the bundle, so
	// it changes nothing, and the VIP answers throughout.
	up := e.run(t, l.f, "upgrade", "--role", "loadbalancer")
	if up.code != 0 || !strings.Contains(up.out, "loadbalancer/upgrade") {
		t.Errorf("upgrade --role loadbalancer (%d):\n%s", up.code, up.out)
	}
	recapUnchanged(t, up.out, []string{"node1", "node2", "node3", "node4"})

	// Put node4 back to being a worker.
	e.sh(t, "node4", "systemctl disable --now keepalived haproxy >/dev/null 2>&1; systemctl stop fakeapi; rm -f /etc/keepalived/keepalived.conf /etc/haproxy/haproxy.cfg; true")
}

// Local proxy mode: a worker reaches every master through 127.0.0.1, and still does with one
// master down.
func TestLoadBalancerLocalProxy(t *testing.T) {
	e := lab_(t)
	l := newLBLab(t, e, "loadbalancer_apiserver:\n  port: 6443\nloadbalancer_apiserver_mode: local-proxy\n", "node1", "node2", "node3")
	r := e.run(t, l.f, "install", "--only", "bootstrap,loadbalancer")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	if got := e.sh(t, "node4", "getent ahostsv4 lb.kubesphere.local | awk '{print $1; exit}'"); got != "127.0.0.1" {
		t.Errorf("node4 resolves lb.kubesphere.local to %q, want 127.0.0.1", got)
	}
	curl := "for i in $(seq 12); do curl -sk --max-time 5 https://lb.kubesphere.local:6443/; echo; done | sort | uniq -c | awk '{print $2}' | paste -sd,"
	time.Sleep(2500 * time.Millisecond) // rise 2 x inter 1s after the first start
	if got := e.sh(t, "node4", curl); got != "node1,node2,node3" {
		t.Errorf("node4 through its local proxy reached %q", got)
	}
	if err := e.lab.Stop(context.Background(), "node1"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.lab.Start(context.Background(), "node1"); err != nil {
			t.Error(err)
		}
	}()
	if got := e.sh(t, "node5", curl); got != "node2,node3" {
		t.Errorf("with node1 down, node5 through its local proxy reached %q", got)
	}
}

// External mode: an HAProxy on node5 (no role) is the operator's load balancer; every node
// resolves the API name to it and reaches the masters through it. An LB that is not there
// stops the install with a clear error.
func TestLoadBalancerExternal(t *testing.T) {
	e := lab_(t)
	lbIP, _ := e.lab.IP("node5")
	cfg := fmt.Sprintf("loadbalancer_apiserver:\n  address: %s\n  port: 6443\nloadbalancer_apiserver_mode: external\n", lbIP)
	l := newLBLab(t, e, cfg, "node1", "node2", "node3")
	inv, _ := os.ReadFile(l.f.inventory)
	// node5 keeps only its [all] line: it is the operator's machine, not a cluster node.
	l.setInventory(t, strings.Replace(string(inv), "[kube-node]\nnode4\nnode5\n", "[kube-node]\nnode4\n", 1))

	setupExternalHAProxy(t, e, "node5", "node1", "node2", "node3")

	chk := e.run(t, l.f, "check")
	if chk.code != 0 || !strings.Contains(chk.out, "accepts TCP from this machine") {
		t.Errorf("check with a working external LB (%d):\n%s", chk.code, chk.out)
	}
	r := e.run(t, l.f, "install", "--only", "bootstrap,loadbalancer")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	for _, h := range []string{"node1", "node4"} {
		if got := e.sh(t, h, "getent ahostsv4 lb.kubesphere.local | awk '{print $1; exit}'"); got != lbIP {
			t.Errorf("%s resolves lb.kubesphere.local to %q, want %s", h, got, lbIP)
		}
	}
	time.Sleep(2500 * time.Millisecond)
	if got := e.sh(t, "node4", "for i in $(seq 12); do curl -sk --max-time 5 https://lb.kubesphere.local:6443/; echo; done | sort | uniq -c | awk '{print $2}' | paste -sd,"); got != "node1,node2,node3" {
		t.Errorf("node4 through the external LB reached %q", got)
	}

	// No load balancer at that port: check and install say so.
	if err := os.WriteFile(l.f.config, []byte(strings.Replace(cfg, "port: 6443", "port: 6553", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	chk = e.run(t, l.f, "check")
	if chk.code == 0 || !strings.Contains(chk.out, "does not accept TCP from this machine") {
		t.Errorf("check with no external LB (%d):\n%s", chk.code, chk.out)
	}
	bad := e.run(t, l.f, "install", "--only", "loadbalancer")
	if bad.code == 0 || !strings.Contains(bad.out, "cannot reach the external load balancer "+lbIP+":6553 (connection refused)") {
		t.Errorf("install with no external LB (%d):\n%s", bad.code, bad.out)
	}
	e.sh(t, "node5", "systemctl disable --now haproxy >/dev/null 2>&1; true")
}

// setupExternalHAProxy runs the operator's own HAProxy on host, forwarding :6443 to the masters
// (set up by hand, packages from the bundle: no mirror needed).
func setupExternalHAProxy(t *testing.T, e *env, host string, masters ...string) {
	t.Helper()
	ctr := e.lab.Name + "-lab-" + host
	debs, _ := filepath.Glob(filepath.Join(e.bundle, "debs", "debian-12-*", "*.deb"))
	e.sh(t, host, "mkdir -p /root/debs")
	for _, d := range debs {
		if out, err := exec.Command("docker", "cp", d, ctr+":/root/debs/").CombinedOutput(); err != nil {
			t.Fatalf("docker cp: %v %s", err, out)
		}
	}
	e.sh(t, host, `dpkg -s haproxy >/dev/null 2>&1 || (cd /root/debs && DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i haproxy_*.deb liblua5.3-0_*.deb libopentracing*.deb >/dev/null)`)
	var backends strings.Builder
	for _, m := range masters {
		ip, _ := e.lab.IP(m)
		fmt.Fprintf(&backends, "    server %s %s:6443 check check-ssl verify none inter 1s fall 2 rise 2\n", m, ip)
	}
	e.sh(t, host, "cat > /etc/haproxy/haproxy.cfg <<'EOF'\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 4h\n    timeout server 4h\nfrontend api\n    bind *:6443\n    default_backend masters\nbackend masters\n    option httpchk GET /readyz\n"+backends.String()+"EOF\nsystemctl restart haproxy")
}
