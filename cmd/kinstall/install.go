package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/playbook"
)

func newInstallCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the cluster: run every phase of the plan on its hosts",
		Long: `install runs the phases shown by 'kinstall plan' in order, each in parallel across its hosts
(rolling where the plan says serial). Every task checks the host first, so a re-run on a finished
cluster changes nothing. --check shows what would change without changing anything.`,
		Example: `  kinstall install -i conf/hosts.ini -c conf/common.yaml
  kinstall install --check                 # dry run
  kinstall install --only bootstrap        # re-run one phase
  kinstall install --skip preflight --limit node4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInstall(cmd, g, f)
		},
	}
	f.register(cmd, true)
	return cmd
}

func runInstall(cmd *cobra.Command, g *globalOptions, f *runFlags) error {
	s, err := openSession(cmd, g, f)
	if err != nil {
		return err
	}
	defer s.Close()
	err = s.Install(cmd.Context(), f.only, f.skip)
	var invalid *playbook.ErrInvalid
	if errors.As(err, &invalid) {
		invalid.Report.Print(cmd.ErrOrStderr())
	}
	return err
}

func newPlanCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the ordered install phases and the hosts each runs on, touching nothing",
		Example: `  kinstall plan -i conf/hosts.ini -c conf/common.yaml
  kinstall plan --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadCluster(g)
			if err != nil {
				return err
			}
			rows := playbook.Rows(playbook.Install(c))
			if output == "json" {
				b, err := playbook.PlanJSON(rows)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			playbook.PrintPlan(cmd.OutOrStdout(), rows)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
