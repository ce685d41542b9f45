package playbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/loadbalancer"
	"github.com/kinstall/kinstall/roles/reset"
	"github.com/kinstall/kinstall/roles/role"
)

// Confirm asks the operator about what; true goes on.
type Confirm func(what string) bool

// ErrNotConfirmed is a refusal by the operator; nothing was changed.
var ErrNotConfirmed = errors.New("not confirmed, nothing was changed")

// ResetHosts are the hosts `kinstall reset` works on: every role host, or the --limit ones.
func (s *Session) ResetHosts() []*cluster.Host { return s.LimitHosts(s.Cluster.RoleHosts()) }

// EtcdResetPlan says which of the hosts to reset lose their etcd member: all members when the
// whole [etcd] group is reset; otherwise only hosts that are no longer members, and a host
// still in the cluster that stays is refused.
func (s *Session) EtcdResetPlan(ctx context.Context, hosts []*cluster.Host) (map[string]bool, error) {
	out := map[string]bool{}
	in := map[string]bool{}
	for _, h := range hosts {
		in[h.Name] = true
	}
	all := true
	for _, e := range s.Cluster.Etcd {
		all = all && in[e.Name]
	}
	if all {
		for _, e := range s.Cluster.Etcd {
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
	r, err := s.Etcd()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	members, err := r.Client().MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("reset: cannot tell whether %s are still etcd members (%v): refusing to touch their etcd data", HostNames(resetMembers), err)
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

// Reset removes what kinstall installed from hosts; etcdToo names the hosts whose etcd member
// goes too (EtcdResetPlan).
func (s *Session) Reset(ctx context.Context, hosts []*cluster.Host, etcdToo map[string]bool) error {
	return s.Run(ctx, []runner.Phase{resetPhase("reset", hosts, func(h *runner.Host) bool { return etcdToo[h.Name] })})
}

func resetPhase(name string, hosts []*cluster.Host, etcdToo func(*runner.Host) bool) runner.Phase {
	r, _ := reset.New(nil) // needs nothing of the run
	r.EtcdToo = etcdToo
	return runner.Phase{Name: name, Hosts: hosts, Tasks: r.Tasks()}
}

// EtcdNote says whose etcd data a reset removes, for the confirmation.
func EtcdNote(etcdToo map[string]bool) string {
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

// HostNames joins host names with commas.
func HostNames(hs []*cluster.Host) string {
	var n []string
	for _, h := range hs {
		n = append(n, h.Name)
	}
	return strings.Join(n, ",")
}

// RemoveNode takes a host out of the cluster: refuses the last master and an etcd member whose
// removal would cost quorum; asks; drains and deletes the Node; removes the etcd member;
// rewrites the load balancer configs of the hosts that stay; resets the host.
func (s *Session) RemoveNode(ctx context.Context, name string, drainTimeout time.Duration, confirm Confirm) error {
	c := s.Cluster
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
		if er, err = s.Etcd(); err != nil {
			return err
		}
		if member, err = er.CheckRemove(ctx, name, false); err != nil {
			return fmt.Errorf("remove-node: %w; nothing was changed", err)
		}
	}
	if confirm != nil && !confirm(fmt.Sprintf("This drains and deletes node %s, %sresets the host.", name, map[bool]string{true: "removes its etcd member, ", false: ""}[h.Etcd])) {
		return fmt.Errorf("remove-node: %w", ErrNotConfirmed)
	}
	if h.Master || h.Worker {
		if err := s.deleteNode(ctx, rest.Masters[0], name, drainTimeout); err != nil {
			return err
		}
	}
	if h.Etcd {
		if err := er.RemoveMember(ctx, name, member); err != nil {
			return fmt.Errorf("remove-node: %w", err)
		}
		fmt.Fprintf(s.Out, "removed etcd member %s (%x)\n", name, member.ID)
	}
	var phases []runner.Phase
	if h.Master {
		if lbHosts := loadbalancer.Hosts(rest); len(lbHosts) > 0 {
			lb, err := loadbalancer.New(s.restEnv(rest))
			if err != nil {
				return err
			}
			phases = append(phases, runner.Phase{Name: "loadbalancer (without " + name + ")", Hosts: lbHosts, Tasks: lb.Tasks()})
		}
	}
	phases = append(phases, resetPhase("reset "+name, []*cluster.Host{h}, func(*runner.Host) bool { return h.Etcd }))
	if err := s.Run(ctx, phases); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "%s is out of the cluster: take it out of %s now (or the next install adds it back)\n", name, c.InventoryFile)
	return nil
}

// deleteNode drains and deletes the Node object, from a master that stays.
func (s *Session) deleteNode(ctx context.Context, m *cluster.Host, name string, drainTimeout time.Duration) error {
	kubectl := "kubectl --kubeconfig " + kube.AdminConf + " "
	if _, err := s.Runner.Sudo(ctx, m, kubectl+"get node "+name+" -o name"); err != nil {
		return nil // not registered: nothing to drain
	}
	fmt.Fprintf(s.Out, "draining %s (from %s)\n", name, m.Name)
	if _, err := s.Runner.Sudo(ctx, m, fmt.Sprintf("%sdrain %s --ignore-daemonsets --delete-emptydir-data --force --timeout=%ds >/dev/null", kubectl, name, int(drainTimeout.Seconds()))); err != nil {
		return fmt.Errorf("remove-node: drain: %w (the node stays cordoned; fix and re-run)", err)
	}
	if _, err := s.Runner.Sudo(ctx, m, kubectl+"delete node "+name+" >/dev/null"); err != nil {
		return fmt.Errorf("remove-node: delete the Node: %w", err)
	}
	fmt.Fprintf(s.Out, "deleted Node %s\n", name)
	return nil
}

// restEnv is the session's role environment for the cluster without a removed host.
func (s *Session) restEnv(rest *cluster.Cluster) *role.Env {
	return &role.Env{Cluster: rest, State: s.State, Artifacts: s.Artifacts}
}

// NewNodes names the inventory's Kubernetes nodes the API does not know (all of them when the
// API cannot be asked): what add-node brings in.
func (s *Session) NewNodes(ctx context.Context) []string {
	var names []string
	for _, h := range s.Cluster.KubeNodes() {
		names = append(names, h.Name)
	}
	path, err := kube.ExistingAdminKubeconfig(s.State, s.Cluster)
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
