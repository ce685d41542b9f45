// Package playbook is what each kinstall command does: the ordered phases of install with
// their hosts, seriality and criticality (the rows `kinstall plan` prints are the rows the run
// executes), and the day-2 orchestration (upgrades, remove-node, reset, etcd, certs, verify).
// Everything runs in a Session: the cluster, the runner over one pool of connections, the
// state directory and the artifacts source. cmd/kinstall only maps flags to Options, asks
// questions and prints.
package playbook

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/state"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/role"
)

// Options are a command's settings, as the operator gave them.
type Options struct {
	Inventory, Config string
	State             state.Dir
	ArtifactsDir      string // a local bundle instead of pinned downloads
	Forks             int
	Limit             []string // host and group names
	DryRun            bool

	KnownHostsFile    string
	AcceptNewHostKeys bool
	ConnectTimeout    time.Duration
	CommandTimeout    time.Duration

	Report   runner.Reporter // progress; default: none
	Commands io.Writer       // -v: every command's first line, secrets masked
	Out      io.Writer       // what day-2 steps tell the operator; default: discarded

	// Dialer connects to hosts; nil: SSH and local connections (tests pass a fake).
	Dialer runner.Dialer
}

// Session is one command's run.
type Session struct {
	Cluster   *cluster.Cluster
	Runner    *runner.Runner
	State     state.Dir
	Artifacts *artifacts.Source
	RunDir    string // this run's per-host logs
	Env       *role.Env
	DryRun    bool
	Out       io.Writer

	limit []string
	pool  *transport.Pool
	etcd  *etcd.Role
}

// Open loads the inventory and common.yaml and prepares the connections; nothing is contacted
// until a phase or a command needs a host.
func Open(o Options) (*Session, error) {
	c, err := cluster.Load(o.Inventory, o.Config)
	if err != nil {
		return nil, err
	}
	return OpenCluster(c, o)
}

// OpenCluster is Open for a cluster already loaded.
func OpenCluster(c *cluster.Cluster, o Options) (*Session, error) {
	limit, err := ResolveLimit(c, o.Limit)
	if err != nil {
		return nil, err
	}
	if o.State == "" {
		o.State = state.DefaultDir
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	s := &Session{Cluster: c, State: o.State, DryRun: o.DryRun, Out: o.Out, limit: limit}
	dialer := o.Dialer
	if dialer == nil {
		s.pool = transport.NewPool(transport.Options{
			KnownHostsFile:    o.KnownHostsFile,
			AcceptNewHostKeys: o.AcceptNewHostKeys,
			ConnectTimeout:    o.ConnectTimeout,
			CommandTimeout:    o.CommandTimeout,
		})
		dialer = s.pool
	}
	s.RunDir = o.State.NewRun(time.Now())
	s.Runner = runner.New(dialer, runner.Options{Forks: o.Forks, DryRun: o.DryRun, Limit: limit,
		RunDir: s.RunDir, Report: o.Report, Commands: o.Commands})
	bundle := o.ArtifactsDir
	if bundle != "" {
		// A bundle tar (kinstall artifacts export) is unpacked once next to the downloads.
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("artifacts: no cache directory: %w", err)
		}
		if bundle, err = artifacts.OpenBundle(bundle, filepath.Join(cache, "kinstall", "bundles")); err != nil {
			return nil, err
		}
	}
	s.Artifacts = &artifacts.Source{BundleDir: bundle, FilesRepo: c.Config.FilesRepo,
		TrustMirrorSums: c.Config.FilesChecksums == config.ChecksumsMirror, ExtraSums: c.Config.FilesSHA256}
	s.Env = &role.Env{Cluster: c, State: o.State, Artifacts: s.Artifacts}
	return s, nil
}

// Close closes the run's logs and connections.
func (s *Session) Close() {
	_ = s.Runner.Close()
	if s.pool != nil {
		s.pool.CloseAll()
	}
}

// Run runs phases and tells the operator the recap and where the logs are.
func (s *Session) Run(ctx context.Context, phases []runner.Phase) error {
	err := s.Runner.Run(ctx, phases)
	fmt.Fprintln(s.Out)
	runner.PrintRecap(s.Out, s.Runner.Recap())
	fmt.Fprintf(s.Out, "logs: %s\n", s.RunDir)
	return err
}

// Etcd is the etcd role of this session, prepared once.
func (s *Session) Etcd() (*etcd.Role, error) {
	if len(s.Cluster.Etcd) == 0 {
		return nil, fmt.Errorf("%s has no [etcd] hosts", s.Cluster.InventoryFile)
	}
	if s.etcd == nil {
		r, err := etcd.New(s.Env)
		if err != nil {
			return nil, err
		}
		s.etcd = r
	}
	return s.etcd, nil
}

// LimitHosts returns the --limit hosts of all, or all when there is no --limit.
func (s *Session) LimitHosts(all []*cluster.Host) []*cluster.Host {
	if len(s.limit) == 0 {
		return all
	}
	in := map[string]bool{}
	for _, n := range s.limit {
		in[n] = true
	}
	var out []*cluster.Host
	for _, h := range all {
		if in[h.Name] {
			out = append(out, h)
		}
	}
	return out
}

// ResolveLimit turns --limit host and group names into host names.
func ResolveLimit(c *cluster.Cluster, limit []string) ([]string, error) {
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
