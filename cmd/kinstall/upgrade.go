package main

import (
	"fmt"
	"time"

	"github.com/kinstall/kinstall/internal/playbook"
	"github.com/spf13/cobra"
)

func newUpgradeCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var role, version string
	var maxUnavailable int
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "upgrade --role ROLE --version VERSION",
		Short: "Upgrade one role, rolling, one host at a time, never losing quorum",
		Long: `upgrade changes one role's version on its hosts, one host at a time. For etcd: refuses to start
unless every member is healthy and the cluster can lose one; takes a snapshot to the state
directory first; then followers one by one and the leader last: stop, replace the binary,
start, wait until healthy and caught up. A failure stops at that member with the others
untouched; a re-run resumes (members already upgraded are skipped).
For Kubernetes (kube-master, kube-node, or no role: both, masters first): refuses a downgrade,
a skip of a minor version, or a start while a node, a control-plane component or etcd is
unhealthy; takes an etcd snapshot; stages and imports the new binaries and images on every node;
then each master in turn (kubeadm upgrade apply on the first, kubeadm upgrade node on the
others, drain, kubelet and kubectl, Ready, uncordon) and the workers --max-unavailable at a time.
A failure stops at that host; a re-run resumes. Then set kube_version in common.yaml.
For container-runtime: the packages' newest version, one host at a time.
For loadbalancer: packages (from the bundle with --artifacts, else the hosts' mirror) and
configs, one host at a time, each checked to listen again before the next.
--check shows the order and versions without changing anything.`,
		Example: `  kinstall upgrade --version v1.35.4 --check   # Kubernetes: the plan, per host
  kinstall upgrade --version v1.35.4           # masters one at a time, then workers
  kinstall upgrade --role kube-node --version v1.35.4 --max-unavailable 2
  kinstall upgrade --role etcd --version v3.6.14
  kinstall upgrade --role etcd --version v3.6.14 --check
  kinstall upgrade --role loadbalancer      # HAProxy/keepalived packages and configs, one host at a time`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch role {
			case "etcd", "loadbalancer", "kube-master", "kube-node", "kubernetes", "", "container-runtime":
			default:
				return fmt.Errorf("--role %s: use etcd, loadbalancer, container-runtime, kube-master, kube-node (or none: Kubernetes, masters then workers)", role)
			}
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			switch role {
			case "etcd":
				return s.UpgradeEtcd(ctx, version)
			case "loadbalancer":
				return s.UpgradeLoadBalancer(ctx)
			case "kube-master", "kube-node", "kubernetes", "":
				return s.UpgradeKubernetes(ctx, playbook.KubeUpgrade{Role: role, Version: version, MaxUnavailable: maxUnavailable, Drain: drain})
			default: // container-runtime
				return s.UpgradeRuntime(ctx)
			}
		},
	}
	f.register(cmd, false)
	cmd.Flags().IntVar(&maxUnavailable, "max-unavailable", 1, "kube-node: workers upgraded (drained) at once")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 3*time.Minute, "give up draining a node after this long (the upgrade stops there)")
	cmd.Flags().StringVar(&role, "role", "", "role to upgrade: etcd, loadbalancer, container-runtime, kube-master, kube-node; none: kube-master then kube-node")
	cmd.Flags().StringVar(&version, "version", "", "target version (etcd); loadbalancer takes the packages' newest from the bundle or the hosts' mirror")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: show the order and what would change")
	return cmd
}
