// Package loadbalancer gives the API one stable endpoint that survives the loss of a master, in
// the mode common.yaml picks:
//
//   - vip: keepalived floats loadbalancer_apiserver.address between the masters (unicast VRRP,
//     tracking HAProxy); HAProxy on every master binds VIP:port (ip_nonlocal_bind) and forwards
//     to every master's API on its own IP, health-checked. kube-apiserver binds only its host's IP,
//     so both use 6443.
//   - local-proxy: HAProxy on 127.0.0.1:port of every non-master node, forwarding to all masters.
//   - external: the operator's L4 load balancer; every node must resolve the name to it and reach
//     it over TCP.
//
// Config changes are reloaded one host at a time (HAProxy and keepalived reload gracefully), so
// adding a master never takes the endpoint away.
package loadbalancer

import (
	"context"
	"embed"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/internal/packages"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

// Paths on the hosts.
const (
	HAProxyConfig    = "/etc/haproxy/haproxy.cfg"
	KeepalivedConfig = "/etc/keepalived/keepalived.conf"
	SysctlFile       = "/etc/sysctl.d/99-kinstall-lb.conf"
)

// Installed is what the role writes, for reset; the packages stay.
var Installed = []string{HAProxyConfig, KeepalivedConfig, SysctlFile}

// Packages are what the vip mode installs (local-proxy needs only haproxy).
var Packages = []string{"haproxy", "keepalived"}

// Services are the role's services.
var Services = []string{"keepalived", "haproxy"}

// Facts learned by the facts task.
const (
	factInterface = "lb_interface" // the interface holding the host's ip
	factPrefix    = "lb_prefix"    // its prefix length
)

// Role is the load balancer role for one run.
type Role struct {
	c   *cluster.Cluster
	src *artifacts.Source
	// upgrade: packages are brought to the bundle's (or the mirror's) newest version, not just
	// installed when missing.
	upgrade bool

	reloadMu sync.Mutex // one host reloads at a time, across hosts
}

// New returns the role.
func New(e *role.Env) (*Role, error) {
	return &Role{c: e.Cluster, src: e.Source()}, nil
}

// UpgradePhase is `kinstall upgrade --role loadbalancer`: the role's tasks with packages
// upgraded, one host at a time, stopping at the first failure, so the endpoint always has a
// healthy HAProxy behind it (and in vip mode the VIP a holder).
func (r *Role) UpgradePhase() runner.Phase {
	r.upgrade = true
	return runner.Phase{Name: "loadbalancer/upgrade", Hosts: Hosts(r.c), Tasks: r.Tasks(), Serial: 1, Critical: true}
}

// Hosts returns the hosts the mode runs on.
func Hosts(c *cluster.Cluster) []*cluster.Host {
	switch c.Config.Mode() {
	case config.LBVIP:
		return c.Masters
	case config.LBLocalProxy:
		var out []*cluster.Host
		for _, h := range c.KubeNodes() {
			if !h.Master {
				out = append(out, h)
			}
		}
		return out
	case config.LBExternal:
		return c.KubeNodes()
	}
	return nil
}

// Tasks returns the mode's tasks.
func (r *Role) Tasks() []runner.Task {
	switch r.c.Config.Mode() {
	case config.LBVIP:
		return []runner.Task{
			{Name: "facts", Check: r.facts},
			packages.Task(r.src, r.upgrade, Packages...),
			runner.EnsureFile("sysctl ip_nonlocal_bind", SysctlFile, 0o644, "", func(*runner.Host) ([]byte, error) {
				return []byte("# Managed by kinstall: HAProxy binds the VIP on every master, also where it is not (yet) present.\nnet.ipv4.ip_nonlocal_bind = 1\n"), nil
			}),
			runner.Shell("sysctl applied", `[ "$(cat /proc/sys/net/ipv4/ip_nonlocal_bind)" = 1 ]`, "sysctl -q -p "+SysctlFile),
			runner.EnsureFile("haproxy.cfg", HAProxyConfig, 0o644, "", func(h *runner.Host) ([]byte, error) { return r.HAProxyConfig(h.Host) }),
			runner.EnsureFile("keepalived.conf", KeepalivedConfig, 0o644, "", func(h *runner.Host) ([]byte, error) {
				return r.KeepalivedConfig(h.Host, h.Fact(factInterface), h.Fact(factPrefix))
			}),
			r.service("haproxy", HAProxyConfig, "haproxy -c -q -f "+HAProxyConfig),
			r.service("keepalived", KeepalivedConfig, "keepalived -t -f "+KeepalivedConfig),
			{Name: "endpoint answers", Check: r.checkListening},
		}
	case config.LBLocalProxy:
		return []runner.Task{
			{Name: "facts", Check: r.facts},
			packages.Task(r.src, r.upgrade, "haproxy"),
			runner.EnsureFile("haproxy.cfg", HAProxyConfig, 0o644, "", func(h *runner.Host) ([]byte, error) { return r.HAProxyConfig(h.Host) }),
			r.service("haproxy", HAProxyConfig, "haproxy -c -q -f "+HAProxyConfig),
			{Name: "endpoint answers", Check: r.checkListening},
		}
	case config.LBExternal:
		return []runner.Task{
			{Name: "name resolves to the load balancer", Check: r.checkResolves},
			{Name: "load balancer accepts TCP", Check: r.checkExternalTCP},
		}
	}
	return nil
}

// server is one HAProxy backend.
type server struct{ Name, Address string }

// HAProxyConfig renders haproxy.cfg for a host.
func (r *Role) HAProxyConfig(h *cluster.Host) ([]byte, error) {
	cfg := r.c.Config
	data := struct {
		Purpose, Bind string
		Servers       []server
	}{}
	port := cfg.LoadBalancerAPIServer.Port
	switch cfg.Mode() {
	case config.LBVIP:
		data.Purpose = "The API VIP's frontend on this master (keepalived moves the VIP; this binds it everywhere)."
		data.Bind = hostPort(cfg.LoadBalancerAPIServer.Address, port)
	case config.LBLocalProxy:
		data.Purpose = "This node's own way to the API: " + cfg.APIServerLoadBalancerDomainName + " is 127.0.0.1 here."
		data.Bind = hostPort("127.0.0.1", port)
	default:
		return nil, fmt.Errorf("no HAProxy in %s mode", cfg.Mode())
	}
	for _, m := range r.c.Masters {
		data.Servers = append(data.Servers, server{Name: m.Name, Address: hostPort(m.IP, cfg.APIServerPort)})
	}
	return templates.Render("haproxy.cfg.tmpl", data)
}

// KeepalivedConfig renders keepalived.conf for a master whose ip sits on iface/prefix.
func (r *Role) KeepalivedConfig(h *cluster.Host, iface, prefix string) ([]byte, error) {
	cfg := r.c.Config
	if iface == "" || prefix == "" {
		return nil, fmt.Errorf("%s: no interface holds its ip %s (set ip= in the inventory to an address of the host)", h.Name, h.IP)
	}
	priority := 150
	var peers []string
	for i, m := range r.c.Masters {
		if m.Name == h.Name {
			priority = 150 - i
			continue
		}
		peers = append(peers, m.IP)
	}
	return templates.Render("keepalived.conf.tmpl", map[string]any{
		"Name": h.Name, "VIP": cfg.LoadBalancerAPIServer.Address, "Port": cfg.LoadBalancerAPIServer.Port,
		"Interface": iface, "Prefix": prefix, "RouterID": cfg.VRRPRouterID(), "Priority": priority,
		"IP": h.IP, "Peers": peers,
	})
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

const factsScript = `ip -o addr show 2>/dev/null | awk '{print "addr=" $2 " " $4}'`

// facts learns the interface that holds the host's ip (keepalived puts the VIP next to it).
func (r *Role) facts(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Run(ctx, transport.Cmd{Command: factsScript})
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "addr":
			iface, cidr, _ := strings.Cut(v, " ")
			ip, ipnet, err := net.ParseCIDR(cidr)
			if err == nil && ip.Equal(net.ParseIP(h.IP)) {
				ones, _ := ipnet.Mask.Size()
				h.SetFact(factInterface, strings.SplitN(iface, "@", 2)[0])
				h.SetFact(factPrefix, strconv.Itoa(ones))
			}
		}
	}
	if r.c.Config.Mode() == config.LBVIP && h.Fact(factInterface) == "" {
		return "", fmt.Errorf("%s: no interface holds its ip %s, so keepalived cannot put the VIP next to it: set ip= in the inventory to one of the host's addresses", h.Name, h.IP)
	}
	return "", nil
}

// service makes a service enabled and running; when its config changed in this run it is
// validated and reloaded, one host at a time.
func (r *Role) service(name, configPath, validate string) runner.Task {
	changed := func(h *runner.Host) bool { return h.Fact("changed:"+configPath) != "" }
	return runner.Task{
		Name: name + " running",
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			res, err := h.Conn.Run(ctx, transport.Cmd{Command: "systemctl is-active --quiet " + name + " && systemctl is-enabled --quiet " + name, Sudo: true})
			if err != nil {
				return "", err
			}
			switch {
			case res.ExitCode != 0:
				return "enable and start " + name, nil
			case changed(h):
				return "reload " + name + " (configuration changed)", nil
			}
			return "", nil
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			if _, err := h.Sudo(ctx, validate); err != nil {
				return fmt.Errorf("%s rejects its new configuration (the running one is kept): %w", name, err)
			}
			r.reloadMu.Lock()
			defer r.reloadMu.Unlock()
			// Packages start the service with their own config: restart once to take ours;
			// later changes reload gracefully (HAProxy keeps connections, keepalived the VIP).
			cmd := "systemctl enable --quiet " + name + " && if systemctl is-active --quiet " + name + "; then systemctl reload-or-restart " + name + "; else systemctl restart " + name + "; fi"
			if _, err := h.Sudo(ctx, cmd); err != nil {
				return err
			}
			h.SetFact("reloaded:"+name, "true")
			if name == "haproxy" {
				return r.waitListening(ctx, h, 10*time.Second)
			}
			return nil
		},
	}
}

// bindAddress is where HAProxy must listen on h.
func (r *Role) bindAddress() string {
	cfg := r.c.Config
	if cfg.Mode() == config.LBVIP {
		return hostPort(cfg.LoadBalancerAPIServer.Address, cfg.LoadBalancerAPIServer.Port)
	}
	return hostPort("127.0.0.1", cfg.LoadBalancerAPIServer.Port)
}

// waitListening waits until HAProxy listens on the endpoint's address (a reload that fails
// leaves the old process running, so "active" alone proves nothing).
func (r *Role) waitListening(ctx context.Context, h *runner.Host, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	bind := r.bindAddress()
	for {
		res, err := h.Conn.Run(ctx, transport.Cmd{Command: "ss -Hltnp 'sport = :" + strconv.Itoa(r.c.Config.LoadBalancerAPIServer.Port) + "' | grep -F " + transport.Quote(bind+" ") + " | grep -q haproxy", Sudo: true})
		if err != nil {
			return err
		}
		if res.ExitCode == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy does not listen on %s after %s (see journalctl -u haproxy on %s)", bind, timeout, h.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *Role) checkListening(ctx context.Context, h *runner.Host) (string, error) {
	if h.DryRun {
		return "", nil
	}
	return "", r.waitListening(ctx, h, 10*time.Second)
}

// checkResolves: in external mode every node resolves the API name to the load balancer
// (bootstrap writes it to /etc/hosts unless DNS is authoritative for it).
func (r *Role) checkResolves(ctx context.Context, h *runner.Host) (string, error) {
	cfg := r.c.Config
	name := cfg.APIServerLoadBalancerDomainName
	out, err := h.Run(ctx, transport.Cmd{Command: "getent ahostsv4 " + transport.Quote(name) + " | awk '{print $1; exit}'"})
	if err != nil {
		return "", err
	}
	got := strings.TrimSpace(out)
	if got != cfg.LoadBalancerAPIServer.Address {
		if got == "" {
			got = "nothing"
		}
		return "", fmt.Errorf("%s resolves %s to %s, not the load balancer %s: run the bootstrap phase (it writes /etc/hosts) or fix DNS",
			h.Name, name, got, cfg.LoadBalancerAPIServer.Address)
	}
	return "", nil
}

// checkExternalTCP: the operator's load balancer accepts TCP from every node.
func (r *Role) checkExternalTCP(ctx context.Context, h *runner.Host) (string, error) {
	cfg := r.c.Config
	addr, port := cfg.LoadBalancerAPIServer.Address, cfg.LoadBalancerAPIServer.Port
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: fmt.Sprintf("timeout 3 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>&1", addr, port)})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		why := "no answer within 3 s"
		if strings.Contains(string(res.Stdout), "refused") {
			why = "connection refused"
		}
		return "", fmt.Errorf("%s cannot reach the external load balancer %s:%d (%s): it must accept TCP from every node and forward to the masters' port %d",
			h.Name, addr, port, why, cfg.APIServerPort)
	}
	return "", nil
}
