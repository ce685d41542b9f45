// Package reset removes what kinstall installed on a host: Kubernetes (kubelet, static pods,
// containers, configs, data), flannel and its interfaces, the iptables rules kube-proxy,
// flannel and the CNI plugins made, the load balancer's services and configs, containerd's
// config and data, and kinstall's OS settings. It never runs `kubeadm reset` (which deletes
// /var/lib/etcd even where etcd is external and still in use); etcd is cleaned only on hosts
// the caller says are no longer members (EtcdToo).
package reset

import (
	"context"
	"strings"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/etcd"
)

// kubernetesScript stops the node agent and everything it ran, then removes files, interfaces
// and rules. Every step tolerates "already gone", so a reset can be re-run.
const kubernetesScript = `systemctl disable --now kubelet flanneld >/dev/null 2>&1
if command -v ctr >/dev/null && systemctl is-active --quiet containerd; then
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 1
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers rm "$c" >/dev/null 2>&1; done
fi
# The kubelet bind-mounts its own root (to make it shared) and every pod's volumes below it.
for m in $(awk '$2 ~ "^/var/lib/kubelet(/|$)|^/run/netns/" {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
rm -rf /etc/kubernetes /var/lib/kubelet /etc/cni/net.d/10-kinstall.conflist /var/lib/cni /run/flannel /etc/kube-flannel \
  /etc/systemd/system/kubelet.service /etc/systemd/system/kubelet.service.d /etc/systemd/system/flanneld.service \
  /usr/local/bin/kubeadm /usr/local/bin/kubelet /usr/local/bin/kubectl /usr/local/bin/flanneld \
  /opt/kinstall/artifacts/kubernetes-* /opt/kinstall/artifacts/kube-images-* /opt/kinstall/artifacts/flannel-* /var/lib/kinstall/images
for l in cni0 flannel.1 kube-ipvs0; do ip link delete "$l" 2>/dev/null; done
for c in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do ip netns delete "$c"; done
# Rules of kube-proxy, flannel and the CNI plugins; everything else stays.
for v in iptables ip6tables; do
  command -v $v-save >/dev/null || continue
  $v-save | grep -qE 'KUBE-|FLANNEL|CNI-' || continue
  $v-save | grep -vE 'KUBE-|FLANNEL|CNI-' | $v-restore
done
systemctl daemon-reload; true`

const loadBalancerScript = `systemctl disable --now keepalived haproxy >/dev/null 2>&1
rm -f /etc/keepalived/keepalived.conf /etc/haproxy/haproxy.cfg /etc/sysctl.d/99-kinstall-lb.conf; true`

const runtimeScript = `systemctl disable --now containerd >/dev/null 2>&1
for m in $(awk '$2 ~ "^/run/containerd/|^/var/lib/containerd/" {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
rm -rf /etc/containerd/config.toml /etc/containerd/certs.d /var/lib/containerd/* /run/containerd; true`

const osScript = `sed -i '/^# BEGIN kinstall managed hosts/,/^# END kinstall managed hosts/d' /etc/hosts
rm -f /etc/sysctl.d/99-kinstall.conf /etc/modules-load.d/kinstall.conf; true`

// Tasks reset a host; etcdToo says whether its etcd member (if any) goes too.
func Tasks(etcdToo func(h *runner.Host) bool) []runner.Task {
	present := func(paths ...string) func(ctx context.Context, h *runner.Host) (string, error) {
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
	script := func(s string) func(ctx context.Context, h *runner.Host) error {
		return func(ctx context.Context, h *runner.Host) error { _, err := h.Sudo(ctx, s); return err }
	}
	return []runner.Task{
		{Name: "Kubernetes, flannel, their interfaces and rules", Check: present("/etc/kubernetes", "/var/lib/kubelet", "/usr/local/bin/kubelet", "/etc/systemd/system/flanneld.service", "/sys/class/net/cni0", "/sys/class/net/flannel.1"), Apply: script(kubernetesScript)},
		{Name: "load balancer", Check: present("/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf", "/etc/sysctl.d/99-kinstall-lb.conf"), Apply: script(loadBalancerScript)},
		{Name: "etcd member", When: func(h *runner.Host) bool { return etcdToo(h) }, Check: present(etcd.DataDir, etcd.UnitFile, etcd.EnvFile), Apply: script(etcd.CleanScript)},
		{Name: "container runtime config and data", Check: present("/etc/containerd/config.toml", "/run/containerd/containerd.sock"), Apply: script(runtimeScript)},
		{Name: "OS settings", Check: func(ctx context.Context, h *runner.Host) (string, error) {
			res, err := h.Conn.Run(ctx, transport.Cmd{Command: "grep -q '^# BEGIN kinstall managed hosts' /etc/hosts || [ -e /etc/sysctl.d/99-kinstall.conf ] || [ -e /etc/modules-load.d/kinstall.conf ]", Sudo: true})
			if err != nil || res.ExitCode != 0 {
				return "", err
			}
			return "remove kinstall's /etc/hosts block, sysctl and module files", nil
		}, Apply: script(osScript)},
	}
}
