package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/etcd"
)

func newEtcdCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Operate the etcd cluster: status, backup, restore, remove a member",
		Long: `etcd talks to the members of the [etcd] group from the taskbox over TLS, with the admin
certificate kept in the state directory. Changes guard quorum: nothing that could stop the
cluster runs while another member is unhealthy.`,
		Example: `  kinstall etcd status
  kinstall etcd backup
  kinstall etcd restore --snapshot .kinstall/backups/etcd-20261124-101500.db --yes
  kinstall etcd remove node4`,
	}
	cmd.AddCommand(newEtcdStatusCmd(g), newEtcdBackupCmd(g), newEtcdRestoreCmd(g), newEtcdRemoveCmd(g))
	return cmd
}

// etcdRole opens a session and prepares the etcd role.
func etcdRole(cmd *cobra.Command, g *globalOptions, f *runFlags) (*session, *etcd.Role, error) {
	s, err := openSession(cmd, g, f)
	if err != nil {
		return nil, nil, err
	}
	if len(s.cluster.Etcd) == 0 {
		s.close()
		return nil, nil, fmt.Errorf("%s has no [etcd] hosts", s.cluster.InventoryFile)
	}
	r, err := etcd.New(s.cluster, etcd.Options{StateDir: f.stateDir, Artifacts: s.sources})
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, r, nil
}

func newEtcdStatusCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Members, leader, versions, db size, health and quorum; exits 2 when quorum is lost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, r, err := etcdRole(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			st := r.Client().Status(cmd.Context())
			etcd.PrintStatus(cmd.OutOrStdout(), st)
			if !st.HasQuorum() {
				return exitError{code: 2, err: errors.New("etcd has no quorum")}
			}
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}

func newEtcdBackupCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Save a snapshot of etcd to the state directory on the taskbox (0600)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, r, err := etcdRole(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			start := time.Now()
			path, err := r.Snapshot(cmd.Context(), "")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "snapshot: %s (%s)\n", path, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}

func newEtcdRestoreCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var snapshot string
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Rebuild the etcd cluster from a snapshot (stops every member; old data is kept aside)",
		Long: `restore stops every member, moves each data directory aside (/var/lib/etcd.before-restore-TIME),
restores the snapshot on every member with the inventory's membership and a new cluster token,
starts them together and waits until the cluster is healthy. Writes made after the snapshot are
lost, which is why it asks for --yes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if snapshot == "" {
				return errors.New("--snapshot FILE is required (kinstall etcd backup makes one)")
			}
			s, r, err := etcdRole(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			phases, err := r.PlanRestore(snapshot)
			if err != nil {
				return err
			}
			if !yes && !f.dryRun {
				return fmt.Errorf("restore replaces the data of every etcd member (%d) with %s: re-run with --yes", len(s.cluster.Etcd), snapshot)
			}
			return runPhases(cmd, s, phases)
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "snapshot file on the taskbox")
	cmd.Flags().BoolVar(&yes, "yes", false, "do it without asking")
	return cmd
}

func newEtcdRemoveCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var dead bool
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an etcd member (only if quorum survives), then stop and clean its host",
		Long: `remove refuses unless every other member is healthy and the remaining members keep quorum.
When the member to remove is the leader, leadership moves first. Then etcd is stopped on the
host and its data deleted. To remove a member whose host is dead (to replace it), add --dead.
Take the host out of the [etcd] group afterwards, or the next install adds it back.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, r, err := etcdRole(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			name := args[0]
			m, err := r.CheckRemove(cmd.Context(), name, dead)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.dryRun {
				fmt.Fprintf(out, "DRY RUN: would remove etcd member %s (%x), then stop etcd and delete its data on %s\n", name, m.ID, name)
				return nil
			}
			if err := r.RemoveMember(cmd.Context(), name, m); err != nil {
				return err
			}
			fmt.Fprintf(out, "removed etcd member %s (%x)\n", name, m.ID)
			if !m.Healthy {
				fmt.Fprintf(out, "NOTE: %s was down; clean it (or reinstall it) before it comes back: its old data is refused by the cluster\n", name)
				return nil
			}
			return runPhases(cmd, s, []runner.Phase{etcd.CleanPhase(s.cluster.Host(name))})
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&dead, "dead", false, "allow removing a member that is down (to replace it)")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: say what would be done")
	return cmd
}

// runPhases runs phases in a session and prints the recap.
func runPhases(cmd *cobra.Command, s *session, phases []runner.Phase) error {
	err := s.runner.Run(cmd.Context(), phases)
	out := cmd.OutOrStdout()
	fmt.Fprintln(out)
	runner.PrintRecap(out, s.runner.Recap())
	fmt.Fprintf(out, "logs: %s\n", s.runDir)
	return err
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
