package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/cluster"
)

func newCheckCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the inventory and common.yaml and report the topology",
		Long: `check reads both files, touches no host, and prints the topology: hosts per role, etcd
quorum and the failures it tolerates, the API endpoint and load balancer mode, then errors,
warnings and notes. It exits non-zero when the cluster cannot be installed as written.`,
		Example: `  kinstall check -i conf/hosts.ini -c conf/common.yaml
  kinstall check -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cluster.Load(g.inventory, g.config)
			if err != nil {
				return err
			}
			r := c.Check()
			if output == "json" {
				b, err := r.JSON()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				r.Print(cmd.OutOrStdout())
			}
			if len(r.Errors) > 0 {
				return errors.New("the topology has errors (see above)")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
