package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/kinstall/kinstall/internal/playbook"
	"github.com/spf13/cobra"
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

func newEtcdStatusCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Members, leader, versions, db size, health and quorum; exits 2 when quorum is lost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			err = s.EtcdStatus(cmd.Context(), cmd.OutOrStdout())
			if errors.Is(err, playbook.ErrNoQuorum) {
				return exitError{code: 2, err: err}
			}
			return err
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
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			start := time.Now()
			path, err := s.EtcdBackup(cmd.Context())
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
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.EtcdRestore(cmd.Context(), snapshot, yes)
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "snapshot file on the taskbox")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: show the restore's steps, change nothing")
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
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.EtcdRemove(cmd.Context(), args[0], dead)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&dead, "dead", false, "allow removing a member that is down (to replace it)")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: say what would be done")
	return cmd
}
