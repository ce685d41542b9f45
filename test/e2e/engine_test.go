package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var nodes = []string{"node1", "node2", "node3", "node4", "node5"}

// ping reaches a root key host, a sudo user with a key, a password user whose sudo asks for
// the password, and the taskbox without SSH.
func TestPingEveryKindOfHost(t *testing.T) {
	e := lab_(t)
	r := e.kinstall(t, "ping")
	if r.code != 0 {
		t.Fatalf("ping failed (%d):\n%s", r.code, r.out)
	}
	want := map[string]string{"taskbox": "local", "node1": "root", "node2": "deploy", "node3": "ops", "node4": "root", "node5": "root"}
	for host, user := range want {
		re := regexp.MustCompile(`(?m)^` + host + `\s+\S+\s+` + regexp.QuoteMeta(userOrRoot(host, user)) + `\s+yes\s+Debian`)
		if !re.MatchString(r.out) {
			t.Errorf("no ping line for %s as %s with root access:\n%s", host, user, r.out)
		}
	}
}

func userOrRoot(host, user string) string {
	if host == "taskbox" {
		return "root"
	}
	return user
}

func resetBootstrap(t *testing.T, e *env) {
	for _, h := range nodes {
		e.sh(t, h, `rm -f /etc/sysctl.d/99-kinstall.conf /etc/modules-load.d/kinstall.conf; sed -i '/# BEGIN kinstall/,/# END kinstall/d' /etc/hosts`)
	}
}

// A real role on five hosts: the dry run changes nothing, the run changes what it said, and a
// re-run changes nothing.
func TestBootstrapDryRunApplyIdempotent(t *testing.T) {
	e := lab_(t)
	resetBootstrap(t, e)

	r := e.kinstall(t, "install", "--only", "bootstrap", "--check")
	if r.code != 0 || !strings.Contains(r.out, "would /etc/sysctl.d/99-kinstall.conf: create") {
		t.Fatalf("dry run (%d):\n%s", r.code, r.out)
	}
	for _, h := range nodes {
		if got := e.sh(t, h, "ls /etc/sysctl.d/99-kinstall.conf 2>/dev/null; grep -c 'BEGIN kinstall' /etc/hosts || true"); got != "0" {
			t.Errorf("%s: the dry run changed the host: %q", h, got)
		}
	}

	r = e.kinstall(t, "install", "--only", "bootstrap")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	for _, h := range nodes {
		hosts := e.sh(t, h, "cat /etc/hosts")
		for _, want := range []string{"172.31.0.11 node1", "172.31.0.15 node5", "172.31.0.250 lb.kubesphere.local"} {
			if !strings.Contains(hosts, want) {
				t.Errorf("%s: /etc/hosts lacks %q:\n%s", h, want, hosts)
			}
		}
		if got := e.sh(t, h, "stat -c '%a %U' /etc/sysctl.d/99-kinstall.conf; cat /proc/sys/net/ipv4/ip_forward"); got != "644 root\n1" {
			t.Errorf("%s: sysctl state %q", h, got)
		}
	}

	r = e.kinstall(t, "install", "--only", "bootstrap")
	if r.code != 0 {
		t.Fatalf("re-run (%d):\n%s", r.code, r.out)
	}
	for _, h := range nodes {
		if !regexp.MustCompile(`(?m)^` + h + `\s+\d+\s+0\s+\d+\s+0\s`).MatchString(r.out) {
			t.Errorf("re-run changed something on %s:\n%s", h, r.out)
		}
	}
	// The run log is private and masks the password.
	logs, _ := filepath.Glob(filepath.Join(e.lab.Dir, "state", "runs", "*", "node3.log"))
	if len(logs) == 0 {
		t.Fatal("no run log for node3")
	}
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		e.assertNoSecrets(t, string(b))
		if fi, _ := os.Stat(l); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", l, fi.Mode().Perm())
		}
	}
}

// A host that goes down in the middle of a run fails with a clear error; the others finish.
func TestHostStoppedMidRun(t *testing.T) {
	e := lab_(t)
	ctx := context.Background()
	defer e.lab.Start(ctx, "node5")
	done := make(chan result, 1)
	go func() { done <- e.kinstall(t, "exec", "sleep 4; echo finished") }()
	time.Sleep(1500 * time.Millisecond)
	if err := e.lab.Stop(ctx, "node5"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code == 0 {
		t.Fatalf("a stopped host should fail the run:\n%s", r.out)
	}
	if !regexp.MustCompile(`node5: exec / exec: .*(connection lost|EOF|closed)`).MatchString(r.out) {
		t.Errorf("no clear error for node5:\n%s", r.out)
	}
	for _, h := range []string{"node1", "node2", "node3", "node4", "taskbox"} {
		if !strings.Contains(r.out, h+" | rc=0\nfinished") {
			t.Errorf("%s did not finish:\n%s", h, r.out)
		}
	}
}

// A partitioned host (packets dropped) gives a timeout error, not a hang.
func TestPartitionedHostTimesOut(t *testing.T) {
	e := lab_(t)
	ctx := context.Background()
	if err := e.lab.Partition(ctx, "node4"); err != nil {
		t.Fatal(err)
	}
	defer e.lab.Heal(ctx, "node4")

	r := e.kinstall(t, "ping", "--connect-timeout", "3s")
	if r.code == 0 || !regexp.MustCompile(`node4: ping / gather facts: connect: ssh 172.31.0.14:22: connect timed out`).MatchString(r.out) {
		t.Fatalf("want a connect timeout for node4 (%d):\n%s", r.code, r.out)
	}
	if r.took > 15*time.Second {
		t.Errorf("ping took %s with a 3s connect timeout", r.took)
	}
	if !regexp.MustCompile(`(?m)^node1\s+\S+\s+root\s+yes`).MatchString(r.out) {
		t.Errorf("the other hosts should still answer:\n%s", r.out)
	}

	// Cut off in the middle of a command: the command timeout ends it.
	if err := e.lab.Heal(ctx, "node4"); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		done <- e.kinstall(t, "exec", "--limit", "node4,node1", "--command-timeout", "3s", "sleep 1; echo ok")
	}()
	time.Sleep(400 * time.Millisecond)
	if err := e.lab.Partition(ctx, "node4"); err != nil {
		t.Fatal(err)
	}
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("kinstall hung on a partitioned host")
	}
	if r.code == 0 || !strings.Contains(r.out, "node4: exec / exec") || !strings.Contains(r.out, "node1 | rc=0") {
		t.Errorf("want node4 to fail and node1 to finish (%d, %s):\n%s", r.code, r.took, r.out)
	}
}
