package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/plan"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles"
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
	defer s.close()
	if report := s.cluster.Check(); len(report.Errors) > 0 {
		report.Print(cmd.ErrOrStderr())
		return fmt.Errorf("the cluster definition has errors: fix them before installing (see 'kinstall check')")
	}
	phases, missing, err := buildPhases(s.env(), plan.Install(s.cluster), f)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if len(missing) > 0 {
		fmt.Fprintf(out, "NOTE: not implemented yet, skipped: %s\n", strings.Join(missing, ", "))
	}
	if f.dryRun {
		fmt.Fprintln(out, "DRY RUN: nothing will be changed")
	}
	runErr := s.runner.Run(cmd.Context(), phases)
	fmt.Fprintln(out)
	runner.PrintRecap(out, s.runner.Recap())
	fmt.Fprintf(out, "logs: %s\n", s.runDir)
	if len(missing) > 0 {
		fmt.Fprintf(out, "NOTE: these phases are not implemented yet and did not run: %s\n", strings.Join(missing, ", "))
	}
	return runErr
}

// buildPhases pairs each selected plan phase with the tasks of the role that implements it.
func buildPhases(env *roles.Env, pl []plan.Phase, f *runFlags) ([]runner.Phase, []string, error) {
	c := env.Cluster
	names := make([]string, len(pl))
	for i, p := range pl {
		names[i] = p.Name
	}
	selected, err := selectPhases(names, f.only, f.skip)
	if err != nil {
		return nil, nil, err
	}
	var phases []runner.Phase
	var missing []string
	for _, p := range pl {
		if !selected[p.Name] {
			continue
		}
		tasks, ok, err := roles.Tasks(p.Name, env)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		rp := runner.Phase{Name: p.Name, Tasks: tasks, Serial: p.Serial, Critical: p.Critical, Lockstep: p.Lockstep}
		for _, name := range p.Hosts {
			rp.Hosts = append(rp.Hosts, c.Host(name))
		}
		phases = append(phases, rp)
	}
	return phases, missing, nil
}
