// Package e2e runs kinstall against real lab hosts: Docker containers with systemd and sshd
// (internal/lab). The lab starts a Docker engine when none runs; the tests skip, saying why,
// only where that is impossible (not root, no Docker package) or with -short.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinstall/kinstall/internal/lab"
)

// env is the lab shared by every test of the package.
type env struct {
	lab    *lab.Lab
	bin    string // the kinstall binary under test
	bundle string // the lab's artifacts bundle (make bundle)
	fake   string // test/fakeapi binary: stands in for kube-apiserver behind load balancers
}

// Versions in the lab bundle: installs use the older one where a test upgrades.
const (
	etcdOld = "v3.6.8"
	etcdNew = "v3.6.14"
)

var theEnv *env
var skipReason string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		skipReason = "-short: end-to-end tests need lab hosts"
		return m.Run()
	}
	if os.Geteuid() != 0 {
		skipReason = "lab hosts need root (Docker, iptables)"
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "kinstall-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "kinstall")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/kinstall").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build kinstall: %v\n%s", err, out)
		return 1
	}
	fake := filepath.Join(dir, "fakeapi")
	fb := exec.CommandContext(ctx, "go", "build", "-o", fake, "../fakeapi")
	fb.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := fb.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fakeapi: %v\n%s", err, out)
		return 1
	}
	bundle := os.Getenv("KINSTALL_BUNDLE")
	if bundle == "" {
		bundle = "/var/tmp/kinstall-bundle"
	}
	// The bundle is a cache: the script builds only what is missing.
	build := exec.CommandContext(ctx, "bash", "../bundle/build-etcd.sh", bundle, etcdOld, etcdNew)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "bundle: %v\n", err)
		return 1
	}
	start := time.Now()
	l, err := lab.Up(ctx, lab.Options{Name: "e2e", N: 5, Subnet: "172.31.0.0/24"}, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab up: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e lab: %d hosts up in %s\n", len(l.Hosts), time.Since(start).Round(time.Millisecond))
	if os.Getenv("KINSTALL_KEEP_LAB") == "" {
		defer l.Down(context.Background())
	}
	// Distribution packages (haproxy, keepalived) for offline installs, resolved in a lab host.
	debs := exec.CommandContext(ctx, "bash", "../bundle/build-debs.sh", bundle)
	debs.Stdout, debs.Stderr = os.Stderr, os.Stderr
	if err := debs.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "bundle packages: %v\n", err)
		return 1
	}
	theEnv = &env{lab: l, bin: bin, bundle: bundle, fake: fake}
	return m.Run()
}

func lab_(t *testing.T) *env {
	t.Helper()
	if theEnv == nil {
		t.Skip(skipReason)
	}
	return theEnv
}

// result of one kinstall run.
type result struct {
	out  string // stdout and stderr
	code int
	took time.Duration
}

// kinstall runs the binary against the lab's inventory and config.
func (e *env) kinstall(t *testing.T, args ...string) result {
	t.Helper()
	return e.kinstallCtx(context.Background(), t, args...)
}

func (e *env) kinstallCtx(ctx context.Context, t *testing.T, args ...string) result {
	t.Helper()
	cmd := e.command(ctx, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	start := time.Now()
	err := cmd.Run()
	r := result{out: b.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kinstall %v: %v", args, err)
	}
	e.assertNoSecrets(t, r.out)
	return r
}

func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	l := e.lab
	return e.commandWith(ctx, files{inventory: l.InventoryFile, config: l.ConfigFile, state: filepath.Join(l.Dir, "state")}, args...)
}

// files are the inputs and state of a kinstall run. artifacts, when set, replaces the lab
// bundle's --artifacts ("-": none, the online path).
type files struct{ inventory, config, state, artifacts string }

func (e *env) commandWith(ctx context.Context, f files, args ...string) *exec.Cmd {
	// The file flags go before a "--" (after it everything is the command of `exec`).
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i:]
			break
		}
	}
	full := append([]string{}, args...)
	full = append(full, "-i", f.inventory, "-c", f.config)
	if args[0] != "check" && args[0] != "plan" && args[0] != "inventory" {
		full = append(full, "--known-hosts", e.lab.KnownHostsFile, "--state-dir", f.state)
		switch f.artifacts {
		case "":
			full = append(full, "--artifacts", e.bundle)
		case "-":
			full = append(full, "--artifacts", "")
		default:
			full = append(full, "--artifacts", f.artifacts)
		}
	}
	return exec.CommandContext(ctx, e.bin, append(full, rest...)...)
}

// run runs kinstall with other files than the lab's.
func (e *env) run(t *testing.T, f files, args ...string) result {
	t.Helper()
	cmd := e.commandWith(context.Background(), f, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	start := time.Now()
	err := cmd.Run()
	r := result{out: b.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kinstall %v: %v", args, err)
	}
	e.assertNoSecrets(t, r.out)
	return r
}

// assertNoSecrets: the ops password is in the inventory; it must never be printed.
func (e *env) assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	if e.lab.OpsPassword != "" && strings.Contains(s, e.lab.OpsPassword) {
		t.Errorf("the become password appears in kinstall's output")
	}
}

// exec runs a command in a lab host (docker exec), for assertions on its real state.
func (e *env) sh(t *testing.T, host, cmd string) string {
	t.Helper()
	out, err := e.lab.Exec(context.Background(), host, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
