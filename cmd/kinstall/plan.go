package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/plan"
	"github.com/kinstall/kinstall/roles"
)

func newPlanCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the ordered install phases and the hosts each runs on, touching nothing",
		Example: `  kinstall plan -i conf/hosts.ini -c conf/common.yaml
  kinstall plan --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cluster.Load(g.inventory, g.config)
			if err != nil {
				return err
			}
			phases := plan.Install(c)
			if output == "json" {
				b, err := plan.JSON(phases)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			plan.Print(cmd.OutOrStdout(), phases)
			var missing []string
			for _, p := range phases {
				if !roles.Implemented(p.Name) {
					missing = append(missing, p.Name)
				}
			}
			if len(missing) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "\nNot implemented yet (install skips them and says so): %v\n", missing)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
