package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles"
)

// runFlags are the flags of every command that works on hosts.
type runFlags struct {
	forks          int
	limit          []string
	dryRun         bool
	only, skip     []string
	knownHosts     string
	acceptNewKeys  bool
	connectTimeout time.Duration
	commandTimeout time.Duration
	stateDir       string
	artifactsDir   string
}

func (f *runFlags) register(cmd *cobra.Command, withPhases bool) {
	fl := cmd.Flags()
	fl.IntVar(&f.forks, "forks", 100, "hosts worked on at once")
	fl.StringSliceVar(&f.limit, "limit", nil, "only these hosts or groups (comma-separated)")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file for host key checks (default ~/.ssh/known_hosts)")
	fl.BoolVar(&f.acceptNewKeys, "accept-new-host-keys", false, "record unknown SSH host keys (trust on first use); changed keys are always refused")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 10*time.Second, "SSH connect timeout per host")
	fl.DurationVar(&f.commandTimeout, "command-timeout", 10*time.Minute, "timeout of one command on a host")
	fl.StringVar(&f.stateDir, "state-dir", ".kinstall", "where run logs and cluster state (PKI, etcd snapshots) are kept on the taskbox")
	fl.StringVar(&f.artifactsDir, "artifacts", os.Getenv("KINSTALL_ARTIFACTS"), "local bundle directory with binaries and SHA256SUMS (air-gapped); default: download pinned releases once on the taskbox ($KINSTALL_ARTIFACTS)")
	if withPhases {
		fl.BoolVar(&f.dryRun, "check", false, "dry run: show what would change, change nothing")
		fl.StringSliceVar(&f.only, "only", nil, "run only these phases (e.g. etcd, control-plane/join)")
		fl.StringSliceVar(&f.skip, "skip", nil, "skip these phases")
	}
}

// session is what a command that works on hosts needs: the cluster, connections and a runner.
type session struct {
	cluster *cluster.Cluster
	pool    *transport.Pool
	runner  *runner.Runner
	runDir  string
	flags   *runFlags
	sources *artifacts.Source
}

// env is what roles need from this session.
func (s *session) env() *roles.Env {
	return &roles.Env{Cluster: s.cluster, StateDir: s.flags.stateDir, Artifacts: s.sources}
}

func openSession(cmd *cobra.Command, g *globalOptions, f *runFlags) (*session, error) {
	c, err := cluster.Load(g.inventory, g.config)
	if err != nil {
		return nil, err
	}
	limit, err := resolveLimit(c, f.limit)
	if err != nil {
		return nil, err
	}
	pool := transport.NewPool(transport.Options{
		KnownHostsFile:    f.knownHosts,
		AcceptNewHostKeys: f.acceptNewKeys,
		ConnectTimeout:    f.connectTimeout,
		CommandTimeout:    f.commandTimeout,
	})
	runDir := filepath.Join(f.stateDir, "runs", time.Now().Format("20060102-150405.000"))
	var rep runner.Reporter = runner.NewLineReporter(cmd.OutOrStdout(), g.verbose)
	if out, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(out.Fd())) && !g.verbose {
		rep = runner.NewBarReporter(out)
	}
	ro := runner.Options{Forks: f.forks, DryRun: f.dryRun, Limit: limit, RunDir: runDir, Report: rep}
	if g.verbose {
		ro.Commands = cmd.OutOrStdout()
	}
	r := runner.New(pool, ro)
	src := &artifacts.Source{BundleDir: f.artifactsDir}
	return &session{cluster: c, pool: pool, runner: r, runDir: runDir, flags: f, sources: src}, nil
}

func (s *session) close() {
	_ = s.runner.Close()
	s.pool.CloseAll()
}

// resolveLimit turns --limit host and group names into host names.
func resolveLimit(c *cluster.Cluster, limit []string) ([]string, error) {
	var names []string
	for _, l := range limit {
		if h := c.Host(l); h != nil {
			names = append(names, h.Name)
			continue
		}
		group := c.GroupHosts(l)
		if group == nil {
			return nil, fmt.Errorf("--limit %s: no such host or group in %s", l, c.InventoryFile)
		}
		names = append(names, group...)
	}
	return names, nil
}

// selectPhases applies --only and --skip; names are paths, so "control-plane" means
// "control-plane/init" and "control-plane/join" too.
func selectPhases(names []string, only, skip []string) (map[string]bool, error) {
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	matches := func(name, sel string) bool { return name == sel || strings.HasPrefix(name, sel+"/") }
	for _, sel := range append(append([]string{}, only...), skip...) {
		found := false
		for _, n := range names {
			found = found || matches(n, sel)
		}
		if !found {
			return nil, fmt.Errorf("no phase %q (phases: %s)", sel, strings.Join(names, ", "))
		}
	}
	out := map[string]bool{}
	for _, n := range names {
		run := len(only) == 0
		for _, sel := range only {
			run = run || matches(n, sel)
		}
		for _, sel := range skip {
			run = run && !matches(n, sel)
		}
		out[n] = run
	}
	return out, nil
}

// hostsOrLimit returns the --limit hosts, or all when there is no --limit.
func (s *session) hostsOrLimit(all []*cluster.Host) []*cluster.Host {
	if len(s.flags.limit) == 0 {
		return all
	}
	names, _ := resolveLimit(s.cluster, s.flags.limit)
	var out []*cluster.Host
	for _, n := range names {
		out = append(out, s.cluster.Host(n))
	}
	return out
}
