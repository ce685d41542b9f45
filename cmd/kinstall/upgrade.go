package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newUpgradeCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var role, version string
	cmd := &cobra.Command{
		Use:   "upgrade --role ROLE --version VERSION",
		Short: "Upgrade one role, rolling, one host at a time, never losing quorum",
		Long: `upgrade changes one role's version on its hosts, one host at a time. For etcd: refuses to start
unless every member is healthy and the cluster can lose one; takes a snapshot to the state
directory first; then followers one by one and the leader last: stop, replace the binary,
start, wait until healthy and caught up. A failure stops at that member with the others
untouched; a re-run resumes (members already upgraded are skipped).
--check shows the order and versions without changing anything.`,
		Example: `  kinstall upgrade --role etcd --version v3.6.14
  kinstall upgrade --role etcd --version v3.6.14 --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch role {
			case "etcd":
			case "":
				return fmt.Errorf("--role is required (implemented: etcd)")
			default:
				return fmt.Errorf("--role %s: not implemented yet (implemented: etcd)", role)
			}
			if version == "" {
				return fmt.Errorf("--version is required (e.g. --version v3.6.14)")
			}
			s, r, err := etcdRole(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			up, err := r.PlanUpgrade(cmd.Context(), version)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "etcd upgrade %s -> %s, one member at a time: %s (leader last)\n", up.From, up.To, strings.Join(up.Order, ", "))
			if f.dryRun {
				fmt.Fprintln(out, "DRY RUN: nothing will be changed")
			} else {
				path, err := r.Snapshot(cmd.Context(), "before-upgrade-"+version)
				if err != nil {
					return fmt.Errorf("snapshot before the upgrade failed, nothing changed: %w", err)
				}
				fmt.Fprintf(out, "snapshot: %s\n", path)
			}
			return runPhases(cmd, s, up.Phases)
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVar(&role, "role", "", "role to upgrade: etcd")
	cmd.Flags().StringVar(&version, "version", "", "target version")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: show the order and what would change")
	return cmd
}
