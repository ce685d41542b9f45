package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/plan"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/loadbalancer"
	"github.com/kinstall/kinstall/roles/reset"
)

func newResetCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var yes bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove what kinstall installed from the hosts (all, or --limit); asks first unless --yes",
		Long: `reset stops and removes Kubernetes, flannel (with its interfaces), the iptables rules of
kube-proxy, flannel and the CNI plugins, HAProxy/keepalived configs, containerd's config and data,
and kinstall's /etc/hosts block and sysctls. Packages stay installed.

etcd is safe: a host's etcd member is removed only when every [etcd] host is reset (the whole
cluster goes) or when it is no longer a member. Resetting some hosts of a running cluster refuses
an etcd member that is still in the cluster: remove it first ('kinstall remove-node NAME' or
'kinstall etcd remove NAME'). kubeadm reset is never used: it deletes /var/lib/etcd even where
etcd is external and still in use.`,
		Example: `  kinstall reset --yes                 # the whole cluster
  kinstall reset --limit node5 --yes   # one host (remove it from the cluster first: remove-node)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			hosts := s.hostsOrLimit(s.cluster.RoleHosts())
			etcdToo, err := etcdResetPlan(cmd.Context(), s, f, hosts)
			if err != nil {
				return err
			}
			if !f.dryRun && !yes && !confirm(cmd, fmt.Sprintf("This removes kinstall's Kubernetes, load balancer, runtime data%s from %s.", etcdNote(etcdToo), hostNames(hosts))) {
				return errors.New("reset: not confirmed, nothing was changed")
			}
			when := func(h *runner.Host) bool { return etcdToo[h.Name] }
			return runPhases(cmd, s, []runner.Phase{{Name: "reset", Hosts: hosts, Tasks: reset.Tasks(when)}})
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: show what would be removed")
	return cmd
}

// etcdResetPlan says which reset hosts lose their etcd member; it refuses one that is still a
// member of a cluster that stays.
func etcdResetPlan(ctx context.Context, s *session, f *runFlags, hosts []*cluster.Host) (map[string]bool, error) {
	out := map[string]bool{}
	in := map[string]bool{}
	for _, h := range hosts {
		in[h.Name] = true
	}
	all := true
	for _, e := range s.cluster.Etcd {
		all = all && in[e.Name]
	}
	if all {
		for _, e := range s.cluster.Etcd {
			out[e.Name] = true
		}
		return out, nil
	}
	var resetMembers []*cluster.Host
	for _, h := range hosts {
		if h.Etcd {
			resetMembers = append(resetMembers, h)
		}
	}
	if len(resetMembers) == 0 {
		return out, nil
	}
	r, err := etcd.New(s.cluster, etcd.Options{StateDir: f.stateDir, Artifacts: s.sources})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	members, err := r.Client().MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("reset: cannot tell whether %s are still etcd members (%v): refusing to touch their etcd data", hostNames(resetMembers), err)
	}
	for _, h := range resetMembers {
		for _, m := range members {
			if m.Name == h.Name {
				return nil, fmt.Errorf("reset: %s is a member of the etcd cluster that stays (%d members): remove it first with 'kinstall remove-node %s' or 'kinstall etcd remove %s'; nothing was changed", h.Name, len(members), h.Name, h.Name)
			}
		}
		out[h.Name] = true
	}
	return out, nil
}

func etcdNote(etcdToo map[string]bool) string {
	var n []string
	for h, yes := range etcdToo {
		if yes {
			n = append(n, h)
		}
	}
	if len(n) == 0 {
		return " (etcd data stays)"
	}
	return " and the etcd data of " + strings.Join(n, ",")
}

func hostNames(hs []*cluster.Host) string {
	var n []string
	for _, h := range hs {
		n = append(n, h.Name)
	}
	return strings.Join(n, ",")
}

// confirm asks on the command's input and wants "yes".
func confirm(cmd *cobra.Command, what string) bool {
	fmt.Fprintf(cmd.OutOrStdout(), "%s Type yes to go on: ", what)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	return strings.TrimSpace(line) == "yes"
}

func newRemoveNodeCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var yes bool
	var drainTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "remove-node NAME",
		Short: "Drain and delete a node, remove its etcd member (only if quorum survives), update the LB, reset it",
		Long: `remove-node takes a host out of the cluster safely: it refuses the last master and an etcd member
whose removal would cost quorum (or while another member is unhealthy); then it drains the node,
deletes its Node object, removes its etcd member (leadership moves first), rewrites the load
balancer configs of the hosts that stay (one at a time, so the endpoint never goes away) and resets
the host. Then take it out of hosts.ini.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.close()
			return removeNode(cmd, s, f, args[0], yes, drainTimeout)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", 3*time.Minute, "give up draining after this long")
	return cmd
}

func removeNode(cmd *cobra.Command, s *session, f *runFlags, name string, yes bool, drainTimeout time.Duration) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	c := s.cluster
	h := c.Host(name)
	if h == nil || !(h.Master || h.Worker || h.Etcd) {
		return fmt.Errorf("remove-node: %s is not a cluster host in %s", name, c.InventoryFile)
	}
	rest := c.Without(name)
	if h.Master && len(rest.Masters) == 0 {
		return fmt.Errorf("remove-node: %s is the last master: use 'kinstall reset' to remove the whole cluster", name)
	}
	var er *etcd.Role
	var member etcd.MemberStatus
	if h.Etcd {
		var err error
		if er, err = etcd.New(c, etcd.Options{StateDir: f.stateDir, Artifacts: s.sources}); err != nil {
			return err
		}
		if member, err = er.CheckRemove(ctx, name, false); err != nil {
			return fmt.Errorf("remove-node: %w; nothing was changed", err)
		}
	}
	if !yes && !confirm(cmd, fmt.Sprintf("This drains and deletes node %s, %sresets the host.", name, map[bool]string{true: "removes its etcd member, ", false: ""}[h.Etcd])) {
		return errors.New("remove-node: not confirmed, nothing was changed")
	}
	hosts := poolHosts{s}
	kubectl := "kubectl --kubeconfig " + kube.AdminConf + " "
	if h.Master || h.Worker {
		m := rest.Masters[0]
		if _, err := hosts.Run(ctx, m, kubectl+"get node "+name+" -o name"); err == nil {
			fmt.Fprintf(out, "draining %s (from %s)\n", name, m.Name)
			if _, err := hosts.Run(ctx, m, fmt.Sprintf("%sdrain %s --ignore-daemonsets --delete-emptydir-data --force --timeout=%ds >/dev/null", kubectl, name, int(drainTimeout.Seconds()))); err != nil {
				return fmt.Errorf("remove-node: drain: %w (the node stays cordoned; fix and re-run)", err)
			}
			if _, err := hosts.Run(ctx, m, kubectl+"delete node "+name+" >/dev/null"); err != nil {
				return fmt.Errorf("remove-node: delete the Node: %w", err)
			}
			fmt.Fprintf(out, "deleted Node %s\n", name)
		}
	}
	if h.Etcd {
		if err := er.RemoveMember(ctx, name, member); err != nil {
			return fmt.Errorf("remove-node: %w", err)
		}
		fmt.Fprintf(out, "removed etcd member %s (%x)\n", name, member.ID)
	}
	var phases []runner.Phase
	if h.Master {
		lb := loadbalancer.New(rest, s.sources)
		var lbHosts []*cluster.Host
		for _, n := range lbHostsOf(rest) {
			lbHosts = append(lbHosts, rest.Host(n))
		}
		if len(lbHosts) > 0 {
			phases = append(phases, runner.Phase{Name: "loadbalancer (without " + name + ")", Hosts: lbHosts, Tasks: lb.Tasks()})
		}
	}
	phases = append(phases, runner.Phase{Name: "reset " + name, Hosts: []*cluster.Host{h}, Tasks: reset.Tasks(func(*runner.Host) bool { return h.Etcd })})
	if err := runPhases(cmd, s, phases); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s is out of the cluster: take it out of %s now (or the next install adds it back)\n", name, c.InventoryFile)
	return nil
}

// lbHostsOf names the hosts of the plan's load balancer phase.
func lbHostsOf(c *cluster.Cluster) []string {
	for _, p := range plan.Install(c) {
		if p.Name == "loadbalancer" {
			return p.Hosts
		}
	}
	return nil
}

func newAddNodeCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "add-node",
		Short: "Add the hosts that are new in hosts.ini: they get their roles, the others are only checked",
		Long: `add-node runs the install plan after hosts were added to the inventory. Every task checks
first, so hosts already in the cluster report ok and are not restarted; the new ones get their
roles: new workers join in parallel, new masters join one at a time and every load balancer
config (VIP HAProxy on the masters, per-node proxies) is rewritten and reloaded one host at a
time; new etcd members join one at a time as learners and are promoted once caught up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			newHosts := notYetNodes(cmd.Context(), s, f)
			s.close()
			if len(newHosts) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "new in %s: %s\n", g.inventory, strings.Join(newHosts, ", "))
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "no new host: every Kubernetes node is registered; checking everything anyway")
			}
			return runInstall(cmd, g, f)
		},
	}
	f.register(cmd, true)
	return cmd
}

// notYetNodes names the inventory's Kubernetes nodes the API does not know (all of them when
// the API cannot be asked).
func notYetNodes(ctx context.Context, s *session, f *runFlags) []string {
	var names []string
	for _, h := range s.cluster.KubeNodes() {
		names = append(names, h.Name)
	}
	path, err := kube.ExistingAdminKubeconfig(f.stateDir, s.cluster)
	if err != nil {
		return names
	}
	api, err := kube.NewClientFromKubeconfig(path)
	if err != nil {
		return names
	}
	var nl struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := api.Get(ctx, "/api/v1/nodes", &nl); err != nil {
		return names
	}
	known := map[string]bool{}
	for _, n := range nl.Items {
		known[n.Metadata.Name] = true
	}
	var out []string
	for _, n := range names {
		if !known[n] {
			out = append(out, n)
		}
	}
	return out
}
