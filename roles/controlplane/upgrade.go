package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/internal/stage"
	"github.com/kinstall/kinstall/roles/kubelet"
	"github.com/kinstall/kinstall/roles/role"
)

// Upgrade is a Kubernetes upgrade to one version: images and binaries staged on every node
// first (so no add-on kubeadm updates waits for an image), then the masters one at a time
// (`kubeadm upgrade apply` where the cluster is still on the old version, `kubeadm upgrade node`
// on the others, then the kubelet, drained), then the workers in batches.
type Upgrade struct {
	c       *cluster.Cluster // the cluster with Config.KubeVersion = the target
	src     *artifacts.Source
	Version string
	Drain   time.Duration
}

// NewUpgrade prepares an upgrade of c to version.
func NewUpgrade(c *cluster.Cluster, src *artifacts.Source, version string, drain time.Duration) *Upgrade {
	cp := *c
	cfg := *c.Config
	cfg.KubeVersion = version
	cp.Config = &cfg
	return &Upgrade{c: &cp, src: src, Version: version, Drain: drain}
}

// PrepareTasks stage and import the target's binaries and images on a node.
func (u *Upgrade) PrepareTasks() []runner.Task {
	r, _ := kubelet.New(&role.Env{Cluster: u.c, Artifacts: u.src}) // never fails
	return r.PrepareTasks()
}

// MasterTasks upgrade one master; the next starts only once this one's control-plane pods are
// ready again after its kubelet restarted.
func (u *Upgrade) MasterTasks() []runner.Task {
	return append(append([]runner.Task{
		{Name: "facts", Check: (&Role{c: u.c}).Facts},
		stage.InstallTask("kubernetes", u.Version, []string{"kubeadm"}, kube.BinDir, nil),
		{Name: "control plane " + u.Version, Check: u.checkControlPlane, Apply: u.upgradeControlPlane},
		{Name: "API healthy", Check: (&Role{c: u.c}).waitLocalAPI},
	}, u.kubeletTasks()...), runner.Task{Name: "control-plane pods ready", Check: u.waitControlPlanePods})
}

// waitControlPlanePods waits until the kubelet reports this master's static pods Ready.
func (u *Upgrade) waitControlPlanePods(ctx context.Context, h *runner.Host) (string, error) {
	if h.DryRun {
		return "", nil
	}
	_, err := h.Run(ctx, transport.Cmd{Sudo: true, Timeout: 3 * time.Minute, Command: fmt.Sprintf(`k="kubectl --kubeconfig %s -n kube-system"
for i in $(seq 150); do
  ok=0
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [ "$($k get pod $c-%s -o go-template='{{range .status.conditions}}{{if eq .type "Ready"}}{{.status}}{{end}}{{end}}' 2>/dev/null)" = True ] && ok=$((ok+1))
  done
  [ $ok = 3 ] && exit 0; sleep 1
done
echo "control-plane pods of %s not Ready after 150 s" >&2; exit 1`, kube.AdminConf, h.Name, h.Name)})
	return "", err
}

// WorkerTasks upgrade one worker.
func (u *Upgrade) WorkerTasks() []runner.Task {
	return append([]runner.Task{
		{Name: "facts", Check: (&Role{c: u.c}).Facts},
		stage.InstallTask("kubernetes", u.Version, []string{"kubeadm"}, kube.BinDir, nil),
	}, u.kubeletTasks()...)
}

// kubeletTasks: drain, `kubeadm upgrade node` (workers: the kubelet's configuration), kubelet and
// kubectl, restart, wait until the node is Ready on the new version, uncordon.
func (u *Upgrade) kubeletTasks() []runner.Task {
	return []runner.Task{
		{Name: "drain", Check: u.checkKubelet, Apply: u.drain},
		{Name: "kubeadm upgrade node", When: func(h *runner.Host) bool { return !h.Master }, Check: u.checkKubelet, Apply: func(ctx context.Context, h *runner.Host) error {
			cmd := "kubeadm upgrade node"
			if h.Fact(containerruntime.FactCgroupV2) == "no" {
				cmd += " --ignore-preflight-errors=SystemVerification" // see ignorePreflight
			}
			_, err := h.Run(ctx, transport.Cmd{Command: cmd + " >/dev/null", Sudo: true, Timeout: kubeadmTimeout})
			return err
		}},
		{Name: "kubelet and kubectl " + u.Version, Check: u.checkKubelet, Apply: u.installKubelet},
		{Name: "node Ready on " + u.Version + ", uncordoned", Check: u.checkUncordoned, Apply: u.uncordon},
	}
}

// ControlPlaneVersion reads kube-apiserver's image tag from this master's static pod manifest.
func controlPlaneVersion(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, "sed -n 's#.*image: .*/kube-apiserver:\\(v[^ ]*\\).*#\\1#p' "+kube.ConfigDir+"/manifests/kube-apiserver.yaml")
	return strings.TrimSpace(out), err
}

func (u *Upgrade) checkControlPlane(ctx context.Context, h *runner.Host) (string, error) {
	v, err := controlPlaneVersion(ctx, h)
	if err != nil {
		return "", err
	}
	if v == u.Version {
		return "", nil
	}
	return "control plane " + v + " -> " + u.Version, nil
}

// clusterVersion is kubeadm's ClusterConfiguration.kubernetesVersion: still the old one until
// `kubeadm upgrade apply` ran on some master.
func clusterVersion(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, "kubectl --kubeconfig "+kube.AdminConf+" -n kube-system get configmap kubeadm-config -o go-template='{{index .data \"ClusterConfiguration\"}}' | sed -n 's/^kubernetesVersion: *//p'")
	return strings.TrimSpace(out), err
}

func (u *Upgrade) upgradeControlPlane(ctx context.Context, h *runner.Host) error {
	cv, err := clusterVersion(ctx, h)
	if err != nil {
		return err
	}
	r := &Role{c: u.c}
	patches := ""
	if r.BindsNodeIP() {
		patches = " --patches " + PatchesDir
	}
	if ign := r.ignorePreflight(h); len(ign) > 0 {
		patches += " --ignore-preflight-errors=" + strings.Join(ign, ",")
	}
	cmd := "kubeadm upgrade node" + patches
	if cv != u.Version {
		// The first master upgraded: the cluster's configuration, certificates, add-ons.
		cmd = "kubeadm upgrade apply " + u.Version + " --yes" + patches
	}
	_, err = h.Run(ctx, transport.Cmd{Command: cmd + " >/dev/null", Sudo: true, Timeout: kubeadmTimeout})
	return err
}

func (u *Upgrade) kubeletVersion(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, kube.BinDir+"/kubelet --version | awk '{print $2}'")
	return strings.TrimSpace(out), err
}

func (u *Upgrade) checkKubelet(ctx context.Context, h *runner.Host) (string, error) {
	v, err := u.kubeletVersion(ctx, h)
	if err != nil {
		return "", err
	}
	if v == u.Version {
		return "", nil
	}
	return "kubelet " + v + " -> " + u.Version, nil
}

// firstOther is a master other than h to run kubectl from (h's own API may be restarting).
func (u *Upgrade) firstOther(ctx context.Context, h *runner.Host) (*runner.Host, error) {
	for _, m := range u.c.Masters {
		if m.Name != h.Name {
			return h.Peer(ctx, m)
		}
	}
	return h, nil
}

func (u *Upgrade) drain(ctx context.Context, h *runner.Host) error {
	m, err := u.firstOther(ctx, h)
	if err != nil {
		return err
	}
	_, err = m.Run(ctx, transport.Cmd{Sudo: true, Timeout: u.Drain + time.Minute, Command: fmt.Sprintf(
		"kubectl --kubeconfig %s drain %s --ignore-daemonsets --delete-emptydir-data --force --timeout=%ds >/dev/null",
		kube.AdminConf, transport.Quote(h.Name), int(u.Drain.Seconds()))})
	if err != nil {
		return fmt.Errorf("drain %s: %w (it stays cordoned: fix what blocks eviction and re-run)", h.Name, err)
	}
	return nil
}

func (u *Upgrade) installKubelet(ctx context.Context, h *runner.Host) error {
	dir, err := stage.HostDir(ctx, h, "kubernetes", u.Version)
	if err != nil {
		return err
	}
	_, err = h.Sudo(ctx, "install -m 0755 "+dir+"/kubelet "+kube.BinDir+"/kubelet && install -m 0755 "+dir+"/kubectl "+kube.BinDir+"/kubectl && systemctl daemon-reload && systemctl restart kubelet")
	return err
}

func (u *Upgrade) checkUncordoned(ctx context.Context, h *runner.Host) (string, error) {
	m, err := u.firstOther(ctx, h)
	if err != nil {
		return "", err
	}
	// Retried: an API server that just restarted behind the load balancer may refuse for a moment.
	out, err := m.Sudo(ctx, "for i in 1 2 3 4 5 6 7 8 9 10; do kubectl --kubeconfig "+kube.AdminConf+" get node "+transport.Quote(h.Name)+" -o go-template='{{if .spec.unschedulable}}cordoned{{else}}schedulable{{end}} {{.status.nodeInfo.kubeletVersion}}' && exit 0; sleep 1; done; exit 1")
	if err != nil {
		return "", err
	}
	if f := strings.Fields(out); len(f) == 2 && f[0] == "schedulable" && f[1] == u.Version {
		return "", nil
	}
	return "wait until Ready on " + u.Version + ", uncordon", nil
}

func (u *Upgrade) uncordon(ctx context.Context, h *runner.Host) error {
	m, err := u.firstOther(ctx, h)
	if err != nil {
		return err
	}
	kc := "kubectl --kubeconfig " + kube.AdminConf
	_, err = m.Run(ctx, transport.Cmd{Sudo: true, Timeout: 4 * time.Minute, Command: fmt.Sprintf(`n=%s
for i in $(seq 180); do
  s=$(%s get node $n -o go-template='{{range .status.conditions}}{{if eq .type "Ready"}}{{.status}}{{end}}{{end}} {{.status.nodeInfo.kubeletVersion}}')
  [ "$s" = "True %s" ] && break; sleep 1
done
[ "$s" = "True %s" ] || { echo "$n is not Ready on %s: $s" >&2; exit 1; }
%s uncordon $n >/dev/null`, transport.Quote(h.Name), kc, u.Version, u.Version, u.Version, kc)})
	return err
}
