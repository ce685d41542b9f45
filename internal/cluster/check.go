package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/kinstall/kinstall/internal/config"
)

// Report is the topology check: the facts, and what is wrong or risky.
type Report struct {
	Masters   []string `json:"masters"`
	Etcd      []string `json:"etcd"`
	Workers   []string `json:"workers"`
	Quorum    int      `json:"etcd_quorum"`
	Tolerated int      `json:"etcd_failures_tolerated"`
	LBMode    string   `json:"loadbalancer_mode"`
	Endpoint  string   `json:"api_endpoint"`
	Domain    string   `json:"api_domain_name"`
	Errors    []string `json:"errors"`
	Warnings  []string `json:"warnings"`
	Notes     []string `json:"notes"`
}

// Quorum is how many etcd members must be up for etcd to work: floor(n/2)+1.
func Quorum(members int) int { return members/2 + 1 }

// Check inspects the topology for HA mistakes.
func (c *Cluster) Check() *Report {
	r := &Report{Errors: []string{}, Warnings: []string{}, Notes: []string{}}
	for _, h := range c.Masters {
		r.Masters = append(r.Masters, h.Name)
	}
	for _, h := range c.Etcd {
		r.Etcd = append(r.Etcd, h.Name)
	}
	for _, h := range c.Workers {
		r.Workers = append(r.Workers, h.Name)
	}
	n := len(c.Etcd)
	r.Quorum = Quorum(n)
	r.Tolerated = n - r.Quorum
	cfg := c.Config
	r.LBMode = cfg.Mode()
	addr, port := c.APIEndpoint()
	r.Endpoint = fmt.Sprintf("%s:%d", addr, port)
	r.Domain = cfg.APIServerLoadBalancerDomainName
	errorf := func(f string, a ...any) { r.Errors = append(r.Errors, fmt.Sprintf(f, a...)) }
	warnf := func(f string, a ...any) { r.Warnings = append(r.Warnings, fmt.Sprintf(f, a...)) }
	notef := func(f string, a ...any) { r.Notes = append(r.Notes, fmt.Sprintf(f, a...)) }

	switch {
	case n == 1:
		warnf("1 etcd member: no HA, losing it loses the cluster's data. Use 3 members.")
	case n == 2:
		warnf("2 etcd members are worse than 1: quorum is 2, so losing either member stops etcd. Use 3.")
	case n%2 == 0 && n > 0:
		warnf("%d etcd members tolerate %d failure(s), no more than %d members would: use an odd count (%d or %d).", n, r.Tolerated, n-1, n-1, n+1)
	}
	if n > 7 {
		warnf("%d etcd members: every write waits for %d of them; 3 or 5 is usual.", n, r.Quorum)
	}
	for _, h := range c.Etcd {
		if !h.Master && h.Worker {
			warnf("etcd on %s, which is a worker: workloads there can starve etcd. Prefer masters or dedicated hosts.", h.Name)
		}
	}
	if len(c.Masters) == 1 {
		warnf("1 control plane (%s): no HA for the API. Use 2 or more masters behind a load balancer.", c.Masters[0].Name)
	}
	if len(c.Masters) >= 2 && r.LBMode == config.LBNone {
		errorf("%d control planes but no load balancer: set loadbalancer_apiserver.address (an existing LB, or a free IP for a VIP with loadbalancer_apiserver_mode: vip), or set loadbalancer_apiserver_mode: local-proxy.", len(c.Masters))
	}
	if r.LBMode == config.LBVIP || r.LBMode == config.LBExternal {
		vip := cfg.LoadBalancerAPIServer.Address
		for _, h := range c.Hosts {
			if h.IP == vip || h.Target.Address == vip {
				if r.LBMode == config.LBVIP {
					errorf("the VIP %s is host %s's address: pick a free IP in the masters' subnet.", vip, h.Name)
				} else if !h.Master && !h.Etcd && !h.Worker {
					notef("the external load balancer %s is inventory host %s.", vip, h.Name)
				} else {
					warnf("the external load balancer %s is host %s, which also has a role: losing it loses the API endpoint.", vip, h.Name)
				}
			}
		}
	}
	if r.LBMode == config.LBVIP {
		notef("vip: keepalived moves %s between the masters (VRRP id %d, unicast); HAProxy on each master binds %s:%d and forwards to every master's API on its own IP:%d.",
			cfg.LoadBalancerAPIServer.Address, cfg.VRRPRouterID(), cfg.LoadBalancerAPIServer.Address, cfg.LoadBalancerAPIServer.Port, cfg.APIServerPort)
	}
	if r.LBMode == config.LBLocalProxy && cfg.LoadBalancerAPIServer.Port == cfg.APIServerPort {
		for _, h := range c.Masters {
			if h.Worker {
				notef("%s is master and worker: it reaches the API on its own address, not through a local proxy.", h.Name)
			}
		}
	}
	shared := 0
	for _, h := range c.Hosts {
		if len(h.Roles()) > 1 {
			shared++
		}
	}
	if shared > 0 {
		notef("%d host(s) carry several roles: roles may share a host.", shared)
	}
	if len(c.Masters) >= 2 && len(c.Masters)%2 == 0 {
		notef("%d control planes is fine: unlike etcd, the control-plane count need not be odd.", len(c.Masters))
	}
	return r
}

// Print writes the report for a person.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "Control plane (%d): %s\n", len(r.Masters), list(r.Masters))
	fmt.Fprintf(w, "etcd (%d):          %s\n", len(r.Etcd), list(r.Etcd))
	fmt.Fprintf(w, "                    quorum %d, tolerates %d failure(s)\n", r.Quorum, r.Tolerated)
	fmt.Fprintf(w, "Workers (%d):       %s\n", len(r.Workers), list(r.Workers))
	fmt.Fprintf(w, "API endpoint:       %s (%s), load balancer: %s\n", r.Endpoint, r.Domain, r.LBMode)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR:   %s\n", e)
	}
	for _, e := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", e)
	}
	for _, e := range r.Notes {
		fmt.Fprintf(w, "NOTE:    %s\n", e)
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "OK: the topology can be installed.")
	}
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
