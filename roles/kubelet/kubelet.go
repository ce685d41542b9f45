// Package kubelet prepares every Kubernetes node for kubeadm: kubeadm, kubelet and kubectl
// installed, the kubelet's systemd unit, a resolv.conf for pods without loopback nameservers,
// and the images imported into containerd so kubeadm never pulls.
package kubelet

import (
	"archive/tar"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/internal/version"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/internal/stage"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

var binDir = map[string]string{"BinDir": kube.BinDir}

// Paths on the nodes.
const (
	UnitFile   = "/etc/systemd/system/kubelet.service"
	DropIn     = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
	ResolvConf = kube.KinstallDir + "/resolv.conf"
	RootDir    = "/var/lib/kubelet"
)

// Installed is what the kubelet phase (and kubeadm through it) puts on a node, for reset.
var Installed = []string{kube.ConfigDir, RootDir, UnitFile, path.Dir(DropIn),
	kube.BinDir + "/kubeadm", kube.BinDir + "/kubelet", kube.BinDir + "/kubectl",
	stage.Root + "/kubernetes-*", stage.Root + "/kube-images-*", kube.ImagesStatusDir}

// Binaries are the Kubernetes node binaries kinstall installs.
var Binaries = []string{"kubeadm", "kubelet", "kubectl"}

// Image archives: every node gets node.tar (kube-proxy, pause, CoreDNS, the probe), masters
// control-plane.tar too.
const (
	NodeImages         = "node.tar"
	ControlPlaneImages = "control-plane.tar"
)

// FactNameservers holds the host's non-loopback nameservers (space separated).
const FactNameservers = "kubelet_nameservers"

// Role prepares nodes.
type Role struct {
	c   *cluster.Cluster
	src *artifacts.Source

	mu   sync.Mutex
	refs map[string][]string // image archive (taskbox path) -> its image references
}

// New returns the role.
func New(e *role.Env) (*Role, error) {
	return &Role{c: e.Cluster, src: e.Source(), refs: map[string][]string{}}, nil
}

// stageTasks push the binaries, and the image archives when they come from a bundle.
func stageTasks(c *cluster.Cluster, src *artifacts.Source) []runner.Task {
	v := c.Config.KubeVersion
	node := func(h *runner.Host) bool { return h.Master || h.Worker }
	if src.BundleDir == "" {
		return []runner.Task{stage.Task(src, "kubernetes", v, Binaries, 0o755, node)}
	}
	cp := stage.Task(src, "kube-images", v, []string{ControlPlaneImages}, 0o644, func(h *runner.Host) bool { return h.Master })
	cp.Name = "control-plane images " + v + " staged"
	ni := stage.Task(src, "kube-images", v, []string{NodeImages}, 0o644, node)
	ni.Name = "node images " + v + " staged"
	return []runner.Task{stage.Task(src, "kubernetes", v, Binaries, 0o755, node), ni, cp}
}

// Tasks returns the node preparation tasks.
func (r *Role) Tasks() []runner.Task {
	v := r.c.Config.KubeVersion
	tasks := append([]runner.Task{{Name: "version", Check: r.checkVersion}}, stageTasks(r.c, r.src)...)
	tasks = append(tasks,
		runner.Task{Name: "facts", Check: r.facts},
		stage.InstallTask("kubernetes", v, Binaries, kube.BinDir, nil),
		runner.Shell("/dev/kmsg", "[ -e /dev/kmsg ]", "mknod -m 600 /dev/kmsg c 1 11"),
		runner.EnsureFile("kubelet unit", UnitFile, 0o644, "", func(*runner.Host) ([]byte, error) { return templates.Render("kubelet.service.tmpl", binDir) }),
		runner.EnsureFile("kubelet kubeadm drop-in", DropIn, 0o644, "", func(*runner.Host) ([]byte, error) { return templates.Render("10-kubeadm.conf.tmpl", binDir) }),
		runner.Task{Name: "kubelet enabled", Check: checkEnabled, Apply: enable},
		runner.EnsureFile("resolv.conf for pods", ResolvConf, 0o644, "", r.resolvConf),
	)
	return append(tasks, r.imageTasks()...)
}

// imageTasks import the bundle's image archives, or (no bundle) pull the control-plane images
// on the masters from kube_image_repo before kubeadm needs them; the other images containerd
// pulls when the kubelet asks (the taskbox checked they all exist first).
func (r *Role) imageTasks() []runner.Task {
	master := func(h *runner.Host) bool { return h.Master }
	if r.src.BundleDir != "" {
		return []runner.Task{
			r.importTask("node images", NodeImages, nil),
			r.importTask("control-plane images", ControlPlaneImages, master),
		}
	}
	return []runner.Task{r.pullTask(master)}
}

// pullTask pulls the version's images through containerd's CRI (its registry mirrors,
// credentials and CAs apply), with kubeadm, where any is missing.
func (r *Role) pullTask(when func(h *runner.Host) bool) runner.Task {
	cfg := r.c.Config
	repo, v := cfg.ImageRepo(), cfg.KubeVersion
	missing := func(ctx context.Context, h *runner.Host) ([]string, error) {
		cp, node, err := artifacts.KubeImages(repo, v)
		if err != nil {
			return nil, err
		}
		out, err := h.Sudo(ctx, "ctr -n k8s.io images ls -q 2>/dev/null; true")
		if err != nil {
			return nil, err
		}
		have := map[string]bool{}
		for _, l := range strings.Fields(out) {
			have[l] = true
		}
		var miss []string
		for _, ref := range append(cp, node...) {
			if !have[ref] {
				miss = append(miss, ref)
			}
		}
		return miss, nil
	}
	return runner.Task{
		Name: "images " + v + " pulled from " + repo,
		When: when,
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			miss, err := missing(ctx, h)
			if err != nil || len(miss) == 0 {
				return "", err
			}
			return "pull " + strings.Join(miss, ", "), nil
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			// A config with external etcd: kubeadm then pulls no etcd image (kinstall runs etcd
			// itself); --config cannot be mixed with --cri-socket, so the socket goes in it.
			_, err := h.Sudo(ctx, fmt.Sprintf(pullScript, kube.CRISocket, v, repo, kube.BinDir))
			if err != nil {
				return fmt.Errorf("pulling the Kubernetes %s images from %s (kube_image_repo) failed: %w", v, repo, err)
			}
			return nil
		},
	}
}

const pullScript = `f=$(mktemp) && trap 'rm -f "$f"' EXIT && cat >"$f" <<'CFG'
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  criSocket: %s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
imageRepository: %s
etcd:
  external:
    endpoints: [https://127.0.0.1:2379]
CFG
%s/kubeadm config images pull --config "$f"`

// checkVersion refuses to change the Kubernetes version of a node that is in the cluster:
// that is `kinstall upgrade`, which drains and goes one node at a time.
func (r *Role) checkVersion(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, "[ -f "+kube.KubeletConf+" ] && "+kube.BinDir+"/kubelet --version 2>/dev/null | awk '{print $2}'; true")
	if err != nil {
		return "", err
	}
	have, want := strings.TrimSpace(out), r.c.Config.KubeVersion
	switch {
	case have == "" || have == want:
		return "", nil
	case r.newer(have, want):
		return "", fmt.Errorf("%s runs Kubernetes %s, %s says kube_version %s: set kube_version: %s (downgrades are refused)", h.Name, have, r.c.ConfigFile, want, have)
	}
	return "", fmt.Errorf("%s runs Kubernetes %s, %s says %s: that is an upgrade: kinstall upgrade --version %s", h.Name, have, r.c.ConfigFile, want, want)
}

func (r *Role) newer(a, b string) bool {
	va, err1 := version.Parse(a)
	vb, err2 := version.Parse(b)
	return err1 == nil && err2 == nil && version.Compare(va, vb) > 0
}

// PrepareTasks stage the version's binaries and images and import the images (an upgrade's
// first step, on every node at once).
func (r *Role) PrepareTasks() []runner.Task {
	return append(stageTasks(r.c, r.src), r.imageTasks()...)
}

func (r *Role) facts(ctx context.Context, h *runner.Host) (string, error) {
	if _, err := containerruntime.Facts(ctx, h); err != nil {
		return "", err
	}
	return "", LearnNameservers(ctx, h)
}

// LearnNameservers records the host's non-loopback nameservers (FactNameservers).
func LearnNameservers(ctx context.Context, h *runner.Host) error {
	out, err := h.Run(ctx, transport.Cmd{Command: "awk '$1 == \"nameserver\" {print $2}' /etc/resolv.conf 2>/dev/null; true"})
	if err != nil {
		return err
	}
	h.SetFact(FactNameservers, strings.Join(NonLoopback(strings.Fields(out)), " "))
	return nil
}

// NonLoopback drops loopback nameservers: a pod that inherits 127.0.0.x reaches itself, and
// CoreDNS would forward to itself (its loop plugin stops it).
func NonLoopback(servers []string) []string {
	var out []string
	for _, s := range servers {
		if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() {
			out = append(out, s)
		}
	}
	return out
}

// Nameservers are the servers pods and CoreDNS forward to on h: upstream_dns_servers, else the
// host's own non-loopback ones.
func (r *Role) Nameservers(h *runner.Host) []string {
	if len(r.c.Config.UpstreamDNSServers) > 0 {
		return r.c.Config.UpstreamDNSServers
	}
	return strings.Fields(h.Fact(FactNameservers))
}

func (r *Role) resolvConf(h *runner.Host) ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Managed by kinstall: the kubelet gives this to pods with dnsPolicy Default (CoreDNS among them).\n")
	ns := r.Nameservers(h)
	if len(ns) == 0 {
		b.WriteString("# The host has only loopback nameservers and upstream_dns_servers is empty: no upstream.\n")
	}
	for _, s := range ns {
		b.WriteString("nameserver " + s + "\n")
	}
	return []byte(b.String()), nil
}

func checkEnabled(ctx context.Context, h *runner.Host) (string, error) {
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: "systemctl is-enabled --quiet kubelet", Sudo: true})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 || h.Fact("changed:"+UnitFile) != "" || h.Fact("changed:"+DropIn) != "" {
		return "systemctl daemon-reload; enable kubelet", nil
	}
	return "", nil
}

func enable(ctx context.Context, h *runner.Host) error {
	// A running kubelet (a re-run after a unit change) picks the new unit up on restart.
	_, err := h.Sudo(ctx, "systemctl daemon-reload && systemctl enable --quiet kubelet && { ! systemctl is-active --quiet kubelet || systemctl restart kubelet; }")
	return err
}

// importTask imports an image archive into containerd's k8s.io namespace when any of its
// images is missing there or the archive is not the one imported last (a stamp holds its
// sha256: a rebuilt bundle re-imports images whose tags did not change, e.g. pause).
func (r *Role) importTask(name, file string, when func(h *runner.Host) bool) runner.Task {
	type state struct {
		missing      []string
		path, stamp  string
		sha, stamped string
	}
	look := func(ctx context.Context, h *runner.Host) (*state, error) {
		arch, err := stage.Arch(ctx, h)
		if err != nil {
			return nil, err
		}
		set, err := r.src.Resolve(ctx, "kube-images", r.c.Config.KubeVersion, arch)
		if err != nil {
			return nil, err
		}
		refs, err := r.imageRefs(set.Files[file])
		if err != nil {
			return nil, err
		}
		st := &state{path: stage.Dir("kube-images", r.c.Config.KubeVersion, arch) + "/" + file, sha: set.SHA256[file],
			stamp: kube.ImagesStatusDir + "/" + r.c.Config.KubeVersion + "-" + file + ".sha256"}
		out, err := h.Sudo(ctx, "cat "+transport.Quote(st.stamp)+" 2>/dev/null; echo; ctr -n k8s.io images ls -q 2>/dev/null; true")
		if err != nil {
			return nil, err
		}
		lines := strings.SplitN(out, "\n", 2)
		st.stamped = strings.TrimSpace(lines[0])
		have := map[string]bool{}
		if len(lines) > 1 {
			for _, l := range strings.Fields(lines[1]) {
				have[l] = true
			}
		}
		for _, ref := range refs {
			if !have[ref] {
				st.missing = append(st.missing, ref)
			}
		}
		return st, nil
	}
	return runner.Task{
		Name: name + " imported",
		When: when,
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			st, err := look(ctx, h)
			switch {
			case err != nil:
				return "", err
			case len(st.missing) > 0:
				return "import " + strings.Join(st.missing, ", "), nil
			case st.stamped != st.sha:
				return "import " + file + " again (not the archive imported last)", nil
			}
			return "", nil
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			st, err := look(ctx, h)
			if err != nil {
				return err
			}
			_, err = h.Sudo(ctx, "ctr -n k8s.io images import "+transport.Quote(st.path)+" >/dev/null && mkdir -p "+kube.ImagesStatusDir+" && echo "+st.sha+" > "+transport.Quote(st.stamp))
			return err
		},
	}
}

// imageRefs reads the image references (RepoTags) of a docker archive on the taskbox, once.
func (r *Role) imageRefs(path string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if refs, ok := r.refs[path]; ok {
		return refs, nil
	}
	refs, err := ArchiveRefs(path)
	if err != nil {
		return nil, err
	}
	r.refs[path] = refs
	return refs, nil
}

// ArchiveRefs lists the RepoTags in a docker archive's manifest.json, sorted.
func ArchiveRefs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no manifest.json: not a docker archive", path)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: manifest.json: %w", path, err)
		}
		var refs []string
		for _, e := range m {
			for _, t := range e.RepoTags {
				// containerd names images fully: docker.io/library/x for short names.
				if !strings.Contains(strings.SplitN(t, "/", 2)[0], ".") {
					if !strings.Contains(t, "/") {
						t = "library/" + t
					}
					t = "docker.io/" + t
				}
				refs = append(refs, t)
			}
		}
		sort.Strings(refs)
		return refs, nil
	}
}
