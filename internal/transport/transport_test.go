package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinstall/kinstall/internal/testsshd"
)

func target(s *testsshd.Server, user string) Target {
	return Target{Name: "h-" + user, Address: s.Addr, Port: s.Port, User: user, KeyFile: s.UserKeyFile}
}

func opts(s *testsshd.Server) Options {
	return Options{KnownHostsFile: s.KnownHostsFile, ConnectTimeout: 5 * time.Second, CommandTimeout: 30 * time.Second}
}

func dial(t *testing.T, s *testsshd.Server, tg Target) Conn {
	t.Helper()
	c, err := Dial(context.Background(), tg, opts(s), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runOK(t *testing.T, c Conn, cmd Cmd) string {
	t.Helper()
	res, err := c.Run(context.Background(), cmd)
	if err != nil {
		t.Fatalf("run %q: %v", cmd.Command, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("run %q: exit %d: %s", cmd.Command, res.ExitCode, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

func TestAuthAndBecome(t *testing.T) {
	s := testsshd.Start(t)
	tests := []struct {
		name     string
		tg       Target
		wantUser string
		wantRoot string // id -u with Sudo
	}{
		{"root with key", target(s, "root"), "root", "0"},
		{"sudo without password", func() Target { x := target(s, testsshd.UserNoPw); x.Become = true; return x }(), testsshd.UserNoPw, "0"},
		{"password login and sudo password", Target{Name: "pw", Address: s.Addr, Port: s.Port, User: testsshd.UserPw,
			Password: testsshd.Password, Become: true, BecomePassword: testsshd.Password}, testsshd.UserPw, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s, tt.tg)
			if got := runOK(t, c, Cmd{Command: "id -un"}); got != tt.wantUser {
				t.Errorf("user = %q, want %q", got, tt.wantUser)
			}
			if got := runOK(t, c, Cmd{Command: "id -u", Sudo: true}); got != tt.wantRoot {
				t.Errorf("sudo id -u = %q, want %q", got, tt.wantRoot)
			}
			// the login shell is still the user's
			if got := runOK(t, c, Cmd{Command: "id -un"}); got != tt.wantUser {
				t.Errorf("after sudo, user = %q", got)
			}
		})
	}
}

func TestBecomeFailures(t *testing.T) {
	s := testsshd.Start(t)
	tests := []struct {
		name string
		tg   Target
		want string
	}{
		{"wrong become password", Target{Name: "pw", Address: s.Addr, Port: s.Port, User: testsshd.UserPw, KeyFile: s.UserKeyFile, Become: true, BecomePassword: "not-it-9"}, "wrong become password"},
		{"sudo asks but no password given", Target{Name: "pw", Address: s.Addr, Port: s.Port, User: testsshd.UserPw, KeyFile: s.UserKeyFile, Become: true}, "set ansible_become_pass"},
		{"user without sudo", Target{Name: "ns", Address: s.Addr, Port: s.Port, User: testsshd.UserNoSudo, KeyFile: s.UserKeyFile, Become: true}, "sudo"},
		{"become not enabled", Target{Name: "nb", Address: s.Addr, Port: s.Port, User: testsshd.UserNoPw, KeyFile: s.UserKeyFile}, "set ansible_become=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s, tt.tg)
			start := time.Now()
			_, err := c.Run(context.Background(), Cmd{Command: "id -u", Sudo: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "not-it-9") {
				t.Errorf("the password leaked into the error: %v", err)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %s: should fail fast", d)
			}
			// the login shell still works
			if got := runOK(t, c, Cmd{Command: "echo alive"}); got != "alive" {
				t.Errorf("login shell broken: %q", got)
			}
		})
	}
}

func TestWrongLoginPasswordNeverLeaks(t *testing.T) {
	s := testsshd.Start(t)
	secret := "Wr0ng-Secret-77"
	_, err := Dial(context.Background(), Target{Name: "x", Address: s.Addr, Port: s.Port, User: testsshd.UserPw, Password: secret}, opts(s), nil)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("password in error: %v", err)
	}
}

func TestHostKeys(t *testing.T) {
	s := testsshd.Start(t)
	tg := target(s, "root")
	dir := t.TempDir()
	empty := filepath.Join(dir, "known_hosts")

	o := opts(s)
	o.KnownHostsFile = empty
	_, err := Dial(context.Background(), tg, o, nil)
	var ke *HostKeyError
	if !errors.As(err, &ke) || ke.Changed || !strings.Contains(err.Error(), "--accept-new-host-keys") {
		t.Fatalf("unknown key: err = %v", err)
	}

	o.AcceptNewHostKeys = true
	c, err := Dial(context.Background(), tg, o, nil)
	if err != nil {
		t.Fatalf("accept-new: %v", err)
	}
	c.Close()
	if fi, _ := os.Stat(empty); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %o", fi.Mode().Perm())
	}
	o.AcceptNewHostKeys = false
	c, err = Dial(context.Background(), tg, o, nil)
	if err != nil {
		t.Fatalf("recorded key should now pass strictly: %v", err)
	}
	c.Close()

	// A different key for the same address: always refused.
	other := testsshd.Start(t) // its own host key
	b, _ := os.ReadFile(other.KnownHostsFile)
	forged := strings.Replace(string(b), fmt.Sprintf("[%s]:%d", other.Addr, other.Port), fmt.Sprintf("[%s]:%d", s.Addr, s.Port), 1)
	changed := filepath.Join(dir, "changed")
	os.WriteFile(changed, []byte(forged), 0o600)
	o.KnownHostsFile = changed
	o.AcceptNewHostKeys = true
	_, err = Dial(context.Background(), tg, o, nil)
	if !errors.As(err, &ke) || !ke.Changed || !strings.Contains(err.Error(), "HOST KEY CHANGED") {
		t.Fatalf("changed key: err = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	s := testsshd.Start(t)
	// A closed port.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	o := opts(s)
	o.ConnectTimeout = 2 * time.Second
	_, err := Dial(context.Background(), Target{Name: "closed", Address: "127.0.0.1", Port: closedPort, KeyFile: s.UserKeyFile}, o, nil)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed port: %v", err)
	}
	// A port that accepts but never speaks SSH: a timeout, not a hang.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = Dial(context.Background(), Target{Name: "silent", Address: "127.0.0.1", Port: silent.Addr().(*net.TCPAddr).Port, KeyFile: s.UserKeyFile}, o, nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent port: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s with a 2s connect timeout", d)
	}
}

func TestCommandsThroughOneSession(t *testing.T) {
	s := testsshd.Start(t)
	c := dial(t, s, target(s, "root"))
	for i := 0; i < 200; i++ {
		if got := runOK(t, c, Cmd{Command: fmt.Sprintf("echo %d", i)}); got != fmt.Sprint(i) {
			t.Fatalf("echo %d = %q", i, got)
		}
	}
	if n := c.(*sshConn).Sessions(); n != 1 {
		t.Errorf("200 commands used %d SSH sessions, want 1", n)
	}
	// exit codes, stderr, stdin
	res, err := c.Run(context.Background(), Cmd{Command: "cat; echo oops >&2; exit 7", Stdin: []byte("in-data")})
	if err != nil || res.ExitCode != 7 || string(res.Stdout) != "in-data" || string(res.Stderr) != "oops\n" {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
	// large binary output is framed exactly
	res, err = c.Run(context.Background(), Cmd{Command: "head -c 5000000 /dev/urandom | tee /tmp/ki-bin | sha256sum >&2; cat /tmp/ki-bin"})
	if err != nil || len(res.Stdout) != 5000000 {
		t.Fatalf("large output: %d bytes, err %v", len(res.Stdout), err)
	}
	if got := runOK(t, c, Cmd{Command: "echo still-in-step"}); got != "still-in-step" {
		t.Fatalf("after large output: %q", got)
	}
}

func TestCommandTimeoutKillsAndConnectionGoesOn(t *testing.T) {
	s := testsshd.Start(t)
	c := dial(t, s, target(s, "root"))
	// Everything the command started goes: a plain command, a pipeline, a background job.
	for i, cmd := range []string{"sleep 31; echo never", "sleep 32 | cat", "sleep 33 & wait"} {
		start := time.Now()
		_, err := c.Run(context.Background(), Cmd{Command: cmd, Timeout: time.Second})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%q: err = %v", cmd, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q: timeout took %s", cmd, d)
		}
		if got := runOK(t, c, Cmd{Command: fmt.Sprintf("pgrep -f 'sleep 3%d' || echo gone", i+1)}); got != "gone" {
			t.Errorf("%q: the timed-out command still runs: %s", cmd, got)
		}
	}
	// The driver's variables do not leak into commands.
	if got := runOK(t, c, Cmd{Command: `echo "[$N$d$cmd$clen]"`}); got != "[]" {
		t.Errorf("driver variables visible to commands: %q", got)
	}
}

func TestContextCancelDoesNotHang(t *testing.T) {
	s := testsshd.Start(t)
	c := dial(t, s, target(s, "root"))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Run(ctx, Cmd{Command: "sleep 5"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// a new shell replaces the abandoned one
	if got := runOK(t, c, Cmd{Command: "echo back"}); got != "back" {
		t.Fatalf("got %q", got)
	}
}

func TestWriteFileAndUpload(t *testing.T) {
	s := testsshd.Start(t)
	for _, tg := range []Target{target(s, "root"), func() Target { x := target(s, testsshd.UserNoPw); x.Become = true; return x }(), {Name: "local", Local: true}} {
		t.Run(tg.Name, func(t *testing.T) {
			var c Conn
			if tg.Local {
				var err error
				c, err = Dial(context.Background(), tg, Options{}, nil)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				c = dial(t, s, tg)
			}
			dir := "/tmp/kinstall-wf-" + tg.Name
			runOK(t, c, Cmd{Command: "rm -rf " + dir, Sudo: true})
			spec := FileSpec{Path: dir + "/sub/f.conf", Mode: 0o640, Sudo: true}
			ctx := context.Background()
			for i, want := range []bool{true, false} {
				changed, err := c.WriteFile(ctx, []byte("hello\n"), spec)
				if err != nil || changed != want {
					t.Fatalf("write %d: changed=%v err=%v, want changed=%v", i, changed, err, want)
				}
			}
			if got := runOK(t, c, Cmd{Command: "stat -c '%a %U:%G' " + spec.Path + "; cat " + spec.Path, Sudo: true}); got != "640 root:root\nhello" {
				t.Errorf("file = %q", got)
			}
			helloSum := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
			if ch, err := FileChange(ctx, c, helloSum, spec); err != nil || ch != "" {
				t.Errorf("FileChange after the write = %q, %v", ch, err)
			}
			spec.Mode = 0o600
			if ch, _ := FileChange(ctx, c, helloSum, spec); ch != "mode 640 -> 600" {
				t.Errorf("FileChange for a new mode = %q", ch)
			}
			if ch, _ := FileChange(ctx, c, helloSum, FileSpec{Path: dir + "/none", Mode: 0o600, Sudo: true}); ch != "create" {
				t.Errorf("FileChange for a missing file = %q", ch)
			}
			if changed, _ := c.WriteFile(ctx, []byte("hello\n"), spec); !changed {
				t.Error("a mode change should rewrite")
			}
			// Upload 50 MiB, then again unchanged.
			big := filepath.Join(t.TempDir(), "big")
			data := make([]byte, 50<<20)
			rand.Read(data[:1<<20])
			os.WriteFile(big, data, 0o644)
			up := FileSpec{Path: dir + "/big.bin", Mode: 0o644, Sudo: true}
			start := time.Now()
			if changed, err := c.Upload(ctx, big, up); err != nil || !changed {
				t.Fatalf("upload: changed=%v err=%v", changed, err)
			}
			first := time.Since(start)
			start = time.Now()
			if changed, err := c.Upload(ctx, big, up); err != nil || changed {
				t.Fatalf("re-upload: changed=%v err=%v", changed, err)
			}
			t.Logf("50 MiB upload %s, unchanged re-upload %s", first, time.Since(start))
			if got := runOK(t, c, Cmd{Command: "ls " + dir + " | grep -c kinstall- || true", Sudo: true}); got != "0" {
				t.Errorf("temp files left behind: %s", got)
			}
		})
	}
}

func TestPoolReusesConnections(t *testing.T) {
	s := testsshd.Start(t)
	p := NewPool(opts(s))
	defer p.CloseAll()
	var wg sync.WaitGroup
	conns := make([]Conn, 10)
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := p.Get(context.Background(), target(s, "root"))
			if err != nil {
				t.Error(err)
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	for _, c := range conns[1:] {
		if c != conns[0] {
			t.Fatal("pool dialed the same host twice")
		}
	}
}

func TestLocalSudoAndTimeout(t *testing.T) {
	c, _ := Dial(context.Background(), Target{Name: "local", Local: true}, Options{}, nil)
	res, err := c.Run(context.Background(), Cmd{Command: "id -u", Sudo: true})
	if err != nil || !bytes.Equal(bytes.TrimSpace(res.Stdout), []byte(fmt.Sprint(os.Geteuid()))) && os.Geteuid() == 0 {
		t.Fatalf("res %+v err %v", res, err)
	}
	_, err = c.Run(context.Background(), Cmd{Command: "sleep 10", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkRun(b *testing.B) {
	s := testsshd.Start(b)
	c, err := Dial(context.Background(), target(s, "root"), opts(s), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 20; j++ {
			if _, err := c.Run(context.Background(), Cmd{Command: "echo x"}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
