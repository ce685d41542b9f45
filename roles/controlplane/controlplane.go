// Package controlplane builds the control plane with kubeadm: a v1beta4 configuration generated
// from the inventory and common.yaml (controlPlaneEndpoint = the load balancer's name, external
// etcd with the etcd role's client certificate, the cluster CA kinstall keeps), `kubeadm init`
// on the first master and `kubeadm join --control-plane` on the others, one at a time. Join
// tokens and certificate keys are made per run, passed in 0600 files that are removed after
// use, and masked in every log.
package controlplane

import (
	"context"
	"embed"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/pki"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/kubelet"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

// Paths on the masters.
const (
	KubeadmConfig = kube.KinstallDir + "/kubeadm.yaml" // the first master's, without secrets
	PatchesDir    = kube.KinstallDir + "/patches"
	SecretConfig  = kube.KinstallDir + "/kubeadm-run.yaml" // with secrets: exists only while kubeadm runs
	EtcdCA        = kube.EtcdCertDir + "/ca.pem"
	EtcdCert      = kube.EtcdCertDir + "/kube-apiserver-etcd-client.pem"
	EtcdKey       = kube.EtcdCertDir + "/kube-apiserver-etcd-client-key.pem"
)

// Data is what the kubeadm template needs for one host.
type Data struct {
	Name, IP, CRISocket                 string
	APIPort                             int
	Init, ControlPlane, Schedulable     bool
	Secrets                             bool
	Token, CertificateKey, CAHash       string
	Endpoint, Version, ClusterName      string
	DNSDomain, PodSubnet, ServiceSubnet string
	EtcdEndpoints, CertSANs             []string
	EtcdCA, EtcdCert, EtcdKey           string
	CgroupDriver, CgroupWhy, ResolvConf string
	IgnorePreflight                     []string
	Patches                             bool
	PatchesDir                          string
	ImageRepository                     string
}

// Role is the control plane (and, through Join, what workers need to join).
type Role struct {
	c                *cluster.Cluster
	ca               *pki.CA
	etcdCA, etcdCert []byte
	etcdKey          []byte
	Join             *JoinSecrets
}

// New prepares the role from the state directory (the cluster CA, the etcd client pair). The
// run's join secrets are shared through the Env by every phase that joins nodes.
func New(e *role.Env) (*Role, error) {
	c := e.Cluster
	ca, err := kube.LoadCA(e.State)
	if err != nil {
		return nil, err
	}
	eca, ecert, ekey, err := etcd.APIServerClient(e.State)
	if err != nil {
		return nil, err
	}
	join := e.Shared("controlplane/join-secrets", func() any { return NewJoinSecrets(c) }).(*JoinSecrets)
	return &Role{c: c, ca: ca, etcdCA: eca, etcdCert: ecert, etcdKey: ekey, Join: join}, nil
}

// Init is the control-plane/init phase: kubeadm init on the first master.
type Init struct{ *Role }

// NewInit prepares the first master's phase.
func NewInit(e *role.Env) (*Init, error) { r, err := New(e); return &Init{r}, err }

// Tasks are the first master's.
func (i *Init) Tasks() []runner.Task { return i.InitTasks() }

// Join is the control-plane/join phase: the other masters, one at a time.
type Join struct{ *Role }

// NewJoin prepares the other masters' phase.
func NewJoin(e *role.Env) (*Join, error) { r, err := New(e); return &Join{r}, err }

// Tasks are the other masters'.
func (j *Join) Tasks() []runner.Task { return j.JoinTasks() }

// BindsNodeIP: in vip mode HAProxy holds VIP:port on every master; when that is the API's own
// port the API must bind only the node's IP (a per-node kubeadm patch: apiServer.extraArgs is
// cluster-wide and would give every master the first one's address).
func (r *Role) BindsNodeIP() bool {
	cfg := r.c.Config
	return cfg.Mode() == config.LBVIP && cfg.LoadBalancerAPIServer.Port == cfg.APIServerPort
}

// CertSANs are the names and addresses the API certificate must hold.
func (r *Role) CertSANs() []string {
	cfg := r.c.Config
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(cfg.APIServerLoadBalancerDomainName)
	add(cfg.LoadBalancerAPIServer.Address)
	for _, m := range r.c.Masters {
		add(m.Name)
		add(m.IP)
		if a := m.Target.Address; net.ParseIP(a) != nil {
			add(a)
		}
	}
	add("127.0.0.1")
	add("localhost")
	return out
}

// Config renders the kubeadm configuration for h (secrets only when secrets is true).
func (r *Role) Config(h *runner.Host, init, secrets bool, token, certKey string) ([]byte, error) {
	cfg := r.c.Config
	d := Data{
		Name: h.Name, IP: h.IP, CRISocket: kube.CRISocket, APIPort: cfg.APIServerPort,
		Init: init, ControlPlane: h.Master, Schedulable: h.Master && h.Worker,
		Secrets: secrets, Token: token, CertificateKey: certKey, CAHash: kube.CAHash(r.ca),
		Endpoint: kube.Endpoint(r.c), Version: cfg.KubeVersion, ClusterName: cfg.ClusterName,
		DNSDomain: cfg.DNSDomain, PodSubnet: cfg.KubePodsSubnet, ServiceSubnet: cfg.KubeServiceAddresses,
		CertSANs: r.CertSANs(), EtcdCA: EtcdCA, EtcdCert: EtcdCert, EtcdKey: EtcdKey,
		ResolvConf: kubelet.ResolvConf, PatchesDir: PatchesDir, ImageRepository: cfg.ImageRepo(),
		Patches:         h.Master && r.BindsNodeIP(),
		IgnorePreflight: r.ignorePreflight(h),
	}
	for _, e := range r.c.Etcd {
		d.EtcdEndpoints = append(d.EtcdEndpoints, etcd.ClientURL(e))
	}
	d.CgroupDriver, d.CgroupWhy = "cgroupfs", "cgroup v1 host: cgroupfs, as containerd's runc is configured"
	if h.Fact(containerruntime.FactCgroupV2) == "yes" {
		d.CgroupDriver, d.CgroupWhy = "systemd", "cgroup v2 host: systemd, as containerd's runc is configured"
	}
	return templates.Render("kubeadm.yaml.tmpl", d)
}

// ignorePreflight lists the kubeadm preflight checks that are wrong for this layout or host.
func (r *Role) ignorePreflight(h *runner.Host) []string {
	var out []string
	if h.Master && r.BindsNodeIP() {
		// HAProxy holds VIP:port; the API binds only the node's IP:port, which is free.
		out = append(out, fmt.Sprintf("Port-%d", r.c.Config.APIServerPort))
	}
	if h.Fact(containerruntime.FactCgroupV2) == "no" {
		// cgroup v1: the KubeletConfiguration sets failCgroupV1: false; from v1.35 kubeadm's
		// system verification also insists on being skipped explicitly.
		out = append(out, "SystemVerification")
	}
	if h.Fact(factBridgeNF) == "no" {
		// A host without br_netfilter's sysctls (a container on a kernel that has not loaded it):
		// kube-proxy and flannel work on the host's routing instead.
		out = append(out, "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables")
	}
	sort.Strings(out)
	return out
}

const factBridgeNF = "cp_bridge_nf"

// apiServerPatch binds kube-apiserver to the node's own address.
func apiServerPatch(h *runner.Host) ([]byte, error) {
	return []byte(fmt.Sprintf(`[{"op": "add", "path": "/spec/containers/0/command/-", "value": "--bind-address=%s"}]`+"\n", h.IP)), nil
}

// fileTasks put on every master what kubeadm reads: the cluster CA, the etcd client pair, the
// API server patch.
func (r *Role) fileTasks() []runner.Task {
	tasks := []runner.Task{
		{Name: "facts", Check: r.Facts},
		runner.EnsureFile("cluster CA certificate", kube.PKIDir+"/ca.crt", 0o644, "", func(*runner.Host) ([]byte, error) { return r.ca.CertPEM, nil }),
		runner.EnsureFile("cluster CA key", kube.PKIDir+"/ca.key", 0o600, "", func(*runner.Host) ([]byte, error) { return pki.KeyPEM(r.ca) }),
		runner.EnsureFile("etcd CA certificate", EtcdCA, 0o644, "", func(*runner.Host) ([]byte, error) { return r.etcdCA, nil }),
		runner.EnsureFile("etcd client certificate", EtcdCert, 0o644, "", func(*runner.Host) ([]byte, error) { return r.etcdCert, nil }),
		runner.EnsureFile("etcd client key", EtcdKey, 0o600, "", func(*runner.Host) ([]byte, error) { return r.etcdKey, nil }),
	}
	if r.BindsNodeIP() {
		tasks = append(tasks, runner.EnsureFile("kube-apiserver binds the node IP", PatchesDir+"/kube-apiserver+json.json", 0o644, "", apiServerPatch))
	}
	return tasks
}

// Facts learns what the kubeadm configuration depends on.
func (r *Role) Facts(ctx context.Context, h *runner.Host) (string, error) {
	if _, err := containerruntime.Facts(ctx, h); err != nil {
		return "", err
	}
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: "test -e /proc/sys/net/bridge/bridge-nf-call-iptables"})
	if err != nil {
		return "", err
	}
	h.SetFact(factBridgeNF, map[bool]string{true: "yes", false: "no"}[res.ExitCode == 0])
	return "", nil
}

// InitTasks are the first master's.
func (r *Role) InitTasks() []runner.Task {
	return append(r.fileTasks(),
		runner.EnsureFile("kubeadm config", KubeadmConfig, 0o600, "", func(h *runner.Host) ([]byte, error) { return r.Config(h, true, false, "", "") }),
		runner.Task{Name: "kubeadm init", Check: CheckJoined, Apply: r.init},
		runner.Task{Name: "API healthy", Check: r.waitLocalAPI},
		LabelsTask(r.c),
	)
}

// JoinTasks are the other masters'.
func (r *Role) JoinTasks() []runner.Task {
	return append(r.fileTasks(),
		runner.Task{Name: "kubeadm join --control-plane", Check: CheckJoined, Apply: r.joinControlPlane},
		runner.Task{Name: "API healthy", Check: r.waitLocalAPI},
		LabelsTask(r.c),
	)
}

// CheckJoined: a node that has a kubelet kubeconfig is part of the cluster.
func CheckJoined(ctx context.Context, h *runner.Host) (string, error) {
	want := kube.KubeletConf
	if h.Master {
		want += " " + kube.ConfigDir + "/manifests/kube-apiserver.yaml"
	}
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: "for f in " + want + "; do [ -f $f ] || exit 1; done", Sudo: true})
	if err != nil || res.ExitCode == 0 {
		return "", err
	}
	return "join the cluster", nil
}

func (r *Role) init(ctx context.Context, h *runner.Host) error {
	token, key, err := r.Join.ForInit()
	if err != nil {
		return err
	}
	data, err := r.Config(h, true, true, token, key)
	if err != nil {
		return err
	}
	return RunKubeadm(ctx, h, data, []string{token, key},
		"kubeadm init --config "+SecretConfig+" --upload-certs --skip-token-print --skip-certificate-key-print")
}

func (r *Role) joinControlPlane(ctx context.Context, h *runner.Host) error {
	token, err := r.Join.Token(ctx, h)
	if err != nil {
		return err
	}
	key, err := r.Join.CertificateKey(ctx, h, r)
	if err != nil {
		return err
	}
	data, err := r.Config(h, false, true, token, key)
	if err != nil {
		return err
	}
	return RunKubeadm(ctx, h, data, []string{token, key}, "kubeadm join --config "+SecretConfig)
}

// RunKubeadm writes a configuration holding secrets (0600), runs kubeadm with it and removes
// it whatever happened; secrets are masked in logs and errors.
func RunKubeadm(ctx context.Context, h *runner.Host, config []byte, secrets []string, command string) error {
	if _, err := h.Conn.WriteFile(ctx, config, transport.FileSpec{Path: SecretConfig, Mode: 0o600, Sudo: true}); err != nil {
		return err
	}
	_, err := h.Run(ctx, transport.Cmd{Command: command + "; rc=$?; rm -f " + SecretConfig + "; exit $rc", Sudo: true, Secrets: secrets, Timeout: kubeadmTimeout})
	return err
}

// waitLocalAPI waits until this master's own API server answers /readyz.
func (r *Role) waitLocalAPI(ctx context.Context, h *runner.Host) (string, error) {
	if h.DryRun {
		return "", nil
	}
	server := "https://" + net.JoinHostPort(h.IP, fmt.Sprint(r.c.Config.APIServerPort))
	kc := "kubectl --kubeconfig " + kube.AdminConf + " --server " + server
	_, err := h.Run(ctx, transport.Cmd{Sudo: true, Timeout: apiWaitTimeout + 10*time.Second, Command: fmt.Sprintf(
		"for i in $(seq %d); do %s get --raw /readyz >/dev/null 2>&1 && exit 0; sleep 1; done\n%s get --raw '/readyz?verbose' >&2; exit 1",
		int(apiWaitTimeout.Seconds()), kc, kc)})
	if err != nil {
		return "", fmt.Errorf("the API server on %s is not ready: %w", h.Name, err)
	}
	return "", nil
}

const (
	apiWaitTimeout = 120 * time.Second
	kubeadmTimeout = 10 * time.Minute
)

// CAHash is the CA hash joins pin.
func (r *Role) CAHash() string { return kube.CAHash(r.ca) }

// RenewTasks renew kubeadm's certificates on one master (the caller runs them one master at a
// time) and restart its control-plane containers so they load the new ones; the next master
// goes only once this one's API is ready again.
func (r *Role) RenewTasks() []runner.Task {
	return []runner.Task{
		{Name: "kubeadm certs renew all", Apply: func(ctx context.Context, h *runner.Host) error {
			_, err := h.Sudo(ctx, "kubeadm certs renew all >/dev/null")
			return err
		}},
		{Name: "restart the control plane", Apply: func(ctx context.Context, h *runner.Host) error {
			// The kubelet restarts static pods whose container exits.
			_, err := h.Sudo(ctx, "for p in kube-apiserver kube-controller kube-scheduler; do pkill -x $p; done; sleep 2; true")
			return err
		}},
		{Name: "API healthy", Check: r.waitLocalAPI},
	}
}
