// Package cni gives the cluster its pod network: flannel (vxlan) as a host service on every
// node, taking each node's subnet from its Node object, with the standard bridge, host-local
// and portmap CNI plugins; and CoreDNS's configuration, forwarding to nameservers that are not
// loopback (a pod that forwards to 127.0.0.x reaches itself).
package cni

import (
	"context"
	"embed"
	"fmt"
	"net"
	"path"
	"strings"
	"time"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/pki"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/internal/stage"
	"github.com/kinstall/kinstall/roles/kubelet"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

// Paths on the nodes.
const (
	UnitFile   = "/etc/systemd/system/flanneld.service"
	Kubeconfig = kube.ConfigDir + "/flannel.conf"
	NetConf    = "/etc/kube-flannel/net-conf.json"
	SubnetEnv  = "/run/flannel/subnet.env"
	Conflist   = "/etc/cni/net.d/10-kinstall.conflist"
	StateDir   = "/var/lib/cni" // the CNI plugins' IP allocations
)

// Installed is what the cni phase puts on a node, for reset (flannel.conf is under
// /etc/kubernetes, which goes with the kubelet's files).
var Installed = []string{Conflist, StateDir, path.Dir(SubnetEnv), path.Dir(NetConf), UnitFile,
	kube.BinDir + "/flanneld", stage.Root + "/flannel-*"}

// Interfaces are the links flannel and the bridge plugin create.
var Interfaces = []string{"cni0", "flannel.1"}

// Facts from flannel's subnet.env.
const (
	factSubnet = "cni_subnet"
	factMTU    = "cni_mtu"
)

// Role is the pod network.
type Role struct {
	c   *cluster.Cluster
	ca  *pki.CA
	src *artifacts.Source
}

// New returns the role; the flannel client certificate is issued from the cluster CA.
func New(e *role.Env) (*Role, error) {
	ca, err := kube.LoadCA(e.State)
	if err != nil {
		return nil, err
	}
	return &Role{c: e.Cluster, ca: ca, src: e.Source()}, nil
}

func (r *Role) first(h *runner.Host) bool {
	return len(r.c.Masters) > 0 && h.Name == r.c.Masters[0].Name
}

// Tasks returns the network's tasks on every node.
func (r *Role) Tasks() []runner.Task {
	cfg := r.c.Config
	return []runner.Task{
		{Name: "flannel permissions", When: r.first, Check: r.checkRBAC, Apply: r.applyRBAC},
		stage.Task(r.src, "flannel", cfg.FlannelVersion, []string{"flanneld"}, 0o755, nil),
		stage.InstallTask("flannel", cfg.FlannelVersion, []string{"flanneld"}, kube.BinDir, nil),
		runner.EnsureFile("flannel kubeconfig", Kubeconfig, 0o600, "", func(*runner.Host) ([]byte, error) {
			return kube.ClientKubeconfig(r.ca, cfg.ClusterName, "https://"+kube.Endpoint(r.c), "flannel", "kinstall:flannel", nil)
		}),
		runner.EnsureFile("flannel net-conf.json", NetConf, 0o644, "", func(*runner.Host) ([]byte, error) {
			return templates.Render("net-conf.json.tmpl", map[string]string{"PodSubnet": cfg.KubePodsSubnet})
		}),
		runner.EnsureFile("flanneld unit", UnitFile, 0o644, "", func(h *runner.Host) ([]byte, error) {
			return templates.Render("flanneld.service.tmpl", map[string]string{"Name": h.Name, "IP": h.IP, "BinDir": kube.BinDir, "Kubeconfig": Kubeconfig, "NetConf": NetConf})
		}),
		{Name: "flanneld running", Check: checkRunning, Apply: startOrRestart},
		{Name: "node subnet", Check: waitSubnet},
		runner.EnsureFile("CNI config", Conflist, 0o644, "", func(h *runner.Host) ([]byte, error) {
			return templates.Render("10-kinstall.conflist.tmpl", map[string]string{"Subnet": h.Fact(factSubnet), "MTU": h.Fact(factMTU)})
		}),
		{Name: "CoreDNS configuration", When: r.first, Check: r.checkCorefile, Apply: r.applyCorefile},
	}
}

func (r *Role) kubectl(ctx context.Context, h *runner.Host, args string, stdin []byte) (transport.Result, error) {
	return h.Conn.Run(ctx, transport.Cmd{Command: "kubectl --kubeconfig " + kube.AdminConf + " " + args, Sudo: true, Stdin: stdin})
}

func (r *Role) checkRBAC(ctx context.Context, h *runner.Host) (string, error) {
	res, err := r.kubectl(ctx, h, "get clusterrolebinding kinstall:flannel -o name", nil)
	if err != nil || res.ExitCode == 0 {
		return "", err
	}
	return "create ClusterRole and ClusterRoleBinding kinstall:flannel", nil
}

func (r *Role) applyRBAC(ctx context.Context, h *runner.Host) error {
	m, err := templates.Render("rbac.yaml.tmpl", nil)
	if err != nil {
		return err
	}
	_, err = h.Run(ctx, transport.Cmd{Command: "kubectl --kubeconfig " + kube.AdminConf + " apply -f - >/dev/null", Sudo: true, Stdin: m})
	return err
}

func checkRunning(ctx context.Context, h *runner.Host) (string, error) {
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: "systemctl is-active --quiet flanneld && systemctl is-enabled --quiet flanneld", Sudo: true})
	if err != nil {
		return "", err
	}
	switch {
	case res.ExitCode != 0:
		return "enable and start flanneld", nil
	case h.Fact("changed:"+UnitFile) != "" || h.Fact("changed:"+Kubeconfig) != "" || h.Fact("changed:"+NetConf) != "" || h.Fact("changed:binary:flannel") != "":
		return "restart flanneld (its configuration changed)", nil
	}
	return "", nil
}

func startOrRestart(ctx context.Context, h *runner.Host) error {
	_, err := h.Sudo(ctx, "systemctl daemon-reload && systemctl enable --quiet flanneld && systemctl restart flanneld")
	return err
}

// waitSubnet waits for flannel's subnet.env (the node's pod subnet and the vxlan MTU).
func waitSubnet(ctx context.Context, h *runner.Host) (string, error) {
	if h.DryRun {
		out, _ := h.Conn.Run(ctx, transport.Cmd{Command: "cat " + SubnetEnv + " 2>/dev/null", Sudo: true})
		parseSubnet(h, string(out.Stdout))
		return "", nil
	}
	out, err := h.Run(ctx, transport.Cmd{Sudo: true, Timeout: 100 * time.Second, Command: `for i in $(seq 90); do [ -s ` + SubnetEnv + ` ] && grep -q FLANNEL_SUBNET ` + SubnetEnv + ` && { cat ` + SubnetEnv + `; exit 0; }; sleep 1; done
echo "flanneld wrote no ` + SubnetEnv + ` in 90 s:" >&2; journalctl -u flanneld -n 8 --no-pager >&2; exit 1`})
	if err != nil {
		return "", err
	}
	if !parseSubnet(h, out) {
		return "", fmt.Errorf("%s: no FLANNEL_SUBNET/FLANNEL_MTU in %s", h.Name, SubnetEnv)
	}
	return "", nil
}

// parseSubnet records FLANNEL_SUBNET (e.g. 10.233.65.1/24, turned into its network) and MTU.
func parseSubnet(h *runner.Host, env string) bool {
	var subnet, mtu string
	for _, l := range strings.Split(env, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "FLANNEL_SUBNET":
			subnet = v
		case "FLANNEL_MTU":
			mtu = v
		}
	}
	_, network, err := net.ParseCIDR(subnet)
	if err != nil || mtu == "" {
		return false
	}
	// host-local wants the network (10.233.65.0/24), flannel writes cni0's address (.1/24).
	h.SetFact(factSubnet, network.String())
	h.SetFact(factMTU, mtu)
	return true
}

// Corefile renders CoreDNS's configuration for the cluster, forwarding to nameservers.
func (r *Role) Corefile(nameservers []string) ([]byte, error) {
	return templates.Render("Corefile.tmpl", map[string]string{"DNSDomain": r.c.Config.DNSDomain, "Forward": strings.Join(nameservers, " ")})
}

func (r *Role) wantCorefile(ctx context.Context, h *runner.Host) ([]byte, error) {
	if h.Fact(kubelet.FactNameservers) == "" && len(r.c.Config.UpstreamDNSServers) == 0 {
		if err := kubelet.LearnNameservers(ctx, h); err != nil {
			return nil, err
		}
	}
	ns := r.c.Config.UpstreamDNSServers
	if len(ns) == 0 {
		ns = strings.Fields(h.Fact(kubelet.FactNameservers))
	}
	return r.Corefile(ns)
}

func (r *Role) checkCorefile(ctx context.Context, h *runner.Host) (string, error) {
	want, err := r.wantCorefile(ctx, h)
	if err != nil {
		return "", err
	}
	res, err := r.kubectl(ctx, h, `-n kube-system get configmap coredns -o go-template='{{index .data "Corefile"}}'`, nil)
	if err != nil {
		return "", err
	}
	if res.ExitCode == 0 && strings.TrimSpace(string(res.Stdout)) == strings.TrimSpace(string(want)) {
		return "", nil
	}
	return "write CoreDNS's Corefile and restart CoreDNS", nil
}

func (r *Role) applyCorefile(ctx context.Context, h *runner.Host) error {
	want, err := r.wantCorefile(ctx, h)
	if err != nil {
		return err
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: coredns\n  namespace: kube-system\ndata:\n  Corefile: |\n"
	for _, l := range strings.Split(strings.TrimRight(string(want), "\n"), "\n") {
		cm += "    " + l + "\n"
	}
	if _, err := h.Run(ctx, transport.Cmd{Command: "kubectl --kubeconfig " + kube.AdminConf + " apply -f - >/dev/null", Sudo: true, Stdin: []byte(cm)}); err != nil {
		return err
	}
	_, err = h.Sudo(ctx, "kubectl --kubeconfig "+kube.AdminConf+" -n kube-system rollout restart deployment coredns >/dev/null")
	return err
}
