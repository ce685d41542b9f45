package playbook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/bootstrap"
	"github.com/kinstall/kinstall/roles/cni"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/controlplane"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/kubeconfig"
	"github.com/kinstall/kinstall/roles/kubelet"
	"github.com/kinstall/kinstall/roles/loadbalancer"
	"github.com/kinstall/kinstall/roles/preflight"
	"github.com/kinstall/kinstall/roles/role"
)

// Phase is one row of a command's plan: what runs, where, and how.
type Phase struct {
	Name        string // path-like: control-plane/join (--only control-plane selects both)
	Description string
	Hosts       []*cluster.Host
	Serial      int  // 0: all hosts at once (up to --forks); N: N at a time
	Critical    bool // quorum-critical: any failure stops the run
	Lockstep    bool // each task on every host before the next (members start together)
	Role        role.New
}

// of adapts a role package's New to role.New.
func of[R role.Role](mk func(*role.Env) (R, error)) role.New {
	return func(e *role.Env) (role.Role, error) { return mk(e) }
}

// Install returns the install phases for a cluster, in order.
func Install(c *cluster.Cluster) []Phase {
	var first, rest, workers []*cluster.Host
	if len(c.Masters) > 0 {
		first, rest = c.Masters[:1], c.Masters[1:]
	}
	for _, h := range c.Workers {
		if !h.Master {
			workers = append(workers, h)
		}
	}
	nodes, roleHosts := c.KubeNodes(), c.RoleHosts()
	return []Phase{
		{Name: "preflight", Description: "facts, root access, clock skew, resources", Hosts: roleHosts, Role: of(preflight.New)},
		{Name: "preflight/artifacts", Description: "every file verified and every image found in its registry, from the taskbox", Hosts: roleHosts, Critical: true, Role: of(preflight.NewArtifacts)},
		{Name: "bootstrap", Description: "hostname, /etc/hosts, swap off, kernel modules, sysctls", Hosts: roleHosts, Role: of(bootstrap.New)},
		{Name: "artifacts", Description: "push verified binaries and images", Hosts: roleHosts, Role: of(etcd.NewStaging)},
		{Name: "container-runtime", Description: "containerd", Hosts: nodes, Role: of(containerruntime.New)},
		{Name: "etcd", Description: "TLS etcd cluster, started together, waits for quorum", Hosts: c.Etcd, Critical: true, Lockstep: true, Role: of(etcd.New)},
		{Name: "loadbalancer", Description: loadBalancerDescription(c), Hosts: loadbalancer.Hosts(c), Role: of(loadbalancer.New)},
		{Name: "kubelet", Description: "kubeadm, kubelet, kubectl, images imported", Hosts: nodes, Role: of(kubelet.New)},
		{Name: "control-plane/init", Description: "first control plane (kubeadm init)", Hosts: first, Critical: true, Role: of(controlplane.NewInit)},
		{Name: "control-plane/join", Description: "other control planes, one at a time (kubeadm join)", Hosts: rest, Serial: 1, Critical: true, Role: of(controlplane.NewJoin)},
		{Name: "workers", Description: "workers join (kubeadm join), labels", Hosts: workers, Role: of(controlplane.NewWorkers)},
		{Name: "cni", Description: c.Config.KubeNetworkPlugin + " (vxlan) on every node, CoreDNS", Hosts: nodes, Role: of(cni.New)},
		{Name: "kubeconfig", Description: "admin kubeconfig on the taskbox, every node Ready", Hosts: first, Role: of(kubeconfig.New)},
	}
}

func loadBalancerDescription(c *cluster.Cluster) string {
	switch c.Config.Mode() {
	case config.LBVIP:
		return "keepalived VIP + HAProxy on the masters"
	case config.LBLocalProxy:
		return "HAProxy on 127.0.0.1 of every non-master node"
	case config.LBExternal:
		return "check the external load balancer is reachable"
	}
	return "none (single control plane)"
}

// Select applies --only and --skip; names are paths, so "control-plane" means
// "control-plane/init" and "control-plane/join" too. An unknown name is an error.
func Select(phases []Phase, only, skip []string) ([]Phase, error) {
	var names []string
	for _, p := range phases {
		names = append(names, p.Name)
	}
	matches := func(name, sel string) bool { return name == sel || strings.HasPrefix(name, sel+"/") }
	for _, sel := range append(append([]string{}, only...), skip...) {
		found := false
		for _, n := range names {
			found = found || matches(n, sel)
		}
		if !found {
			return nil, fmt.Errorf("no phase %q (phases: %s)", sel, strings.Join(names, ", "))
		}
	}
	var out []Phase
	for _, p := range phases {
		run := len(only) == 0
		for _, sel := range only {
			run = run || matches(p.Name, sel)
		}
		for _, sel := range skip {
			run = run && !matches(p.Name, sel)
		}
		if run {
			out = append(out, p)
		}
	}
	return out, nil
}

// Build prepares each phase's role for this session and returns what the runner executes.
func (s *Session) Build(phases []Phase) ([]runner.Phase, error) {
	var out []runner.Phase
	for _, p := range phases {
		r, err := p.Role(s.Env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		out = append(out, runner.Phase{Name: p.Name, Hosts: p.Hosts, Tasks: r.Tasks(), Serial: p.Serial, Critical: p.Critical, Lockstep: p.Lockstep})
	}
	return out, nil
}

// ErrInvalid wraps refusals of the cluster definition (nothing was contacted).
type ErrInvalid struct{ Report *cluster.Report }

func (e *ErrInvalid) Error() string {
	return "the cluster definition has errors: fix them before installing (see 'kinstall check')"
}

// Install runs the install phases chosen by only/skip (install, add-node, re-runs).
func (s *Session) Install(ctx context.Context, only, skip []string) error {
	if report := s.Cluster.Check(); len(report.Errors) > 0 {
		return &ErrInvalid{Report: report}
	}
	phases, err := Select(Install(s.Cluster), only, skip)
	if err != nil {
		return err
	}
	rp, err := s.Build(phases)
	if err != nil {
		return err
	}
	if s.DryRun {
		fmt.Fprintln(s.Out, "DRY RUN: nothing will be changed")
	}
	return s.Run(ctx, rp)
}

// Row is a phase as `kinstall plan` prints it.
type Row struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Hosts       []string `json:"hosts"`
	Serial      int      `json:"serial"`
	Critical    bool     `json:"critical"`
	Lockstep    bool     `json:"lockstep"`
}

// Rows turns phases into plan rows.
func Rows(phases []Phase) []Row {
	out := make([]Row, 0, len(phases))
	for _, p := range phases {
		r := Row{Name: p.Name, Description: p.Description, Hosts: []string{}, Serial: p.Serial, Critical: p.Critical, Lockstep: p.Lockstep}
		for _, h := range p.Hosts {
			r.Hosts = append(r.Hosts, h.Name)
		}
		out = append(out, r)
	}
	return out
}

// PrintPlan writes rows as a table.
func PrintPlan(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPHASE\tHOW\tHOSTS\tWHAT")
	for i, p := range rows {
		how := "parallel"
		if p.Serial > 0 {
			how = fmt.Sprintf("serial %d", p.Serial)
		}
		if p.Lockstep {
			how = "lockstep"
		}
		if p.Critical {
			how += ", stop on failure"
		}
		hosts := strings.Join(p.Hosts, ",")
		if hosts == "" {
			hosts = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, p.Name, how, hosts, p.Description)
	}
	_ = tw.Flush()
}

// PlanJSON returns rows as JSON.
func PlanJSON(rows []Row) ([]byte, error) { return json.MarshalIndent(rows, "", "  ") }
