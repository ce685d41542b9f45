package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/playbook"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/state"
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

// loadCluster reads the inventory and common.yaml.
func loadCluster(g *globalOptions) (*cluster.Cluster, error) {
	return cluster.Load(g.inventory, g.config)
}

// openSession opens the playbook session of a command that works on hosts.
func openSession(cmd *cobra.Command, g *globalOptions, f *runFlags) (*playbook.Session, error) {
	var rep runner.Reporter = runner.NewLineReporter(cmd.OutOrStdout(), g.verbose)
	if out, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(out.Fd())) && !g.verbose {
		rep = runner.NewBarReporter(out)
	}
	o := playbook.Options{
		Inventory: g.inventory, Config: g.config, State: state.Dir(f.stateDir), ArtifactsDir: f.artifactsDir,
		Forks: f.forks, Limit: f.limit, DryRun: f.dryRun,
		KnownHostsFile: f.knownHosts, AcceptNewHostKeys: f.acceptNewKeys,
		ConnectTimeout: f.connectTimeout, CommandTimeout: f.commandTimeout,
		Report: rep, Out: cmd.OutOrStdout(),
	}
	if g.verbose {
		o.Commands = cmd.OutOrStdout()
	}
	return playbook.Open(o)
}

// confirm asks on the command's input and wants "yes".
func confirm(cmd *cobra.Command) playbook.Confirm {
	return func(what string) bool {
		fmt.Fprintf(cmd.OutOrStdout(), "%s Type yes to go on: ", what)
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && err != io.EOF {
			return false
		}
		return strings.TrimSpace(line) == "yes"
	}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
