// Package export is the host side of `kinstall artifacts export`: on one host of each package
// platform the inventory reports (e.g. debian-12-amd64), it downloads every distribution
// package the roles install there together with everything those depend on, and copies the
// files into the bundle on the taskbox. The host's own package mirror is used; nothing is
// installed.
package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/internal/packages"
	"github.com/kinstall/kinstall/roles/loadbalancer"
	"github.com/kinstall/kinstall/roles/role"
)

// Packages is every distribution package a role installs.
func Packages() []string {
	return append(append([]string{}, containerruntime.Packages...), loadbalancer.Packages...)
}

// workDir is where a host gathers the files (removed afterwards).
const workDir = "/var/tmp/kinstall-export"

// Role downloads packages into Dest/debs/<platform>/.
type Role struct {
	Dest string // the bundle directory on the taskbox

	mu    sync.Mutex
	first map[string]string // platform -> the host that downloads it
}

// New prepares the role; set Dest before Tasks.
func New(*role.Env) (*Role, error) { return &Role{first: map[string]string{}}, nil }

// Tasks learn each host's platform (in lockstep, so every platform has its first host before
// any download starts), then download on that host.
func (r *Role) Tasks() []runner.Task {
	return []runner.Task{
		{Name: "package platform", Check: r.platform},
		{Name: "packages downloaded with their dependencies", When: r.downloads, Apply: r.download},
	}
}

func (r *Role) platform(ctx context.Context, h *runner.Host) (string, error) {
	platform, family, err := packages.Platform(ctx, h)
	if err != nil {
		return "", err
	}
	if family != "apt" {
		return "", fmt.Errorf("%s uses %s: exporting packages is built for apt (Debian, Ubuntu) only; export with --no-packages and install them from the site's mirror", h.Name, family)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.first[platform]; !ok {
		r.first[platform] = h.Name
	}
	return "", nil
}

func (r *Role) downloads(h *runner.Host) bool {
	platform, _, _ := packages.Platform(context.Background(), h) // learned by the first task
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first[platform] == h.Name
}

// downloadScript resolves the dependency closure (real packages only: virtual names have no
// record) and downloads each .deb, whatever the host has installed already.
func downloadScript(names []string) string {
	return `set -e
rm -rf ` + workDir + ` && mkdir -p ` + workDir + ` && cd ` + workDir + `
apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
all=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances ` + strings.Join(names, " ") + ` | grep '^[a-zA-Z0-9]' | sort -u)
real=$(for p in $all; do apt-cache show --no-all-versions "$p" >/dev/null 2>&1 && echo "$p"; done)
apt-get download $real >/dev/null 2>&1 || apt-get download $real >/dev/null
chmod 644 *.deb
ls *.deb`
}

func (r *Role) download(ctx context.Context, h *runner.Host) error {
	platform, _, err := packages.Platform(ctx, h)
	if err != nil {
		return err
	}
	out, err := h.Sudo(ctx, downloadScript(Packages()))
	if err != nil {
		return fmt.Errorf("download the packages on %s: %w", h.Name, err)
	}
	dest := filepath.Join(r.Dest, "debs", platform)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	for _, f := range strings.Fields(out) {
		if !strings.HasSuffix(f, ".deb") || strings.ContainsAny(f, "/'") {
			continue
		}
		res, err := h.Conn.Run(ctx, transport.Cmd{Command: "cat " + transport.Quote(workDir+"/"+f)})
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("%s: read %s: exit %d", h.Name, f, res.ExitCode)
		}
		if err := os.WriteFile(filepath.Join(dest, f), res.Stdout, 0o644); err != nil {
			return err
		}
	}
	_, err = h.Sudo(ctx, "rm -rf "+workDir)
	return err
}
