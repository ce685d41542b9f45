package playbook

import (
	"context"
	"fmt"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/verify"
	kversion "github.com/kinstall/kinstall/internal/version"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/controlplane"
	"github.com/kinstall/kinstall/roles/loadbalancer"
)

// KubeUpgrade is `kinstall upgrade` of Kubernetes.
type KubeUpgrade struct {
	Role           string // kube-master, kube-node, or "" for both (masters first)
	Version        string
	MaxUnavailable int           // workers drained at once
	Drain          time.Duration // give up draining a node after this long
}

// UpgradeLoadBalancer brings HAProxy/keepalived packages and configs up to date, one host at
// a time.
func (s *Session) UpgradeLoadBalancer(ctx context.Context) error {
	lb, err := loadbalancer.New(s.Env)
	if err != nil {
		return err
	}
	phase := lb.UpgradePhase()
	if len(phase.Hosts) == 0 {
		return fmt.Errorf("load balancer mode %q runs nothing on the hosts", s.Cluster.Config.Mode())
	}
	if s.DryRun {
		fmt.Fprintln(s.Out, "DRY RUN: nothing will be changed")
	}
	return s.Run(ctx, []runner.Phase{phase})
}

// UpgradeRuntime brings containerd, runc and the CNI plugins to the newest packages, one node
// at a time.
func (s *Session) UpgradeRuntime(ctx context.Context) error {
	cr, err := containerruntime.New(s.Env)
	if err != nil {
		return err
	}
	if s.DryRun {
		fmt.Fprintln(s.Out, "DRY RUN: nothing will be changed")
	}
	return s.Run(ctx, []runner.Phase{{Name: "upgrade/container-runtime", Hosts: s.Cluster.KubeNodes(), Tasks: cr.UpgradeTasks(), Serial: 1, Critical: true}})
}

// UpgradeOrder splits the nodes to upgrade into masters and workers, refusing a node the
// cluster does not know and a version change that is not an upgrade by one minor at most.
func UpgradeOrder(c *cluster.Cluster, nodes map[string]string, u KubeUpgrade) (masters, workers []*cluster.Host, err error) {
	for _, h := range c.KubeNodes() {
		now, ok := nodes[h.Name]
		if !ok {
			return nil, nil, fmt.Errorf("upgrade: %s is in %s but not a node of the cluster: add it first (kinstall add-node)", h.Name, c.InventoryFile)
		}
		if err := kversion.CheckUpgrade("Kubernetes on "+h.Name, now, u.Version); err != nil {
			return nil, nil, fmt.Errorf("upgrade: %w; nothing was changed", err)
		}
		switch {
		case h.Master && u.Role != "kube-node":
			masters = append(masters, h)
		case !h.Master && u.Role != "kube-master":
			workers = append(workers, h)
		}
	}
	return masters, workers, nil
}

// UpgradePhases are the runner phases of a Kubernetes upgrade: everything staged first, then
// masters one at a time, then workers MaxUnavailable at a time.
func UpgradePhases(up *controlplane.Upgrade, masters, workers []*cluster.Host, maxUnavailable int) []runner.Phase {
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
	return phases
}

// UpgradeKubernetes upgrades the masters one at a time, then the workers in batches, after
// health checks and an etcd snapshot.
func (s *Session) UpgradeKubernetes(ctx context.Context, u KubeUpgrade) error {
	if u.Version == "" {
		return fmt.Errorf("--version is required (e.g. --version v1.35.4)")
	}
	v, err := s.Verifier()
	if err != nil {
		return err
	}
	nodes, err := nodeVersions(ctx, v)
	if err != nil {
		return fmt.Errorf("upgrade: cannot read the nodes (%w): nothing was changed", err)
	}
	fmt.Fprintf(s.Out, "Kubernetes upgrade to %s, in this order:\n", u.Version)
	masters, workers, err := UpgradeOrder(s.Cluster, nodes, u)
	if err != nil {
		return err
	}
	for i, h := range append(append([]*cluster.Host{}, masters...), workers...) {
		what := "worker"
		if h.Master {
			what = "master"
		}
		after := u.Version
		if nodes[h.Name] == u.Version {
			after = u.Version + " (already: skipped)"
		}
		fmt.Fprintf(s.Out, "  %d. %-8s %-10s %s -> %s\n", i+1, what, h.Name, nodes[h.Name], after)
	}
	for _, c := range v.Basic(ctx) {
		if !c.OK {
			return fmt.Errorf("upgrade refused: %s: %s; fix that first, nothing was changed", c.Name, c.Detail)
		}
	}
	if s.DryRun {
		fmt.Fprintln(s.Out, "DRY RUN: nothing will be changed")
	} else if len(s.Cluster.Etcd) > 0 {
		r, err := s.Etcd()
		if err != nil {
			return err
		}
		path, err := r.Snapshot(ctx, "before-upgrade-"+u.Version)
		if err != nil {
			return fmt.Errorf("etcd snapshot before the upgrade failed, nothing changed: %w", err)
		}
		fmt.Fprintf(s.Out, "etcd snapshot: %s\n", path)
	}
	up := controlplane.NewUpgrade(s.Cluster, s.Artifacts, u.Version, u.Drain)
	if err := s.Run(ctx, UpgradePhases(up, masters, workers, u.MaxUnavailable)); err != nil {
		return err
	}
	if !s.DryRun && s.Cluster.Config.KubeVersion != u.Version {
		fmt.Fprintf(s.Out, "Done. Now set kube_version: %s in %s (an install with the old version is refused).\n", u.Version, s.Cluster.ConfigFile)
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
