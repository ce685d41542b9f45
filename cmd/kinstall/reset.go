package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kinstall/kinstall/internal/playbook"
	"github.com/spf13/cobra"
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
			defer s.Close()
			hosts := s.ResetHosts()
			etcdToo, err := s.EtcdResetPlan(cmd.Context(), hosts)
			if err != nil {
				return err
			}
			if !f.dryRun && !yes && !confirm(cmd)(fmt.Sprintf("This removes kinstall's Kubernetes, load balancer, runtime data%s from %s.", playbook.EtcdNote(etcdToo), playbook.HostNames(hosts))) {
				return errors.New("reset: not confirmed, nothing was changed")
			}
			return s.Reset(cmd.Context(), hosts, etcdToo)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	cmd.Flags().BoolVar(&f.dryRun, "check", false, "dry run: show what would be removed")
	return cmd
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
			defer s.Close()
			var ask playbook.Confirm
			if !yes {
				ask = confirm(cmd)
			}
			return s.RemoveNode(cmd.Context(), args[0], drainTimeout, ask)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", 3*time.Minute, "give up draining after this long")
	return cmd
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
			newHosts := s.NewNodes(cmd.Context())
			s.Close()
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
