package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/state"
	"github.com/kinstall/kinstall/internal/verify"
)

func newVerifyCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var ha, yes bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Prove the cluster works; --ha also proves it survives the loss of a master",
		Long: `verify checks, from the taskbox: the API answers, every node is Ready, every control-plane
component is healthy on every master, etcd has quorum and every member is healthy, every node
reaches the API through the load balancer's name, and a test pod on each worker reaches a pod on
another node and a Service by its DNS name. Exit 1 when a check fails.

--ha (disruptive; asks first unless --yes) then stops one master (the VIP holder in vip mode),
measures the longest API outage through the endpoint (a probe every 100 ms), checks that the
controller-manager and scheduler leases move, that etcd keeps quorum and that a new Deployment
schedules, brings the master back and waits for full health, and prints the figures. It refuses
to run when the cluster cannot tolerate losing a master.`,
		Example: `  kinstall verify
  kinstall verify --ha --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			v, err := s.Verifier()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			ctx := cmd.Context()
			checks := v.Run(ctx)
			verify.Print(out, checks)
			if !verify.OK(checks) {
				return exitError{code: 1, err: errors.New("verify: the cluster is not healthy")}
			}
			if !ha {
				return nil
			}
			d := &verify.Drill{Verifier: v, Log: out}
			if err := d.Precheck(ctx); err != nil {
				return fmt.Errorf("verify --ha refused: %w", err)
			}
			if !yes {
				victim, why, err := d.Victim(ctx)
				if err != nil {
					return err
				}
				if !confirm(cmd)(fmt.Sprintf("\nThis stops %s (%s) for about a minute.", victim.Name, why)) {
					return errors.New("verify --ha: not confirmed, nothing was changed")
				}
			}
			fmt.Fprintln(out)
			res, err := d.Drill(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			res.Print(out, verify.EndpointLabel(s.Cluster))
			if !res.OK() {
				return exitError{code: 1, err: errors.New("verify --ha: the cluster did not prove HA")}
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&ha, "ha", false, "disruptive: stop one master and measure the failover")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask before the disruptive drill")
	return cmd
}

func newKubeconfigCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the admin kubeconfig on the taskbox (written at install, 0600)",
		Example: `  export KUBECONFIG=$(kinstall kubeconfig)
  kubectl get nodes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadCluster(g)
			if err != nil {
				return err
			}
			path, err := kube.ExistingAdminKubeconfig(state.Dir(f.stateDir), c)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	// --state-dir (holds the cluster's CA); the other host flags are accepted, so scripts can
	// pass one flag set to every command, and unused.
	f.register(cmd, false)
	return cmd
}
