// Package packages installs distribution packages on hosts: from the artifacts bundle's
// packages for the host's platform when there are any (offline, never downgrading what the host
// has), else from the host's own mirror (apt, dnf or yum). Roles share it.
package packages

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
)

// Dir is where bundle packages are pushed on the hosts.
const Dir = "/opt/kinstall/packages"

// Facts learned once per host.
const (
	factPlatform = "pkg_platform" // e.g. debian-12-amd64
	factFamily   = "pkg_family"   // apt, dnf or yum
)

type installer struct {
	src     *artifacts.Source
	upgrade bool // bring packages to the newest version, not just install missing ones
}

const factsScript = `. /etc/os-release 2>/dev/null
echo "platform=${ID:-unknown}-${VERSION_ID%%.*}"
command -v apt-get >/dev/null && echo pkg=apt || { command -v dnf >/dev/null && echo pkg=dnf; } || { command -v yum >/dev/null && echo pkg=yum; }
echo "arch=$(uname -m)"`

// learn records the host's platform and package manager (once).
func learn(ctx context.Context, h *runner.Host) error {
	if h.Fact(factPlatform) != "" {
		return nil
	}
	out, err := h.Run(ctx, transport.Cmd{Command: factsScript})
	if err != nil {
		return err
	}
	var platform, arch string
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "platform":
			platform = v
		case "pkg":
			h.SetFact(factFamily, v)
		case "arch":
			a, err := artifacts.GoArch(v)
			if err != nil {
				return err
			}
			arch = a
		}
	}
	h.SetFact(factPlatform, platform+"-"+arch)
	return nil
}

// Platform returns the host's package platform, e.g. debian-12-amd64 (the bundle's
// debs/<platform>/ directory), and its package manager: apt, dnf or yum.
func Platform(ctx context.Context, h *runner.Host) (platform, family string, err error) {
	if err := learn(ctx, h); err != nil {
		return "", "", err
	}
	return h.Fact(factPlatform), h.Fact(factFamily), nil
}

// Task installs distribution packages: from the bundle's packages for the host's platform
// when there are any (offline), else from the host's own package mirror.
func Task(src *artifacts.Source, upgrade bool, names ...string) runner.Task {
	p := &installer{src: src, upgrade: upgrade}
	list := strings.Join(names, " ")
	return runner.Task{
		Name: "packages " + list,
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			if err := learn(ctx, h); err != nil {
				return "", err
			}
			check := "dpkg-query -W -f='${Status}\\n' " + list + " 2>/dev/null | grep -c 'install ok installed'"
			if h.Fact(factFamily) != "apt" {
				check = "rpm -q " + list + " 2>/dev/null | grep -vc 'not installed'"
			}
			res, err := h.Conn.Run(ctx, transport.Cmd{Command: check})
			if err != nil {
				return "", err
			}
			if strings.TrimSpace(string(res.Stdout)) != strconv.Itoa(len(names)) {
				return "install " + list, nil
			}
			if !p.upgrade {
				return "", nil
			}
			return p.upgradable(ctx, h, list)
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			if err := learn(ctx, h); err != nil {
				return err
			}
			h.SetFact("changed:packages", "true")
			switch h.Fact(factFamily) {
			case "apt":
				return p.installDebs(ctx, h, list)
			case "dnf", "yum":
				verb := " install -y "
				if p.upgrade {
					verb = " upgrade -y "
				}
				_, err := h.Sudo(ctx, h.Fact(factFamily)+verb+list)
				return err
			}
			return fmt.Errorf("%s: no apt, dnf or yum: install %s by hand", h.Name, list)
		},
	}
}

func (p *installer) installDebs(ctx context.Context, h *runner.Host, list string) error {
	files, ok, err := p.src.Packages(h.Fact(factPlatform))
	if err != nil {
		return err
	}
	if !ok {
		only := ""
		if p.upgrade {
			only = "--only-upgrade "
		}
		_, err := h.Sudo(ctx, "apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold install -y -q --no-install-recommends "+only+list)
		return err
	}
	dir := Dir + "/" + h.Fact(factPlatform)
	for _, f := range files {
		remote := dir + "/" + f[strings.LastIndex(f, "/")+1:]
		if _, err := h.Conn.Upload(ctx, f, transport.FileSpec{Path: remote, Mode: 0o644, Sudo: true}); err != nil {
			return err
		}
	}
	// Offline: install the bundle's packages that are missing or older here (never downgrade
	// what the host has), all in one dpkg call so dependencies among them resolve.
	_, err = h.Sudo(ctx, `cd `+transport.Quote(dir)+` && for f in *.deb; do
  p=$(dpkg-deb -f "$f" Package); v=$(dpkg-deb -f "$f" Version)
  iv=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null | sed -n 's/^install ok installed //p')
  if [ -z "$iv" ] || dpkg --compare-versions "$iv" lt "$v"; then echo "$f"; fi
done | DEBIAN_FRONTEND=noninteractive xargs -r dpkg --force-confold -i >/dev/null`)
	return err
}

// upgradable says which packages have a newer version: in the bundle (offline) or the mirror.
func (p *installer) upgradable(ctx context.Context, h *runner.Host, list string) (string, error) {
	if h.Fact(factFamily) != "apt" {
		res, err := h.Conn.Run(ctx, transport.Cmd{Command: h.Fact(factFamily) + " -q check-update " + list, Sudo: true})
		if err != nil || res.ExitCode != 100 {
			return "", err
		}
		return "upgrade " + list, nil
	}
	files, ok, err := p.src.Packages(h.Fact(factPlatform))
	if err != nil {
		return "", err
	}
	var script string
	if ok {
		// name_version_arch.deb, with the epoch's colon written as %3a.
		var pairs []string
		for _, f := range files {
			parts := strings.Split(strings.TrimSuffix(f[strings.LastIndex(f, "/")+1:], ".deb"), "_")
			if len(parts) == 3 {
				pairs = append(pairs, parts[0]+"="+strings.ReplaceAll(parts[1], "%3a", ":"))
			}
		}
		script = "for pv in " + strings.Join(pairs, " ") + `; do p=${pv%%=*}; v=${pv#*=}
  iv=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null | sed -n 's/^install ok installed //p')
  [ -n "$iv" ] && dpkg --compare-versions "$iv" lt "$v" && echo "$p"; done; true`
	} else {
		script = "apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null; apt list --upgradable 2>/dev/null | cut -d/ -f1 | grep -xE '" + strings.ReplaceAll(list, " ", "|") + "'; true"
	}
	out, err := h.Sudo(ctx, script)
	if err != nil {
		return "", err
	}
	if pk := strings.Fields(out); len(pk) > 0 {
		return "upgrade " + strings.Join(pk, ", "), nil
	}
	return "", nil
}
