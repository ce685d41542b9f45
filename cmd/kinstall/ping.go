package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/preflight"
)

func newPingCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "ping",
		Short: "Reach every host, check sudo, and show OS, CPU, memory and clock skew",
		Long: `ping connects to every host of the inventory the way install will (SSH with the inventory's
user, key or password, and host key checks; the taskbox locally), checks that it can become root,
and prints what each host is. Run it first on a new inventory.`,
		Example: `  kinstall ping -i conf/hosts.ini
  kinstall ping --limit kube-master
  kinstall ping --accept-new-host-keys     # first contact: record host keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			runErr := s.runner.Run(cmd.Context(), []runner.Phase{{Name: "ping", Hosts: s.cluster.Hosts, Tasks: preflight.GatherFacts()}})
			printFacts(cmd, s)
			return runErr
		},
	}
	f.register(cmd, false)
	return cmd
}

func printFacts(cmd *cobra.Command, s *session) {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tUSER\tROOT\tOS\tARCH\tCPUS\tMEM MiB\tSKEW s")
	for _, ch := range s.cluster.Hosts {
		addr := ch.Target.Address
		if ch.Target.Local {
			addr = "local"
		}
		h := s.runner.Host(ch.Name)
		if h == nil {
			fmt.Fprintf(tw, "%s\t%s\tUNREACHABLE\t\t\t\t\t\t\n", ch.Name, addr)
			continue
		}
		fc := h.Facts()
		root := fc[preflight.FactSudo]
		if root == "" {
			root = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ch.Name, addr, fc[preflight.FactUser], root,
			fc[preflight.FactOS], fc[preflight.FactArch], fc[preflight.FactCPUs], fc[preflight.FactMemMiB], fc[preflight.FactSkew])
	}
	_ = tw.Flush()
}
