// Package bootstrap prepares the operating system of every cluster host: name, /etc/hosts,
// swap, kernel modules and sysctls. Every task checks first, so a re-run changes nothing.
package bootstrap

import (
	"context"
	"embed"
	"fmt"
	"strings"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

const (
	HostsFile   = "/etc/hosts"
	SysctlFile  = "/etc/sysctl.d/99-kinstall.conf"
	BlockBegin  = "# BEGIN kinstall managed hosts"
	BlockEnd    = "# END kinstall managed hosts"
	kernelMods  = "overlay br_netfilter"
	ModulesFile = "/etc/modules-load.d/kinstall.conf"
)

// Role is the OS bootstrap of every host.
type Role struct{ c *cluster.Cluster }

// New prepares the role.
func New(e *role.Env) (*Role, error) { return &Role{c: e.Cluster}, nil }

// Tasks returns bootstrap's tasks.
func (r *Role) Tasks() []runner.Task {
	c := r.c
	return []runner.Task{
		{Name: "hostname", Check: checkHostname, Apply: setHostname},
		{Name: "/etc/hosts", Check: func(ctx context.Context, h *runner.Host) (string, error) {
			return checkHosts(ctx, h, c)
		}, Apply: func(ctx context.Context, h *runner.Host) error { return writeHosts(ctx, h, c) }},
		runner.Shell("swap off", `[ -z "$(swapon --noheadings --show 2>/dev/null)" ]`,
			`swapoff -a && sed -ri '/\sswap\s/s/^([^#])/#\1/' /etc/fstab`),
		runner.EnsureFile("kernel modules at boot", ModulesFile, 0o644, "", func(*runner.Host) ([]byte, error) {
			return []byte(strings.ReplaceAll(kernelMods, " ", "\n") + "\n"), nil
		}),
		// Modules built into the kernel, or hosts without loadable modules (containers), are fine
		// as long as the feature is there: only load what is missing and loadable.
		runner.Shell("kernel modules loaded",
			`for m in `+kernelMods+`; do [ -d /sys/module/$m ] || [ ! -d /lib/modules/$(uname -r) ] || exit 1; done`,
			`for m in `+kernelMods+`; do [ -d /sys/module/$m ] || modprobe $m; done`),
		runner.EnsureFile("sysctl file", SysctlFile, 0o644, "", func(*runner.Host) ([]byte, error) {
			return templates.Render("sysctl.conf.tmpl", nil)
		}),
		// Keys the kernel doesn't offer here (bridge sysctls without br_netfilter) are skipped.
		runner.Shell("sysctls applied", sysctlsApplied, "sysctl -e -q -p "+SysctlFile),
	}
}

// sysctlsApplied exits 0 when every key of the file that exists on this kernel has its value.
const sysctlsApplied = `while IFS='=' read -r k v; do
  k=$(echo $k); v=$(echo $v)
  case "$k" in ''|'#'*) continue;; esac
  f=/proc/sys/$(echo "$k" | tr . /)
  [ -e "$f" ] || continue
  [ "$(cat "$f")" = "$v" ] || exit 1
done < ` + SysctlFile

func checkHostname(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, "hostname")
	if err != nil {
		return "", err
	}
	if cur := strings.TrimSpace(out); cur != h.Name {
		return fmt.Sprintf("rename %s -> %s", cur, h.Name), nil
	}
	return "", nil
}

func setHostname(ctx context.Context, h *runner.Host) error {
	name := transport.Quote(h.Name)
	_, err := h.Sudo(ctx, "hostnamectl set-hostname "+name+" 2>/dev/null || { hostname "+name+" && echo "+name+" > /etc/hostname; }")
	return err
}

// hostsBlock is the managed part of /etc/hosts: every cluster host and the API load balancer name.
func hostsBlock(h *runner.Host, c *cluster.Cluster) ([]byte, error) {
	lbAddr := c.LoadBalancerAddressFor(h.Host)
	return templates.Render("hosts-block.tmpl", map[string]any{
		"Begin": BlockBegin, "End": BlockEnd, "Hosts": c.Hosts,
		"LBAddress": lbAddr, "LBName": c.Config.APIServerLoadBalancerDomainName,
	})
}

// mergeHostsFile replaces the managed block in an /etc/hosts, or appends it.
func mergeHostsFile(current string, block []byte) string {
	b := strings.TrimRight(string(block), "\n") + "\n"
	start := strings.Index(current, BlockBegin)
	end := strings.Index(current, BlockEnd)
	if start >= 0 && end > start {
		rest := current[end+len(BlockEnd):]
		rest = strings.TrimPrefix(rest, "\n")
		return current[:start] + b + rest
	}
	if current != "" && !strings.HasSuffix(current, "\n") {
		current += "\n"
	}
	return current + b
}

func wantedHosts(ctx context.Context, h *runner.Host, c *cluster.Cluster) (string, string, error) {
	cur, err := h.Sudo(ctx, "cat "+HostsFile)
	if err != nil {
		return "", "", err
	}
	block, err := hostsBlock(h, c)
	if err != nil {
		return "", "", err
	}
	return cur, mergeHostsFile(cur, block), nil
}

func checkHosts(ctx context.Context, h *runner.Host, c *cluster.Cluster) (string, error) {
	cur, want, err := wantedHosts(ctx, h, c)
	if err != nil {
		return "", err
	}
	if cur == want {
		return "", nil
	}
	return "update managed block in " + HostsFile, nil
}

func writeHosts(ctx context.Context, h *runner.Host, c *cluster.Cluster) error {
	_, want, err := wantedHosts(ctx, h, c)
	if err != nil {
		return err
	}
	_, err = h.Conn.WriteFile(ctx, []byte(want), fileSpec(HostsFile))
	return err
}

func fileSpec(path string) transport.FileSpec {
	return transport.FileSpec{Path: path, Mode: 0o644, Sudo: true}
}
