package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/verify"
	kversion "github.com/kinstall/kinstall/internal/version"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/controlplane"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/loadbalancer"
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
			case "etcd":
			case "loadbalancer":
				return upgradeLoadBalancer(cmd, g, f)
			case "kube-master", "kube-node", "kubernetes", "":
				return upgradeKubernetes(cmd, g, f, role, version, maxUnavailable, drain)
			case "container-runtime":
				return upgradeRuntime(cmd, g, f)
			default:
				return fmt.Errorf("--role %s: use etcd, loadbalancer, container-runtime, kube-master, kube-node (or none: Kubernetes, masters then workers)", role)
			}
			if version == "" {
				return fmt.Errorf("--version is required (e.g. --version v3.6.14)")
			}
			s, r, err := etcdRole(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			up, err := r.PlanUpgrade(cmd.Context(), version)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "etcd upgrade %s -> %s, one member at a time: %s (leader last)\n", up.From, up.To, strings.Join(up.Order, ", "))
			if f.dryRun {
				fmt.Fprintln(out, "DRY RUN: nothing will be changed")
			} else {
				path, err := r.Snapshot(cmd.Context(), "before-upgrade-"+version)
				if err != nil {
					return fmt.Errorf("snapshot before the upgrade failed, nothing changed: %w", err)
				}
				fmt.Fprintf(out, "snapshot: %s\n", path)
			}
			return runPhases(cmd, s, up.Phases)
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

func upgradeLoadBalancer(cmd *cobra.Command, g *globalOptions, f *runFlags) error {
	s, err := openSession(cmd, g, f)
	if err != nil {
		return err
	}
	defer s.close()
	phase := loadbalancer.New(s.cluster, s.sources).UpgradePhase()
	if len(phase.Hosts) == 0 {
		return fmt.Errorf("load balancer mode %q runs nothing on the hosts", s.cluster.Config.Mode())
	}
	if f.dryRun {
		fmt.Fprintln(cmd.OutOrStdout(), "DRY RUN: nothing will be changed")
	}
	return runPhases(cmd, s, []runner.Phase{phase})
}

func upgradeKubernetes(cmd *cobra.Command, g *globalOptions, f *runFlags, role, target string, maxUnavailable int, drain time.Duration) error {
	if target == "" {
		return fmt.Errorf("--version is required (e.g. --version v1.35.4)")
	}
	s, err := openSession(cmd, g, f)
	if err != nil {
		return err
	}
	defer s.close()
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	v, err := newVerifier(s, f.stateDir)
	if err != nil {
		return err
	}
	// The versions now, per node, from the API; and the cluster's health.
	nodes, err := nodeVersions(ctx, v)
	if err != nil {
		return fmt.Errorf("upgrade: cannot read the nodes (%w): nothing was changed", err)
	}
	var masters, workers []*cluster.Host
	fmt.Fprintf(out, "Kubernetes upgrade to %s, in this order:\n", target)
	for _, h := range s.cluster.KubeNodes() {
		now, ok := nodes[h.Name]
		if !ok {
			return fmt.Errorf("upgrade: %s is in %s but not a node of the cluster: add it first (kinstall add-node)", h.Name, s.cluster.InventoryFile)
		}
		if err := kversion.CheckUpgrade("Kubernetes on "+h.Name, now, target); err != nil {
			return fmt.Errorf("upgrade: %w; nothing was changed", err)
		}
		switch {
		case h.Master && role != "kube-node":
			masters = append(masters, h)
		case !h.Master && role != "kube-master":
			workers = append(workers, h)
		}
	}
	for i, h := range append(append([]*cluster.Host{}, masters...), workers...) {
		what := "worker"
		if h.Master {
			what = "master"
		}
		after := target
		if nodes[h.Name] == target {
			after = target + " (already: skipped)"
		}
		fmt.Fprintf(out, "  %d. %-8s %-10s %s -> %s\n", i+1, what, h.Name, nodes[h.Name], after)
	}
	for _, c := range v.Basic(ctx) {
		if !c.OK {
			return fmt.Errorf("upgrade refused: %s: %s; fix that first, nothing was changed", c.Name, c.Detail)
		}
	}
	if f.dryRun {
		fmt.Fprintln(out, "DRY RUN: nothing will be changed")
	} else if len(s.cluster.Etcd) > 0 {
		r, err := etcd.New(s.cluster, etcd.Options{StateDir: f.stateDir, Artifacts: s.sources})
		if err != nil {
			return err
		}
		path, err := r.Snapshot(ctx, "before-upgrade-"+target)
		if err != nil {
			return fmt.Errorf("etcd snapshot before the upgrade failed, nothing changed: %w", err)
		}
		fmt.Fprintf(out, "etcd snapshot: %s\n", path)
	}
	up := controlplane.NewUpgrade(s.cluster, s.sources, target, drain)
	phases := []runner.Phase{{Name: "upgrade/prepare", Hosts: append(append([]*cluster.Host{}, masters...), workers...), Tasks: up.PrepareTasks()}}
	if len(masters) > 0 {
		phases = append(phases, runner.Phase{Name: "upgrade/kube-master", Hosts: masters, Tasks: up.MasterTasks(), Serial: 1, Critical: true})
	}
	if len(workers) > 0 {
		if maxUnavailable < 1 {
			maxUnavailable = 1
		}
		phases = append(phases, runner.Phase{Name: "upgrade/kube-node", Hosts: workers, Tasks: up.WorkerTasks(), Serial: maxUnavailable, Critical: true})
	}
	if err := runPhases(cmd, s, phases); err != nil {
		return err
	}
	if !f.dryRun && s.cluster.Config.KubeVersion != target {
		fmt.Fprintf(out, "Done. Now set kube_version: %s in %s (an install with the old version is refused).\n", target, s.cluster.ConfigFile)
	}
	return nil
}

// nodeVersions maps node names to their kubelet versions.
func nodeVersions(ctx context.Context, v *verify.Verifier) (map[string]string, error) {
	var nl struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				NodeInfo struct {
					KubeletVersion string `json:"kubeletVersion"`
				} `json:"nodeInfo"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := v.API.Get(ctx, "/api/v1/nodes", &nl); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range nl.Items {
		out[n.Metadata.Name] = n.Status.NodeInfo.KubeletVersion
	}
	return out, nil
}

func upgradeRuntime(cmd *cobra.Command, g *globalOptions, f *runFlags) error {
	s, err := openSession(cmd, g, f)
	if err != nil {
		return err
	}
	defer s.close()
	phase := runner.Phase{Name: "upgrade/container-runtime", Hosts: s.cluster.KubeNodes(), Tasks: containerruntime.UpgradeTasks(s.cluster, s.sources), Serial: 1, Critical: true}
	if f.dryRun {
		fmt.Fprintln(cmd.OutOrStdout(), "DRY RUN: nothing will be changed")
	}
	return runPhases(cmd, s, []runner.Phase{phase})
}
