package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/transport"
)

// fakeConn stands in for a host in unit tests of the scheduling rules; the real transport is
// tested against a real sshd in internal/transport and end to end on lab hosts.
type fakeConn struct {
	name string
	mu   sync.Mutex
	cmds []string
}

func (c *fakeConn) Name() string { return c.name }
func (c *fakeConn) Run(_ context.Context, cmd transport.Cmd) (transport.Result, error) {
	c.mu.Lock()
	c.cmds = append(c.cmds, cmd.Command)
	c.mu.Unlock()
	if strings.HasPrefix(cmd.Command, "fail") {
		return transport.Result{ExitCode: 3, Stderr: []byte("line1\nboom " + cmd.Command + "\n")}, nil
	}
	return transport.Result{Stdout: []byte(cmd.Command)}, nil
}
func (c *fakeConn) WriteFile(context.Context, []byte, transport.FileSpec) (bool, error) {
	return true, nil
}
func (c *fakeConn) Upload(context.Context, string, transport.FileSpec) (bool, error) {
	return true, nil
}
func (c *fakeConn) Close() error { return nil }

type fakeDialer struct {
	mu    sync.Mutex
	conns map[string]*fakeConn
	down  map[string]bool
	dials atomic.Int32
}

func (d *fakeDialer) Get(_ context.Context, t transport.Target) (transport.Conn, error) {
	d.dials.Add(1)
	if d.down[t.Name] {
		return nil, fmt.Errorf("dial %s: connection refused", t.Name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		d.conns = map[string]*fakeConn{}
	}
	c, ok := d.conns[t.Name]
	if !ok {
		c = &fakeConn{name: t.Name}
		d.conns[t.Name] = c
	}
	return c, nil
}

func hosts(names ...string) []*cluster.Host {
	var out []*cluster.Host
	for _, n := range names {
		out = append(out, &cluster.Host{Name: n, Target: transport.Target{Name: n, Password: "s3cret-" + n}})
	}
	return out
}

// runTask is a task whose Apply runs a command (fails when the command starts with "fail").
func cmdTask(name, cmd string, needed bool) Task {
	return Task{
		Name: name,
		Check: func(context.Context, *Host) (string, error) {
			if needed {
				return "apply " + name, nil
			}
			return "", nil
		},
		Apply: func(ctx context.Context, h *Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: cmd})
			return err
		},
	}
}

func TestRunStatusesAndRecap(t *testing.T) {
	d := &fakeDialer{}
	r := New(d, Options{})
	hs := hosts("a", "b", "c")
	phases := []Phase{{Name: "p", Hosts: hs, Tasks: []Task{
		cmdTask("already", "x", false),
		cmdTask("change", "y", true),
		{Name: "only-b", When: func(h *Host) bool { return h.Name == "b" }, Check: func(context.Context, *Host) (string, error) { return "", nil }},
	}}}
	if err := r.Run(context.Background(), phases); err != nil {
		t.Fatal(err)
	}
	recap := r.Recap()
	want := map[string][4]int{"a": {1, 1, 1, 0}, "b": {2, 1, 0, 0}, "c": {1, 1, 1, 0}}
	for _, rc := range recap {
		got := [4]int{rc.OK, rc.Changed, rc.Skipped, rc.Failed}
		if got != want[rc.Host] {
			t.Errorf("%s: ok/changed/skipped/failed = %v, want %v", rc.Host, got, want[rc.Host])
		}
	}
	if n := d.dials.Load(); n != 3 {
		t.Errorf("dialed %d times, want one connection per host (3)", n)
	}
}

func TestDryRunNeverApplies(t *testing.T) {
	d := &fakeDialer{}
	var events []Event
	rep := &recordingReporter{events: &events}
	r := New(d, Options{DryRun: true, Report: rep})
	err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hosts("a"), Tasks: []Task{cmdTask("t", "touch /x", true)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.conns["a"].cmds) != 0 {
		t.Errorf("dry run ran commands: %v", d.conns["a"].cmds)
	}
	if len(events) != 1 || events[0].Status != StatusChanged || events[0].Change != "would apply t" {
		t.Errorf("events = %+v", events)
	}
}

func TestFailurePolicy(t *testing.T) {
	tests := []struct {
		name         string
		critical     bool
		wantNextRuns bool // does the second phase run?
		wantAfterB   int  // commands run on host a in the failing phase after b failed
	}{
		{"non-critical continues other hosts", false, true, 1},
		{"critical stops the run", true, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDialer{}
			r := New(d, Options{})
			hs := hosts("a", "b")
			failOnB := Task{Name: "maybe-fail", Apply: func(ctx context.Context, h *Host) error {
				cmd := "ok"
				if h.Name == "b" {
					cmd = "fail-on-b"
				}
				_, err := h.Run(ctx, transport.Cmd{Command: cmd})
				return err
			}}
			err := r.Run(context.Background(), []Phase{
				{Name: "first", Hosts: hs, Critical: tt.critical, Tasks: []Task{failOnB, cmdTask("after", "after", true)}},
				{Name: "second", Hosts: hs, Tasks: []Task{cmdTask("second", "second", true)}},
			})
			if err == nil {
				t.Fatal("want an error")
			}
			var te *TaskError
			if !errors.As(err, &te) || te.Host != "b" || te.Phase != "first" || te.Task != "maybe-fail" {
				t.Fatalf("error does not name host/phase/task: %v", err)
			}
			var ce *CommandError
			if !errors.As(err, &ce) || ce.ExitCode != 3 || !strings.Contains(ce.Stderr, "boom fail-on-b") {
				t.Fatalf("error does not carry command and stderr: %v", err)
			}
			aCmds := strings.Join(d.conns["a"].cmds, ",")
			if got := strings.Contains(aCmds, "second"); got != tt.wantNextRuns {
				t.Errorf("second phase ran on a = %v, want %v (a ran %s)", got, tt.wantNextRuns, aCmds)
			}
			if strings.Contains(strings.Join(d.conns["b"].cmds, ","), "after") {
				t.Error("failed host b went on to the next task")
			}
			if tt.critical && !errors.Is(err, ErrStopped) {
				t.Errorf("critical failure should say the run stopped: %v", err)
			}
		})
	}
}

func TestUnreachableHostIsReportedOthersComplete(t *testing.T) {
	d := &fakeDialer{down: map[string]bool{"b": true}}
	r := New(d, Options{})
	err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hosts("a", "b", "c"), Tasks: []Task{cmdTask("t", "t", true), cmdTask("t2", "t2", true)}}})
	if err == nil || !strings.Contains(err.Error(), "b: p / t: connect: dial b: connection refused") {
		t.Fatalf("err = %v", err)
	}
	if strings.Count(err.Error(), "\n  - ") != 1 {
		t.Errorf("one unreachable host should be one failure, got:\n%v", err)
	}
	for _, h := range []string{"a", "c"} {
		if got := strings.Join(d.conns[h].cmds, ","); got != "t,t2" {
			t.Errorf("%s ran %q", h, got)
		}
	}
}

func TestAggregatedReportFromSeveralHosts(t *testing.T) {
	d := &fakeDialer{}
	r := New(d, Options{})
	err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hosts("a", "b", "c"), Tasks: []Task{cmdTask("t", "fail now", true)}}})
	msg := fmt.Sprint(err)
	if !strings.HasPrefix(msg, "3 failure(s):") {
		t.Fatalf("want 3 failures, got:\n%s", msg)
	}
	for _, h := range []string{"a", "b", "c"} {
		if !strings.Contains(msg, "\n  - "+h+": p / t: command \"fail now\" exited 3") {
			t.Errorf("report lacks host %s:\n%s", h, msg)
		}
	}
}

func TestRollingSerialOneAtATime(t *testing.T) {
	d := &fakeDialer{}
	r := New(d, Options{})
	var running, maxRunning atomic.Int32
	task := Task{Name: "roll", Apply: func(context.Context, *Host) error {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		running.Add(-1)
		return nil
	}}
	if err := r.Run(context.Background(), []Phase{{Name: "p", Serial: 1, Hosts: hosts("a", "b", "c", "d"), Tasks: []Task{task, task}}}); err != nil {
		t.Fatal(err)
	}
	if maxRunning.Load() != 1 {
		t.Errorf("serial 1 ran %d hosts at once", maxRunning.Load())
	}
}

func TestRollingCriticalStopsAtFirstFailure(t *testing.T) {
	d := &fakeDialer{}
	r := New(d, Options{})
	var done []string
	var mu sync.Mutex
	task := Task{Name: "roll", Apply: func(_ context.Context, h *Host) error {
		mu.Lock()
		done = append(done, h.Name)
		mu.Unlock()
		if h.Name == "b" {
			return errors.New("member not healthy")
		}
		return nil
	}}
	err := r.Run(context.Background(), []Phase{{Name: "etcd", Serial: 1, Critical: true, Hosts: hosts("a", "b", "c"), Tasks: []Task{task}}})
	if err == nil || !errors.Is(err, ErrStopped) {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(done, ",") != "a,b" {
		t.Errorf("rolled over %v, want a,b and stop", done)
	}
}

func TestLimit(t *testing.T) {
	d := &fakeDialer{}
	r := New(d, Options{Limit: []string{"b"}})
	if err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hosts("a", "b"), Tasks: []Task{cmdTask("t", "t", true)}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.conns["a"]; ok {
		t.Error("host a is outside --limit but was contacted")
	}
}

func TestRunLogMasksSecretsAndIs0600(t *testing.T) {
	dir := t.TempDir()
	d := &fakeDialer{}
	r := New(d, Options{RunDir: dir})
	task := Task{Name: "login", Apply: func(ctx context.Context, h *Host) error {
		_, err := h.Run(ctx, transport.Cmd{Command: "echo s3cret-a token-xyz", Secrets: []string{"token-xyz"}})
		return err
	}}
	if err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hosts("a"), Tasks: []Task{task}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.log")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "token-xyz") {
		t.Errorf("secret in log:\n%s", b)
	}
	if !strings.Contains(string(b), "echo ******** ********") {
		t.Errorf("log lacks the masked command:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %o, want 600", fi.Mode().Perm())
	}
}

func TestCancelledContextStops(t *testing.T) {
	d := &fakeDialer{}
	r := New(d, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Run(ctx, []Phase{{Name: "p", Hosts: hosts("a"), Tasks: []Task{cmdTask("t", "t", true)}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(d.conns) != 0 {
		t.Error("a cancelled run contacted hosts")
	}
}

type recordingReporter struct {
	mu     sync.Mutex
	events *[]Event
}

func (r *recordingReporter) PhaseStart(string, int, int)    {}
func (r *recordingReporter) PhaseEnd(string, time.Duration) {}
func (r *recordingReporter) TaskDone(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.events = append(*r.events, e)
}

func TestVerboseEchoesMaskedCommands(t *testing.T) {
	var b strings.Builder
	r := New(&fakeDialer{}, Options{Commands: &b})
	task := Task{Name: "t", Apply: func(ctx context.Context, h *Host) error {
		_, err := h.Run(ctx, transport.Cmd{Command: "login s3cret-a\nsecond line", Sudo: true})
		return err
	}}
	if err := r.Run(context.Background(), []Phase{{Name: "p", Hosts: hosts("a"), Tasks: []Task{task}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "[a] $ login ******** … (sudo)") || strings.Contains(b.String(), "s3cret") {
		t.Errorf("echo: %q", b.String())
	}
}

// Lockstep: every host finishes a task before any host starts the next one.
func TestLockstepOrder(t *testing.T) {
	r := New(&fakeDialer{}, Options{})
	var mu sync.Mutex
	var order []string
	step := func(name string) Task {
		return Task{Name: name, Apply: func(_ context.Context, h *Host) error {
			if h.Name == "a" {
				time.Sleep(50 * time.Millisecond) // the slow host
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}}
	}
	err := r.Run(context.Background(), []Phase{{Name: "p", Lockstep: true, Hosts: hosts("a", "b", "c"), Tasks: []Task{step("1"), step("2")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != "111222" {
		t.Errorf("order %s, want every host's task 1 before any task 2", got)
	}
}
