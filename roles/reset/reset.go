// Package reset removes what kinstall installed on a host: Kubernetes (kubelet, static pods,
// containers, configs, data), flannel and its interfaces, the iptables rules kube-proxy,
// flannel and the CNI plugins made, the load balancer's services and configs, containerd's
// config and data, and kinstall's OS settings. It never runs `kubeadm reset` (which deletes
// /var/lib/etcd even where etcd is external and still in use); etcd is cleaned only on hosts
// the caller says are no longer members (EtcdToo). Every path comes from the role that
// installs it.
package reset

import (
	"context"
	"strings"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/bootstrap"
	"github.com/kinstall/kinstall/roles/cni"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/kubelet"
	"github.com/kinstall/kinstall/roles/loadbalancer"
	"github.com/kinstall/kinstall/roles/role"
)

// Role resets hosts.
type Role struct {
	// EtcdToo says whether a host's etcd member (if any) goes too; nil: never.
	EtcdToo func(h *runner.Host) bool
}

// New prepares the role; set EtcdToo before Tasks.
func New(*role.Env) (*Role, error) { return &Role{}, nil }

// kubernetesScript stops the node agent and everything it ran, then removes files, interfaces
// and rules. Every step tolerates "already gone", so a reset can be re-run.
func kubernetesScript() string {
	return `systemctl disable --now kubelet flanneld >/dev/null 2>&1
if command -v ctr >/dev/null && systemctl is-active --quiet containerd; then
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 1
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers rm "$c" >/dev/null 2>&1; done
fi
# The kubelet bind-mounts its own root (to make it shared) and every pod's volumes below it.
for m in $(awk '$2 ~ "^` + kubelet.RootDir + `(/|$)|^/run/netns/" {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
rm -rf ` + strings.Join(append(append([]string{}, kubelet.Installed...), cni.Installed...), " ") + `
for l in ` + strings.Join(append(append([]string{}, cni.Interfaces...), "kube-ipvs0"), " ") + `; do ip link delete "$l" 2>/dev/null; done
for c in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do ip netns delete "$c"; done
# Rules of kube-proxy, flannel and the CNI plugins; everything else stays.
for v in iptables ip6tables; do
  command -v $v-save >/dev/null || continue
  $v-save | grep -qE 'KUBE-|FLANNEL|CNI-' || continue
  $v-save | grep -vE 'KUBE-|FLANNEL|CNI-' | $v-restore
done
systemctl daemon-reload; true`
}

func loadBalancerScript() string {
	return "systemctl disable --now " + strings.Join(loadbalancer.Services, " ") + " >/dev/null 2>&1\nrm -f " +
		strings.Join(loadbalancer.Installed, " ") + "; true"
}

func runtimeScript() string {
	return `systemctl disable --now containerd >/dev/null 2>&1
for m in $(awk '$2 ~ "^` + containerruntime.RunDir + `/|^` + containerruntime.DataDir + `/" {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
rm -rf ` + strings.Join(containerruntime.Installed, " ") + `; true`
}

func osScript() string {
	return "sed -i '/^" + bootstrap.BlockBegin + "/,/^" + bootstrap.BlockEnd + "/d' " + bootstrap.HostsFile +
		"\nrm -f " + bootstrap.SysctlFile + " " + bootstrap.ModulesFile + "; true"
}

// Tasks reset a host.
func (r *Role) Tasks() []runner.Task {
	etcdToo := r.EtcdToo
	if etcdToo == nil {
		etcdToo = func(*runner.Host) bool { return false }
	}
	script := func(s string) func(ctx context.Context, h *runner.Host) error {
		return func(ctx context.Context, h *runner.Host) error { _, err := h.Sudo(ctx, s); return err }
	}
	var netLinks []string
	for _, l := range cni.Interfaces {
		netLinks = append(netLinks, "/sys/class/net/"+l)
	}
	return []runner.Task{
		{Name: "Kubernetes, flannel, their interfaces and rules", Check: present(append([]string{kube(), kubelet.RootDir, kubeletBinary(), cni.UnitFile}, netLinks...)...), Apply: script(kubernetesScript())},
		{Name: "load balancer", Check: present(loadbalancer.Installed...), Apply: script(loadBalancerScript())},
		{Name: "etcd member", When: etcdToo, Check: present(etcd.DataDir, etcd.UnitFile, etcd.EnvFile), Apply: script(etcd.CleanScript)},
		{Name: "container runtime config and data", Check: present(containerruntime.ConfigFile, containerruntime.Socket), Apply: script(runtimeScript())},
		{Name: "OS settings", Check: func(ctx context.Context, h *runner.Host) (string, error) {
			res, err := h.Conn.Run(ctx, transport.Cmd{Command: "grep -q '^" + bootstrap.BlockBegin + "' " + bootstrap.HostsFile + " || [ -e " + bootstrap.SysctlFile + " ] || [ -e " + bootstrap.ModulesFile + " ]", Sudo: true})
			if err != nil || res.ExitCode != 0 {
				return "", err
			}
			return "remove kinstall's /etc/hosts block, sysctl and module files", nil
		}, Apply: script(osScript())},
	}
}

// kube and kubeletBinary are the first two of the kubelet's installed paths: its config
// directory and binary say a node has Kubernetes.
func kube() string          { return kubelet.Installed[0] }
func kubeletBinary() string { return kubelet.Installed[5] }

// present reports a change when any of paths exists.
func present(paths ...string) func(ctx context.Context, h *runner.Host) (string, error) {
	return func(ctx context.Context, h *runner.Host) (string, error) {
		var tests []string
		for _, p := range paths {
			tests = append(tests, "[ -e "+p+" ]")
		}
		res, err := h.Conn.Run(ctx, transport.Cmd{Command: "{ " + strings.Join(tests, " || ") + "; }", Sudo: true})
		if err != nil || res.ExitCode != 0 {
			return "", err
		}
		return "remove what kinstall installed", nil
	}
}
