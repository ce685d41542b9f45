// Package containerruntime installs containerd, runc and the CNI plugins on every Kubernetes
// node, with a config rendered for the host as it is: the cgroup driver the host supports, and
// the quirks of hosts that are themselves containers (no CAP_SYS_RESOURCE, /var/lib on
// overlayfs) detected, not assumed.
package containerruntime

import (
	"context"
	"embed"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/internal/packages"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

// Paths and defaults.
const (
	ConfigFile   = "/etc/containerd/config.toml"
	CertsDir     = "/etc/containerd/certs.d"
	SandboxImage = "registry.k8s.io/pause:3.10.1"
	DebianCNIDir = "/usr/lib/cni" // containernetworking-plugins on Debian
	Socket       = "/run/containerd/containerd.sock"
	DataDir      = "/var/lib/containerd"
	RunDir       = "/run/containerd"
)

// Installed is what the role writes and what containerd keeps, for reset; the packages stay.
var Installed = []string{ConfigFile, CertsDir, DataDir + "/*", RunDir}

// Packages the role installs (Debian names): the runtime and what kubelet and kube-proxy need.
var Packages = []string{"containerd", "runc", "containernetworking-plugins", "conntrack", "socat", "iptables"}

// Facts learned by the facts task.
const (
	FactCgroupV2      = "cr_cgroup_v2"        // "yes" on a unified (v2) cgroup hierarchy
	FactSysResource   = "cr_cap_sys_resource" // "yes" when the host may raise OOM scores
	FactVarLibOverlay = "cr_varlib_overlay"   // "yes" when /var/lib/containerd is on overlayfs
	FactKmsg          = "cr_dev_kmsg"         // "yes" when /dev/kmsg exists (kubelet reads it)
)

// Settings is the data of config.toml for one host.
type Settings struct {
	Why                 string
	SandboxImage        string
	RestrictOOMScoreAdj bool
	Snapshotter         string
	SystemdCgroup       bool
	CNIBinDir           string
	Auth                []Credentials // registry credentials (config.toml is 0600)
}

// Credentials are one registry's, as containerd's CRI plugin takes them.
type Credentials struct{ Registry, Username, Password, Token string }

// SettingsFor derives the config from the host's facts.
func SettingsFor(h *runner.Host) Settings {
	s := Settings{SandboxImage: SandboxImage, Snapshotter: "overlayfs", CNIBinDir: DebianCNIDir}
	var why []string
	if h.Fact(FactCgroupV2) == "yes" {
		s.SystemdCgroup = true
		why = append(why, "cgroup v2: systemd driver")
	} else {
		why = append(why, "cgroup v1: cgroupfs driver")
	}
	if h.Fact(FactSysResource) != "yes" {
		s.RestrictOOMScoreAdj = true
		why = append(why, "no CAP_SYS_RESOURCE: OOM scores restricted")
	}
	if h.Fact(FactVarLibOverlay) == "yes" {
		s.Snapshotter = "native"
		why = append(why, "/var/lib/containerd on overlayfs: native snapshotter")
	}
	s.Why = "Host facts: " + strings.Join(why, "; ") + "."
	return s
}

// Render renders config.toml.
func Render(s Settings) ([]byte, error) { return templates.Render("config.toml.tmpl", s) }

// HostsTOML renders how containerd reaches one registry: its mirrors and the CA file (on the
// host) that signs its TLS certificate, either may be empty.
func HostsTOML(registry string, mirrors []string, ca string) ([]byte, error) {
	server := "https://" + registry
	if registry == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	return templates.Render("hosts.toml.tmpl", map[string]any{"Registry": registry, "Server": server, "Mirrors": mirrors, "CA": ca})
}

// settings is the config of one host: its facts and the cluster's registry settings.
func (r *Role) settings(h *runner.Host) (Settings, error) {
	s := SettingsFor(h)
	pause, err := artifacts.PauseImage(r.c.Config.ImageRepo(), r.c.Config.KubeVersion)
	if err != nil {
		return s, err
	}
	s.SandboxImage = pause
	for _, a := range r.c.Config.ContainerdRegistryAuth {
		if a.Username != "" || a.Auth != "" {
			s.Auth = append(s.Auth, Credentials{Registry: a.Registry, Username: a.Username, Password: a.Password, Token: a.Auth})
		}
	}
	return s, nil
}

// registryFiles are the per-registry files: hosts.toml for every registry with mirrors or a
// CA, and the CA itself.
func (r *Role) registryFiles() []runner.Task {
	cfg := r.c.Config
	cas := map[string]string{}
	for _, a := range cfg.ContainerdRegistryAuth {
		if a.CAFile != "" {
			cas[a.Registry] = a.CAFile
		}
	}
	names := map[string]bool{}
	for reg := range cfg.ContainerdRegistryMirrors {
		names[reg] = true
	}
	for reg := range cas {
		names[reg] = true
	}
	registries := make([]string, 0, len(names))
	for reg := range names {
		registries = append(registries, reg)
	}
	sort.Strings(registries)
	var tasks []runner.Task
	for _, reg := range registries {
		reg, list, caFile := reg, cfg.ContainerdRegistryMirrors[reg], cas[reg]
		onHost := ""
		if caFile != "" {
			onHost = CertsDir + "/" + reg + "/ca.crt"
			tasks = append(tasks, runner.EnsureFile("CA of "+reg, onHost, 0o644, "", func(*runner.Host) ([]byte, error) { return os.ReadFile(caFile) }))
		}
		name := "mirrors " + reg
		if len(list) == 0 {
			name = "registry " + reg
		}
		tasks = append(tasks, runner.EnsureFile(name, CertsDir+"/"+reg+"/hosts.toml", 0o644, "", func(*runner.Host) ([]byte, error) { return HostsTOML(reg, list, onHost) }))
	}
	return tasks
}

// factsScript prints key=value lines in one round trip. CAP_SYS_RESOURCE is bit 24 of the
// bounding set.
const factsScript = `[ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] && echo cgroup_v2=yes
cap=$(awk '/^CapBnd:/{print $2}' /proc/self/status); [ $(( 0x$cap >> 24 & 1 )) = 1 ] && echo sys_resource=yes
p=/var/lib/containerd; while [ ! -e "$p" ]; do p=$(dirname "$p"); done
[ "$(stat -fc %T "$p")" = overlayfs ] && echo varlib_overlay=yes
[ -e /dev/kmsg ] && echo kmsg=yes
true`

// Facts learns what the runtime config depends on (the kubelet role reads them too).
func Facts(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, factsScript)
	if err != nil {
		return "", err
	}
	keys := map[string]string{"cgroup_v2": FactCgroupV2, "sys_resource": FactSysResource, "varlib_overlay": FactVarLibOverlay, "kmsg": FactKmsg}
	for k, fact := range keys {
		h.SetFact(fact, "no")
		if strings.Contains(out, k+"=yes") {
			h.SetFact(fact, "yes")
		}
	}
	return "", nil
}

// Role is containerd on the Kubernetes nodes.
type Role struct {
	c   *cluster.Cluster
	src *artifacts.Source
}

// New prepares the role.
func New(e *role.Env) (*Role, error) { return &Role{c: e.Cluster, src: e.Source()}, nil }

// Tasks returns the role's tasks for the Kubernetes nodes.
func (r *Role) Tasks() []runner.Task {
	src := r.src
	tasks := []runner.Task{
		{Name: "facts", Check: Facts},
		packages.Task(src, false, Packages...),
		// 0600: it may hold registry credentials.
		runner.EnsureFile("config.toml", ConfigFile, 0o600, "", func(h *runner.Host) ([]byte, error) {
			s, err := r.settings(h)
			if err != nil {
				return nil, err
			}
			return Render(s)
		}),
	}
	tasks = append(tasks, r.registryFiles()...)
	tasks = append(tasks,
		runner.Task{Name: "containerd running", Check: checkRunning, Apply: startOrRestart},
		runner.Task{Name: "runtime answers", Check: checkAnswers},
	)
	return tasks
}

func changed(h *runner.Host) bool {
	for k := range h.Facts() {
		if k == "changed:"+ConfigFile || strings.HasPrefix(k, "changed:"+CertsDir+"/") {
			return true
		}
	}
	return false
}

func checkRunning(ctx context.Context, h *runner.Host) (string, error) {
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: "systemctl is-active --quiet containerd && systemctl is-enabled --quiet containerd", Sudo: true})
	if err != nil {
		return "", err
	}
	switch {
	case res.ExitCode != 0:
		return "enable and start containerd", nil
	case changed(h):
		return "restart containerd (configuration changed; running containers keep running)", nil
	}
	return "", nil
}

// startOrRestart: containerd's shims keep containers running across a restart of containerd.
func startOrRestart(ctx context.Context, h *runner.Host) error {
	_, err := h.Sudo(ctx, "systemctl enable --quiet containerd && systemctl restart containerd")
	return err
}

// checkAnswers: the CRI plugin loaded with this config (a bad config leaves containerd up
// without CRI, which kubelet would only report much later).
func checkAnswers(ctx context.Context, h *runner.Host) (string, error) {
	if h.DryRun {
		return "", nil
	}
	out, err := h.Sudo(ctx, "for i in $(seq 50); do ctr plugins ls 2>/dev/null | awk '$1 == \"io.containerd.grpc.v1\" && $2 == \"cri\" {print $NF}' | grep -q . && break; sleep 0.2; done; ctr plugins ls | awk '$1 == \"io.containerd.grpc.v1\" && $2 == \"cri\" {print $NF}'")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(out) != "ok" {
		return "", fmt.Errorf("containerd's CRI plugin is %q, not ok: see journalctl -u containerd on %s", strings.TrimSpace(out), h.Name)
	}
	return "", nil
}

// UpgradeTasks bring containerd, runc and the CNI plugins to the newest packages (bundle or
// mirror) on one host and restart containerd (its shims keep the containers running).
func (r *Role) UpgradeTasks() []runner.Task {
	src := r.src
	return []runner.Task{
		{Name: "facts", Check: Facts},
		packages.Task(src, true, Packages...),
		{Name: "containerd restarted", Check: func(ctx context.Context, h *runner.Host) (string, error) {
			if h.Fact("changed:packages") == "" {
				return "", nil
			}
			return "restart containerd on the new version", nil
		}, Apply: startOrRestart},
		{Name: "runtime answers", Check: checkAnswers},
	}
}
