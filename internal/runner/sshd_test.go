package runner

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/testsshd"
	"github.com/kinstall/kinstall/internal/transport"
)

// TestRealHosts runs the runner over a real sshd reached through three loopback addresses
// (three "hosts"): dry run, apply, idempotent re-run, and one report for failures on two hosts.
func TestRealHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	addrs := []string{"127.0.2.1", "127.0.2.2", "127.0.2.3"}
	s, err := testsshd.Launch(dir, addrs...)
	if err != nil {
		t.Skipf("sshd: %v", err)
	}
	defer s.Stop()
	var hs []*cluster.Host
	for i, a := range addrs {
		name := fmt.Sprintf("h%d", i+1)
		hs = append(hs, &cluster.Host{Name: name, Target: transport.Target{Name: name, Address: a, Port: s.Port, User: "root", KeyFile: s.UserKeyFile}})
	}
	base := t.TempDir()
	file := func(h *Host) string { return base + "/" + h.Name + ".conf" }
	tasks := []Task{EnsureFileAt("config", file, 0o600, func(h *Host) ([]byte, error) { return []byte("host " + h.Name + "\n"), nil })}
	run := func(dry bool, tasks []Task) ([]HostRecap, error) {
		pool := transport.NewPool(transport.Options{KnownHostsFile: s.KnownHostsFile, CommandTimeout: 20 * time.Second})
		defer pool.CloseAll()
		r := New(pool, Options{DryRun: dry, RunDir: t.TempDir()})
		defer r.Close()
		err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hs, Tasks: tasks}})
		return r.Recap(), err
	}
	changed := func(rc []HostRecap) int {
		n := 0
		for _, r := range rc {
			n += r.Changed
		}
		return n
	}

	rc, err := run(true, tasks)
	if err != nil || changed(rc) != 3 {
		t.Fatalf("dry run: %v %+v", err, rc)
	}
	if _, err := os.Stat(base + "/h1.conf"); !os.IsNotExist(err) {
		t.Fatal("the dry run wrote a file")
	}
	if rc, err = run(false, tasks); err != nil || changed(rc) != 3 {
		t.Fatalf("run: %v %+v", err, rc)
	}
	if b, _ := os.ReadFile(base + "/h2.conf"); string(b) != "host h2\n" {
		t.Fatalf("h2.conf = %q", b)
	}
	if rc, err = run(false, tasks); err != nil || changed(rc) != 0 {
		t.Fatalf("re-run changed something: %v %+v", err, rc)
	}

	failing := Task{Name: "fails on h1 and h3", Apply: func(ctx context.Context, h *Host) error {
		if h.Name == "h2" {
			return nil
		}
		_, err := h.Sudo(ctx, "echo first line >&2; echo \"disk full on "+h.Name+"\" >&2; exit 4")
		return err
	}}
	_, err = run(false, []Task{failing})
	msg := fmt.Sprint(err)
	for _, want := range []string{"2 failure(s):", "h1: p / fails on h1 and h3: command", "exited 4: first line\n    disk full on h1", "h3: p / fails on h1 and h3", "disk full on h3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "h2:") {
		t.Errorf("h2 succeeded but is in the report:\n%s", msg)
	}
}
