package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/loadbalancer"
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
For loadbalancer: packages (from the bundle with --artifacts, else the hosts' mirror) and
configs, one host at a time, each checked to listen again before the next.
--check shows the order and versions without changing anything.`,
		Example: `  kinstall upgrade --role etcd --version v3.6.14
  kinstall upgrade --role etcd --version v3.6.14 --check
  kinstall upgrade --role loadbalancer      # HAProxy/keepalived packages and configs, one host at a time`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch role {
			case "etcd":
			case "loadbalancer":
				return upgradeLoadBalancer(cmd, g, f)
			case "":
				return fmt.Errorf("--role is required (implemented: etcd, loadbalancer)")
			default:
				return fmt.Errorf("--role %s: not implemented yet (implemented: etcd, loadbalancer)", role)
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
	cmd.Flags().StringVar(&role, "role", "", "role to upgrade: etcd, loadbalancer")
	cmd.Flags().StringVar(&version, "version", "", "target version (etcd); loadbalancer takes the packages' newest from the bundle or the hosts' mirror")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: show the order and what would change")
	return cmd
}

func upgradeLoadBalancer(cmd *cobra.Command, g *globalOptions, f *runFlags) error {
	s, err := openSession(cmd, g, f)
	if err != nil {
		return err
	}
	defer s.close()
	phase := loadbalancer.New(s.cluster, s.sources).UpgradePhase()
	if len(phase.Hosts) == 0 {
		return fmt.Errorf("load balancer mode %q runs nothing on the hosts", s.cluster.Config.Mode())
	}
	if f.dryRun {
		fmt.Fprintln(cmd.OutOrStdout(), "DRY RUN: nothing will be changed")
	}
	return runPhases(cmd, s, []runner.Phase{phase})
}
