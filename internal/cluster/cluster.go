// Package cluster is the cluster model built from the inventory and common.yaml: which hosts
// carry which roles, how to reach each, and the cluster-wide settings.
//
// Role groups: KubeSphere's names and Kubespray's mean the same roles and may be mixed.
//
//	role           KubeSphere     Kubespray
//	control plane  kube-master    kube_control_plane (and the older kube_master)
//	etcd           etcd           etcd
//	worker         kube-node      kube_node
//	(all k8s)      k8s-cluster    k8s_cluster
package cluster

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/inventory"
	"github.com/kinstall/kinstall/internal/transport"
)

// Role group names, by role.
var (
	MasterGroups = []string{"kube-master", "kube_control_plane", "kube_master"}
	EtcdGroups   = []string{"etcd"}
	WorkerGroups = []string{"kube-node", "kube_node"}
)

// Host is one inventory host.
type Host struct {
	Name   string
	IP     string         // `ip`, else ansible_host, else the name: the address cluster traffic uses
	Vars   map[string]any // merged Ansible variables
	Target transport.Target
	Master bool
	Etcd   bool
	Worker bool
	File   string
	Line   int
}

// Roles lists the host's roles for messages.
func (h *Host) Roles() []string {
	var r []string
	if h.Master {
		r = append(r, "master")
	}
	if h.Etcd {
		r = append(r, "etcd")
	}
	if h.Worker {
		r = append(r, "worker")
	}
	return r
}

// Cluster is the whole cluster.
type Cluster struct {
	Hosts                  []*Host // every inventory host, inventory order
	Masters, Etcd, Workers []*Host
	Taskbox                *Host // the ansible_connection=local host, if any
	Config                 *config.Config
	InventoryFile          string
	ConfigFile             string

	inv    *inventory.Inventory
	byName map[string]*Host
}

// Load reads both files and builds the cluster.
func Load(inventoryPath, configPath string) (*Cluster, error) {
	inv, err := inventory.ParseFile(inventoryPath)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	c, err := New(inv, cfg, inventoryPath)
	if err != nil {
		return nil, err
	}
	c.ConfigFile = configPath
	return c, nil
}

// New builds the cluster model; cfg is changed by the inventory's overrides.
func New(inv *inventory.Inventory, cfg *config.Config, inventoryFile string) (*Cluster, error) {
	if err := cfg.ApplyOverrides(inv.GroupVars("all"), inventoryFile+" [all:vars]"); err != nil {
		return nil, err
	}
	c := &Cluster{Config: cfg, InventoryFile: inventoryFile, inv: inv, byName: map[string]*Host{}}
	inGroups := func(name string, groups []string) bool {
		for _, g := range groups {
			for _, h := range inv.GroupHosts(g) {
				if h == name {
					return true
				}
			}
		}
		return false
	}
	var errs *multierror.Error
	for _, name := range inv.Hosts() {
		h, err := newHost(inv, name)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		h.Master = inGroups(name, MasterGroups)
		h.Etcd = inGroups(name, EtcdGroups)
		h.Worker = inGroups(name, WorkerGroups)
		c.Hosts = append(c.Hosts, h)
		c.byName[name] = h
		if h.Master {
			c.Masters = append(c.Masters, h)
		}
		if h.Etcd {
			c.Etcd = append(c.Etcd, h)
		}
		if h.Worker {
			c.Workers = append(c.Workers, h)
		}
		if h.Target.Local && c.Taskbox == nil {
			c.Taskbox = h
		}
	}
	errs = multierror.Append(errs, c.validate()...)
	if err := errs.ErrorOrNil(); err != nil {
		errs.ErrorFormat = listFormat
		return nil, errs
	}
	return c, nil
}

func listFormat(errs []error) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// newHost reads the connection variables Ansible would use.
func newHost(inv *inventory.Inventory, name string) (*Host, error) {
	vars := inv.HostVars(name)
	file, line := inv.Position(name)
	h := &Host{Name: name, Vars: vars, File: file, Line: line}
	at := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: host %s: "+format, append([]any{file, line, name}, args...)...)
	}
	str := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := vars[k]; ok && v != nil {
				return fmt.Sprint(v)
			}
		}
		return ""
	}
	t := transport.Target{Name: name, Port: 22}
	t.Address = str("ansible_host", "ansible_ssh_host")
	if t.Address == "" {
		t.Address = name
	}
	if p := str("ansible_port", "ansible_ssh_port"); p != "" {
		var port int
		if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 1 || port > 65535 || fmt.Sprint(port) != p {
			return nil, at("ansible_port %q is not a TCP port (1-65535)", p)
		}
		t.Port = port
	}
	t.User = str("ansible_user", "ansible_ssh_user")
	t.Password = str("ansible_password", "ansible_ssh_pass")
	t.KeyFile = expandHome(str("ansible_ssh_private_key_file", "ansible_private_key_file"))
	t.BecomeUser = str("ansible_become_user")
	t.BecomePassword = str("ansible_become_pass", "ansible_become_password", "ansible_sudo_pass")
	switch conn := str("ansible_connection"); conn {
	case "", "ssh", "smart", "paramiko":
	case "local":
		t.Local = true
	default:
		return nil, at("ansible_connection=%s is not supported: use ssh or local", conn)
	}
	// An installer needs root on every host. Ansible leaves become off unless asked, but
	// KubeSphere's non-root sample (ansible_user=ubuntu ansible_become_pass=...) relies on its
	// playbooks becoming root themselves: so a login that is not root implies sudo, and only
	// an explicit ansible_become=false for such a login is refused.
	if v, ok := vars["ansible_become"]; ok {
		b, err := ansibleBool(v)
		if err != nil {
			return nil, at("ansible_become: %v", err)
		}
		t.Become = b
		if !b && loginUser(t) != "root" {
			return nil, at("ansible_become=false, but it logs in as %s and kinstall needs root on every host: remove ansible_become=false (sudo is then used, with ansible_become_pass if it asks) or log in as root", loginUser(t))
		}
	}
	if loginUser(t) != "root" {
		t.Become = true
	}
	h.Target = t
	h.IP = str("ip")
	if h.IP == "" {
		h.IP = t.Address
	}
	return h, nil
}

// loginUser is who commands run as before become: the taskbox's own user for a local
// connection (Ansible ignores ansible_user there too), else ansible_user or, like ssh, $USER.
func loginUser(t transport.Target) string {
	if t.Local {
		if os.Geteuid() == 0 {
			return "root"
		}
		if u := os.Getenv("USER"); u != "" {
			return u
		}
		return fmt.Sprintf("uid %d", os.Geteuid())
	}
	if t.User != "" {
		return t.User
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root" // what the ssh transport logs in as then
}

// ansibleBool accepts Ansible's boolean spellings.
func ansibleBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case string:
		switch strings.ToLower(x) {
		case "yes", "on", "true", "1", "y", "t":
			return true, nil
		case "no", "off", "false", "0", "n", "f", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("%v is not a boolean (use true or false)", v)
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return home + p[1:]
		}
	}
	return p
}

// validate finds errors that make the cluster impossible to install.
func (c *Cluster) validate() []error {
	var errs []error
	at := func(h *Host, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: host %s: "+format, append([]any{h.File, h.Line, h.Name}, args...)...))
	}
	if len(c.Masters) == 0 {
		errs = append(errs, fmt.Errorf("%s: no control plane: put at least one host in [kube-master] (or [kube_control_plane])", c.InventoryFile))
	}
	if len(c.Etcd) == 0 {
		errs = append(errs, fmt.Errorf("%s: no etcd member: put 1, 3 or 5 hosts in [etcd]", c.InventoryFile))
	}
	seenIP := map[string]*Host{}
	for _, h := range c.Hosts {
		hasRole := h.Master || h.Etcd || h.Worker
		if hasRole && !h.Target.Local && h.Target.Address == h.Name && net.ParseIP(h.Name) == nil && !strings.Contains(h.Name, ".") {
			at(h, "has a role but no address: add ansible_host=ADDRESS (and ip=ADDRESS for cluster traffic)")
		}
		if hasRole && net.ParseIP(h.IP) == nil {
			at(h, "ip %q is not an IP address: set ip= to the address other nodes reach it on", h.IP)
		}
		if other, dup := seenIP[h.IP]; dup && hasRole {
			at(h, "has the same ip %s as host %s (line %d): each host needs its own address", h.IP, other.Name, other.Line)
		}
		if hasRole {
			seenIP[h.IP] = h
		}
	}
	return errs
}

// Host returns a host by name, or nil.
func (c *Cluster) Host(name string) *Host { return c.byName[name] }

// GroupHosts returns the host names of an inventory group (and its children); nil if none.
func (c *Cluster) GroupHosts(group string) []string { return c.inv.GroupHosts(group) }

// RoleHosts returns the hosts that carry at least one role, inventory order.
func (c *Cluster) RoleHosts() []*Host {
	var out []*Host
	for _, h := range c.Hosts {
		if h.Master || h.Etcd || h.Worker {
			out = append(out, h)
		}
	}
	return out
}

// KubeNodes returns masters and workers (the hosts that run kubelet), inventory order.
func (c *Cluster) KubeNodes() []*Host {
	var out []*Host
	for _, h := range c.Hosts {
		if h.Master || h.Worker {
			out = append(out, h)
		}
	}
	return out
}

// APIEndpoint is the address:port clients use for the API: the load balancer, or the first
// master when there is none.
func (c *Cluster) APIEndpoint() (string, int) {
	cfg := c.Config
	switch cfg.Mode() {
	case config.LBExternal, config.LBVIP:
		return cfg.LoadBalancerAPIServer.Address, cfg.LoadBalancerAPIServer.Port
	case config.LBLocalProxy:
		return "127.0.0.1", cfg.LoadBalancerAPIServer.Port
	}
	if len(c.Masters) > 0 {
		return c.Masters[0].IP, cfg.APIServerPort
	}
	return "", cfg.APIServerPort
}

// LoadBalancerAddressFor is the address the API domain name resolves to on a host: the LB or
// VIP; with a per-node proxy, 127.0.0.1 on non-masters and the master's own IP on masters.
func (c *Cluster) LoadBalancerAddressFor(h *Host) string {
	cfg := c.Config
	switch cfg.Mode() {
	case config.LBExternal, config.LBVIP:
		return cfg.LoadBalancerAPIServer.Address
	case config.LBLocalProxy:
		if h.Master {
			return h.IP
		}
		return "127.0.0.1"
	}
	if len(c.Masters) > 0 {
		return c.Masters[0].IP
	}
	return "127.0.0.1"
}

// Without returns a copy of the cluster without the named host: the cluster as it will be once
// the host is removed (for the load balancer configs of the hosts that stay).
func (c *Cluster) Without(name string) *Cluster {
	cp := *c
	drop := func(hs []*Host) []*Host {
		var out []*Host
		for _, h := range hs {
			if h.Name != name {
				out = append(out, h)
			}
		}
		return out
	}
	cp.Hosts, cp.Masters, cp.Etcd, cp.Workers = drop(c.Hosts), drop(c.Masters), drop(c.Etcd), drop(c.Workers)
	cp.byName = map[string]*Host{}
	for _, h := range cp.Hosts {
		cp.byName[h.Name] = h
	}
	return &cp
}
