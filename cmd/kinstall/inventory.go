package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/inventory"
)

func newInventoryCmd(g *globalOptions) *cobra.Command {
	var list, graph bool
	var host string
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Show the inventory as Ansible sees it (same output as ansible-inventory)",
		Long: `inventory parses the INI inventory exactly as ansible-inventory does and prints it:
--list as JSON (groups, children, _meta.hostvars with merged variables), --graph as a tree,
--host NAME as that host's merged variables.`,
		Example: `  kinstall inventory --list -i conf/hosts.ini
  kinstall inventory --graph
  kinstall inventory --host master1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, err := inventory.ParseFile(g.inventory)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case host != "":
				b, err := inv.HostJSON(host)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
			case graph:
				fmt.Fprint(out, inv.Graph())
			default:
				b, err := inv.List()
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "print the whole inventory as JSON (the default)")
	cmd.Flags().BoolVar(&graph, "graph", false, "print the group tree")
	cmd.Flags().StringVar(&host, "host", "", "print one host's merged variables")
	cmd.MarkFlagsMutuallyExclusive("list", "graph", "host")
	return cmd
}
