package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/internal/verify"
	"github.com/kinstall/kinstall/roles/etcd"
)

// ProbeImage is the bundle's test image, imported on every node.
const ProbeImage = "kinstall.local/probe:v1"

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
			defer s.close()
			v, err := newVerifier(s, f.stateDir)
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
				fmt.Fprintf(out, "\nThis stops %s (%s) for about a minute. Type yes to go on: ", victim.Name, why)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != "yes" {
					return errors.New("verify --ha: not confirmed, nothing was changed")
				}
			}
			fmt.Fprintln(out)
			res, err := d.Drill(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			res.Print(out, verify.EndpointLabel(s.cluster))
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

func newVerifier(s *session, stateDir string) (*verify.Verifier, error) {
	path, err := kube.ExistingAdminKubeconfig(stateDir, s.cluster)
	if err != nil {
		return nil, err
	}
	api, err := kube.NewClientFromKubeconfig(path)
	if err != nil {
		return nil, err
	}
	var health verify.EtcdHealth = func(context.Context) (int, int, bool) { return 0, 0, false }
	if len(s.cluster.Etcd) > 0 {
		r, err := etcd.New(s.cluster, etcd.Options{StateDir: stateDir, Artifacts: s.sources})
		if err != nil {
			return nil, err
		}
		health = func(ctx context.Context) (int, int, bool) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			st := r.Client().Status(ctx)
			return st.Healthy, st.Voters, st.HasQuorum()
		}
	}
	return &verify.Verifier{Cluster: s.cluster, API: api, Hosts: poolHosts{s}, Etcd: health, Image: ProbeImage}, nil
}

// poolHosts runs verify's commands over the session's connections, as root.
type poolHosts struct{ s *session }

func (p poolHosts) Run(ctx context.Context, h *cluster.Host, command string) (string, error) {
	conn, err := p.s.pool.Get(ctx, h.Target)
	if err != nil {
		return "", err
	}
	res, err := conn.Run(ctx, transport.Cmd{Command: command, Sudo: true})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), fmt.Errorf("%s: %q exited %d: %s", h.Name, transport.FirstLine(command), res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return string(res.Stdout), nil
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
			c, err := cluster.Load(g.inventory, g.config)
			if err != nil {
				return err
			}
			path, err := kube.ExistingAdminKubeconfig(f.stateDir, c)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	f.register(cmd, false) // --state-dir (holds the cluster's CA); the host flags are accepted and unused
	return cmd
}
