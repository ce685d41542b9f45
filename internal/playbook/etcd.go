package playbook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/etcd"
)

// ErrNoQuorum is returned by EtcdStatus when etcd cannot take writes.
var ErrNoQuorum = errors.New("etcd has no quorum")

// EtcdStatus prints members, leader, versions, db size, health and quorum to w.
func (s *Session) EtcdStatus(ctx context.Context, w io.Writer) error {
	r, err := s.Etcd()
	if err != nil {
		return err
	}
	st := r.Client().Status(ctx)
	etcd.PrintStatus(w, st)
	if !st.HasQuorum() {
		return ErrNoQuorum
	}
	return nil
}

// EtcdBackup saves a snapshot to the state directory and returns its path.
func (s *Session) EtcdBackup(ctx context.Context) (string, error) {
	r, err := s.Etcd()
	if err != nil {
		return "", err
	}
	return r.Snapshot(ctx, "")
}

// EtcdRestore rebuilds the cluster from a snapshot; without confirmed it only refuses (a
// restore loses every write made after the snapshot).
func (s *Session) EtcdRestore(ctx context.Context, snapshot string, confirmed bool) error {
	if snapshot == "" {
		return errors.New("--snapshot FILE is required (kinstall etcd backup makes one)")
	}
	r, err := s.Etcd()
	if err != nil {
		return err
	}
	phases, err := r.PlanRestore(snapshot)
	if err != nil {
		return err
	}
	if !confirmed && !s.DryRun {
		return fmt.Errorf("restore replaces the data of every etcd member (%d) with %s: re-run with --yes", len(s.Cluster.Etcd), snapshot)
	}
	return s.Run(ctx, phases)
}

// EtcdRemove removes a member only if quorum survives, then stops and cleans its host.
func (s *Session) EtcdRemove(ctx context.Context, name string, dead bool) error {
	r, err := s.Etcd()
	if err != nil {
		return err
	}
	m, err := r.CheckRemove(ctx, name, dead)
	if err != nil {
		return err
	}
	if s.DryRun {
		fmt.Fprintf(s.Out, "DRY RUN: would remove etcd member %s (%x), then stop etcd and delete its data on %s\n", name, m.ID, name)
		return nil
	}
	if err := r.RemoveMember(ctx, name, m); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "removed etcd member %s (%x)\n", name, m.ID)
	if !m.Healthy {
		fmt.Fprintf(s.Out, "NOTE: %s was down; clean it (or reinstall it) before it comes back: its old data is refused by the cluster\n", name)
		return nil
	}
	return s.Run(ctx, []runner.Phase{etcd.CleanPhase(s.Cluster.Host(name))})
}

// UpgradeEtcd upgrades etcd to version: snapshot first, followers one by one, the leader last.
func (s *Session) UpgradeEtcd(ctx context.Context, version string) error {
	if version == "" {
		return fmt.Errorf("--version is required (e.g. --version v3.6.14)")
	}
	r, err := s.Etcd()
	if err != nil {
		return err
	}
	up, err := r.PlanUpgrade(ctx, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "etcd upgrade %s -> %s, one member at a time: %s (leader last)\n", up.From, up.To, strings.Join(up.Order, ", "))
	if s.DryRun {
		fmt.Fprintln(s.Out, "DRY RUN: nothing will be changed")
	} else {
		path, err := r.Snapshot(ctx, "before-upgrade-"+version)
		if err != nil {
			return fmt.Errorf("snapshot before the upgrade failed, nothing changed: %w", err)
		}
		fmt.Fprintf(s.Out, "snapshot: %s\n", path)
	}
	return s.Run(ctx, up.Phases)
}
