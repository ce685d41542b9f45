package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/kinstall/kinstall/internal/playbook"
	"github.com/spf13/cobra"
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
			defer s.Close()
			facts, runErr := s.Ping(cmd.Context())
			printFacts(cmd, facts)
			return runErr
		},
	}
	f.register(cmd, false)
	return cmd
}

func printFacts(cmd *cobra.Command, facts []playbook.HostFacts) {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tUSER\tROOT\tOS\tARCH\tCPUS\tMEM MiB\tSKEW s")
	for _, f := range facts {
		if !f.Reached {
			fmt.Fprintf(tw, "%s\t%s\tUNREACHABLE\t\t\t\t\t\t\n", f.Name, f.Address)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Address, f.User, f.Root, f.OS, f.Arch, f.CPUs, f.MemMiB, f.Skew)
	}
	_ = tw.Flush()
}
