package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kinstall/kinstall/internal/version"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
)

// Snapshot saves a snapshot of the keyspace from a healthy member (the leader when it is
// healthy) to a 0600 file under the state directory and returns its path.
func (r *Role) Snapshot(ctx context.Context, label string) (string, error) {
	st := r.client.Status(ctx)
	if !st.HasQuorum() {
		return "", fmt.Errorf("etcd snapshot: %s", st.Summary())
	}
	var from *cluster.Host
	for _, m := range st.Members {
		if m.Healthy && !m.Learner && (from == nil || m.Leader) {
			if h := r.c.Host(m.Name); h != nil {
				from = h
			}
		}
	}
	if from == nil {
		return "", fmt.Errorf("etcd snapshot: no healthy member")
	}
	dir := r.opts.State.Backups()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cli, err := r.client.dial(ClientURL(from))
	if err != nil {
		return "", err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rc, err := cli.Snapshot(sctx)
	if err != nil {
		return "", fmt.Errorf("etcd snapshot from %s: %w", from.Name, err)
	}
	defer rc.Close()
	name := "etcd-" + time.Now().Format("20060102-150405")
	if label != "" {
		name += "-" + label
	}
	path := filepath.Join(dir, name+".db")
	tmp, err := os.OpenFile(path+".part", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path + ".part")
		return "", fmt.Errorf("etcd snapshot from %s: %w", from.Name, err)
	}
	if n == 0 {
		os.Remove(path + ".part")
		return "", fmt.Errorf("etcd snapshot from %s: empty", from.Name)
	}
	return path, os.Rename(path+".part", path)
}

// semver parses vMAJOR.MINOR.PATCH.
func semver(v string) ([3]int, error) { return version.Parse(v) }

func compareVersions(a, b [3]int) int { return version.Compare(a, b) }

// UpgradePlan is a checked rolling upgrade: the order members go in, and the phases to run.
type UpgradePlan struct {
	From, To string   // versions (From: the lowest running)
	Order    []string // followers first, the leader last
	Phases   []runner.Phase
	Status   Status
}

// PlanUpgrade checks that an upgrade to version may start and returns its phases: stage the
// binaries everywhere, then one member at a time stop, replace, start, wait until healthy and
// caught up. It refuses when a member is unhealthy, when the cluster is at its failure
// tolerance, for a downgrade, or for a jump of more than one minor version.
func (r *Role) PlanUpgrade(ctx context.Context, version string) (*UpgradePlan, error) {
	to, err := semver(version)
	if err != nil {
		return nil, err
	}
	st := r.client.Status(ctx)
	var down []string
	for _, m := range st.Members {
		if !m.Healthy || m.Learner || !m.InCluster {
			why := m.Err
			if m.Learner {
				why = "learner"
			}
			down = append(down, m.Name+" ("+why+")")
		}
	}
	if len(down) > 0 {
		return nil, fmt.Errorf("refusing to upgrade etcd: %s not healthy voting member(s); an upgrade takes one member down at a time, so every member must be healthy first (%s)",
			strings.Join(down, ", "), st.Summary())
	}
	if st.Tolerates() < 1 {
		return nil, fmt.Errorf("refusing to upgrade etcd: %s; taking one member down would stop writes. Add members first (3 tolerate one failure)", st.Summary())
	}
	up := &UpgradePlan{To: version, Status: st}
	var lowest [3]int
	for i, m := range st.Members {
		v, err := semver(m.Version)
		if err != nil {
			return nil, fmt.Errorf("%s reports version %q", m.Name, m.Version)
		}
		if i == 0 || compareVersions(v, lowest) < 0 {
			lowest, up.From = v, "v"+strings.TrimPrefix(m.Version, "v")
		}
		if compareVersions(to, v) < 0 {
			return nil, fmt.Errorf("refusing to downgrade etcd on %s from v%s to %s: etcd does not support it this way; restore a snapshot taken before the upgrade instead", m.Name, m.Version, version)
		}
		if to[0] != v[0] || to[1] > v[1]+1 {
			return nil, fmt.Errorf("refusing to upgrade etcd on %s from v%s to %s: upgrade one minor version at a time", m.Name, m.Version, version)
		}
	}
	leader := ""
	for _, h := range r.c.Etcd {
		if m, _ := st.Member(h.Name); m.Leader {
			leader = h.Name
			continue
		}
		up.Order = append(up.Order, h.Name)
	}
	if leader != "" {
		up.Order = append(up.Order, leader)
	}
	var hosts []*cluster.Host
	for _, n := range up.Order {
		hosts = append(hosts, r.c.Host(n))
	}
	up.Phases = []runner.Phase{
		{Name: "etcd/stage", Hosts: hosts, Tasks: []runner.Task{StageTask(r.opts.Artifacts, version)}, Critical: true},
		{Name: "etcd/upgrade", Hosts: hosts, Serial: 1, Critical: true, Tasks: []runner.Task{{
			Name:  "etcd " + version,
			Check: func(ctx context.Context, h *runner.Host) (string, error) { return r.binariesCheck(ctx, h, version) },
			Apply: func(ctx context.Context, h *runner.Host) error { return r.upgradeMember(ctx, h, version) },
		}}},
	}
	return up, nil
}

// upgradeMember replaces one member's binary: only while every other member is healthy, and it
// returns only when the member is healthy again, runs the new version and has caught up.
func (r *Role) upgradeMember(ctx context.Context, h *runner.Host, version string) error {
	st := r.client.Status(ctx)
	if err := GuardStop(st, h.Name); err != nil {
		return err
	}
	var leaderIndex uint64
	for _, m := range st.Members {
		if m.RaftIndex > leaderIndex {
			leaderIndex = m.RaftIndex
		}
	}
	if _, err := h.Sudo(ctx, "systemctl stop etcd"); err != nil {
		return err
	}
	if err := r.installBinaries(ctx, h, version); err != nil {
		// Put the member back as it was rather than leave it down.
		_, _ = h.Sudo(ctx, "systemctl start --no-block etcd")
		return err
	}
	if _, err := h.Sudo(ctx, "systemctl start --no-block etcd"); err != nil {
		return err
	}
	return r.waitCaughtUp(ctx, h.Host, version, leaderIndex, 2*time.Minute)
}

// waitCaughtUp waits until the member is healthy, reports version and has applied at least
// index (the highest raft index seen before it stopped).
func (r *Role) waitCaughtUp(ctx context.Context, h *cluster.Host, version string, index uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := "not answering"
	for {
		m := r.client.memberStatus(ctx, h)
		switch {
		case !m.Healthy:
			last = m.Err
		case "v"+strings.TrimPrefix(m.Version, "v") != version:
			last = "still reports v" + m.Version
		case m.Applied < index:
			last = fmt.Sprintf("applied index %d, behind %d", m.Applied, index)
		default:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd member %s not back after the upgrade within %s: %s (see journalctl -u etcd on %s); the upgrade stops here with the other members untouched",
				h.Name, timeout, last, h.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// CheckRemove says whether member name may be removed (see GuardRemove) and returns it.
func (r *Role) CheckRemove(ctx context.Context, name string, deadOK bool) (MemberStatus, error) {
	if r.c.Host(name) == nil {
		return MemberStatus{}, fmt.Errorf("no host %s in %s", name, r.c.InventoryFile)
	}
	st := r.client.Status(ctx)
	if err := GuardRemove(st, name, deadOK); err != nil {
		return MemberStatus{}, err
	}
	m, _ := st.Member(name)
	return m, nil
}

// CleanScript removes a member's service, data, settings, certificates and binaries (reset).
const CleanScript = "systemctl disable --now etcd >/dev/null 2>&1; rm -rf " + DataDir + " " + EnvFile + " /etc/etcd " + UnitFile + " " + CertDir + " " + BinDir + "/etcd " + BinDir + "/etcdctl " + BinDir + "/etcdutl " + StageDir + "/etcd-*; systemctl daemon-reload; true"

// CleanPhase stops etcd on a removed member's host and deletes its data and settings (the
// binaries stay), so it can neither come back with stale data nor be mistaken for a member.
func CleanPhase(h *cluster.Host) runner.Phase {
	clean := runner.Task{
		Name: "stop and clean",
		Check: func(ctx context.Context, hh *runner.Host) (string, error) {
			return "stop etcd, delete " + DataDir + ", " + EnvFile + ", " + BootstrapFile, nil
		},
		Apply: func(ctx context.Context, hh *runner.Host) error {
			_, err := hh.Sudo(ctx, "systemctl disable --quiet --now etcd 2>/dev/null; systemctl stop etcd 2>/dev/null; rm -rf "+DataDir+" "+EnvFile+" "+BootstrapFile)
			return err
		},
	}
	return runner.Phase{Name: "etcd/clean-removed-member", Hosts: []*cluster.Host{h}, Tasks: []runner.Task{clean}}
}

// RemoveMember removes a member checked by CheckRemove, moving leadership away first.
func (r *Role) RemoveMember(ctx context.Context, name string, m MemberStatus) error {
	return r.removeMember(ctx, name, m)
}

func (r *Role) removeMember(ctx context.Context, name string, m MemberStatus) error {
	cli, err := r.client.Cluster()
	if err != nil {
		return err
	}
	defer cli.Close()
	if m.Leader {
		// Hand leadership over first, so removing the leader costs no election time.
		st := r.client.Status(ctx)
		for _, o := range st.Members {
			if o.Name != name && o.Healthy && !o.Learner && o.InCluster {
				lc, err := r.client.dial(m.Endpoint)
				if err == nil {
					mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err = lc.MoveLeader(mctx, o.ID)
					cancel()
					lc.Close()
				}
				if err != nil {
					return fmt.Errorf("move etcd leadership from %s to %s: %w", name, o.Name, err)
				}
				break
			}
		}
	}
	// etcd refuses (ErrUnhealthy) until its leader has been connected to a quorum for a few
	// seconds, e.g. just after a membership change or a leader move: wait for that, briefly.
	for deadline := time.Now().Add(30 * time.Second); ; {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cli.MemberRemove(rctx, m.ID)
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			return fmt.Errorf("etcd member remove %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// PlanRestore returns the phases that rebuild the cluster from a snapshot file on the taskbox:
// stop every member, keep each old data directory aside, restore the snapshot on every member
// with the same membership, start them together and wait for health.
func (r *Role) PlanRestore(snapshot string) ([]runner.Phase, error) {
	if st, err := os.Stat(snapshot); err != nil || st.Size() == 0 {
		return nil, fmt.Errorf("snapshot %s: not a readable, non-empty file", snapshot)
	}
	stamp := time.Now().Format("20060102-150405")
	remote := "/var/lib/etcd-restore-" + stamp + ".db"
	aside := DataDir + ".before-restore-" + stamp
	token := r.Token() + "-restored-" + stamp // a new cluster ID: old members cannot rejoin it by mistake
	hosts := r.c.Etcd
	stop := runner.Task{Name: "stop etcd", Apply: func(ctx context.Context, h *runner.Host) error {
		_, err := h.Sudo(ctx, "systemctl stop etcd")
		return err
	}}
	restore := runner.Task{Name: "restore snapshot", Apply: func(ctx context.Context, h *runner.Host) error {
		if _, err := h.Conn.Upload(ctx, snapshot, transport.FileSpec{Path: remote, Mode: 0o600, Sudo: true}); err != nil {
			return err
		}
		cmd := fmt.Sprintf("set -e; if [ -d %[1]s ]; then mv %[1]s %[2]s; fi; %[3]s/etcdutl snapshot restore %[4]s --name %[5]s --initial-cluster %[6]s --initial-cluster-token %[7]s --initial-advertise-peer-urls %[8]s --data-dir %[1]s >/dev/null; chmod 0700 %[1]s; rm -f %[4]s %[9]s",
			DataDir, aside, BinDir, remote, quote(h.Name), quote(r.initialCluster()), quote(token), quote(PeerURL(h.Host)), BootstrapFile)
		_, err := h.Sudo(ctx, cmd)
		return err
	}}
	start := runner.Task{Name: "start etcd", Apply: func(ctx context.Context, h *runner.Host) error {
		_, err := h.Sudo(ctx, "systemctl start --no-block etcd")
		return err
	}}
	healthy := runner.Task{Name: "healthy", Check: func(ctx context.Context, h *runner.Host) (string, error) {
		if h.DryRun {
			return "", nil
		}
		return "", r.WaitHealthy(ctx, h.Host, 2*time.Minute)
	}}
	return []runner.Phase{
		{Name: "etcd/restore", Hosts: hosts, Tasks: []runner.Task{stop, restore, start, healthy}, Lockstep: true, Critical: true},
	}, nil
}
