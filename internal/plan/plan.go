// Package plan lists the install phases in order and the hosts each runs on, without
// touching any host. The runner executes this list; `kinstall plan` prints it.
package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
)

// Phase is one step of the install.
type Phase struct {
	Name        string   `json:"name"` // path-like: control-plane/join
	Description string   `json:"description"`
	Hosts       []string `json:"hosts"`
	Serial      int      `json:"serial"`   // 0: all hosts at once; N: N at a time
	Critical    bool     `json:"critical"` // quorum-critical: any failure stops the run
	Lockstep    bool     `json:"lockstep"` // each task on every host before the next (members start together)
}

// Install returns the install phases for a cluster.
func Install(c *cluster.Cluster) []Phase {
	names := func(hs []*cluster.Host) []string {
		out := []string{}
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}
	roleHosts := names(c.RoleHosts())
	nodes := names(c.KubeNodes())
	var first, rest []string
	if len(c.Masters) > 0 {
		first = []string{c.Masters[0].Name}
		rest = names(c.Masters[1:])
	}
	var workers []string
	for _, h := range c.Workers {
		if !h.Master {
			workers = append(workers, h.Name)
		}
	}
	var lbHosts []string
	lbDesc := ""
	switch c.Config.Mode() {
	case config.LBVIP:
		lbHosts, lbDesc = names(c.Masters), "keepalived VIP + HAProxy on the masters"
	case config.LBLocalProxy:
		lbHosts, lbDesc = workers, "HAProxy on 127.0.0.1 of every non-master node"
	case config.LBExternal:
		lbHosts, lbDesc = nodes, "check the external load balancer is reachable"
	default:
		lbDesc = "none (single control plane)"
	}
	return []Phase{
		{Name: "preflight", Description: "facts, root access, clock skew, resources", Hosts: roleHosts},
		{Name: "bootstrap", Description: "hostname, /etc/hosts, swap off, kernel modules, sysctls", Hosts: roleHosts},
		{Name: "artifacts", Description: "push verified binaries and images", Hosts: roleHosts},
		{Name: "container-runtime", Description: "containerd", Hosts: nodes},
		{Name: "etcd", Description: "TLS etcd cluster, started together, waits for quorum", Hosts: names(c.Etcd), Critical: true, Lockstep: true},
		{Name: "loadbalancer", Description: lbDesc, Hosts: lbHosts},
		{Name: "kubelet", Description: "kubeadm, kubelet, kubectl, images imported", Hosts: nodes},
		{Name: "control-plane/init", Description: "first control plane (kubeadm init)", Hosts: first, Critical: true},
		{Name: "control-plane/join", Description: "other control planes, one at a time (kubeadm join)", Hosts: rest, Serial: 1, Critical: true},
		{Name: "workers", Description: "workers join (kubeadm join), labels", Hosts: workers},
		{Name: "cni", Description: c.Config.KubeNetworkPlugin + " (vxlan) on every node, CoreDNS", Hosts: nodes},
		{Name: "kubeconfig", Description: "admin kubeconfig on the taskbox, every node Ready", Hosts: first},
	}
}

// Print writes the plan as a table.
func Print(w io.Writer, phases []Phase) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPHASE\tHOW\tHOSTS\tWHAT")
	for i, p := range phases {
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

// JSON returns the plan as JSON.
func JSON(phases []Phase) ([]byte, error) { return json.MarshalIndent(phases, "", "  ") }
