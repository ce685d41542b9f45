// Package etcd installs and operates a TLS etcd cluster on the [etcd] hosts without ever costing
// it quorum: members of a new cluster start together; a member added later joins alone (as a
// learner, then promoted); restarts, upgrades and removals go one member at a time and only
// while every other member is healthy.
package etcd

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kinstall/kinstall/roles/internal/tmpl"
	"github.com/kinstall/kinstall/roles/role"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/pki"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/state"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/internal/stage"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = tmpl.Must(templateFS)

// Paths on the hosts.
const (
	BinDir        = "/usr/local/bin"
	CertDir       = "/etc/ssl/etcd/ssl"
	EnvFile       = "/etc/etcd.env"
	BootstrapFile = "/etc/etcd/bootstrap.env"
	UnitFile      = "/etc/systemd/system/etcd.service"
	DataDir       = "/var/lib/etcd"
	StageDir      = stage.Root // artifacts are pushed here, then installed
)

// Binaries shipped with etcd.
var Binaries = []string{"etcd", "etcdctl", "etcdutl"}

// Tuning. The election timeout is 10 heartbeats (etcd's tuning guide); a leader loss costs
// about one election timeout of write unavailability.
const (
	HeartbeatMS = 250
	ElectionMS  = 2500
	QuotaBytes  = 2 << 30
)

// Options are what the role needs besides the cluster.
type Options struct {
	State     state.Dir         // the taskbox's state directory (PKI under pki/etcd)
	Artifacts *artifacts.Source // where binaries come from
	Version   string            // etcd version to install; default: common.yaml's etcd_version
	// Upgrade allows replacing a running member's binary (one member at a time); install refuses.
	Upgrade bool
}

// Role is the etcd role for one run.
type Role struct {
	c       *cluster.Cluster
	opts    Options
	version string
	ca      *pki.CA
	client  *Client

	restartMu sync.Mutex // one member restarting or joining at a time, across hosts

	probeOnce sync.Once
	members   []*etcdserverpb.Member // the running cluster's member list, nil if none answered

	dataMu    sync.Mutex
	hasData   map[string]bool // host -> has a member data dir (learned by the "version" task)
	anyActive bool            // some [etcd] host runs etcd
}

// New prepares the role: the CA and every member's certificates (issued on the taskbox, reused
// on re-runs) and a client for health checks.
func New(e *role.Env) (*Role, error) {
	return open(e.Cluster, Options{State: e.State, Artifacts: e.Source()})
}

func open(c *cluster.Cluster, o Options) (*Role, error) {
	if o.Version == "" {
		o.Version = c.Config.EtcdVersion
	}
	if o.Artifacts == nil {
		o.Artifacts = &artifacts.Source{}
	}
	ca, err := pki.LoadOrCreateCA(o.State.EtcdPKI(), "kinstall-etcd-ca")
	if err != nil {
		return nil, err
	}
	r := &Role{c: c, opts: o, version: o.Version, ca: ca, hasData: map[string]bool{}}
	for _, h := range c.Etcd {
		if _, _, _, err := ca.Issue("member-"+h.Name, memberRequest(h)); err != nil {
			return nil, err
		}
	}
	// Client certificates: kinstall's own (admin, also for etcdctl on the members) and the one
	// the API servers use.
	adminCert, adminKey, _, err := ca.Issue("admin", pki.Request{CommonName: "kinstall-admin", Client: true})
	if err != nil {
		return nil, err
	}
	if _, _, _, err := ca.Issue("kube-apiserver-etcd-client", apiServerClientRequest); err != nil {
		return nil, err
	}
	r.client, err = NewClient(c.Etcd, ca.CertPEM, adminCert, adminKey)
	if err != nil {
		return nil, err
	}
	return r, nil
}

var apiServerClientRequest = pki.Request{CommonName: "kube-apiserver-etcd-client", Organization: []string{"system:masters"}, Client: true}

// APIServerClient returns the etcd CA and the client pair kube-apiserver uses (PEM), from the
// state directory (issued when absent).
func APIServerClient(st state.Dir) (caPEM, certPEM, keyPEM []byte, err error) {
	ca, err := pki.LoadOrCreateCA(st.EtcdPKI(), "kinstall-etcd-ca")
	if err != nil {
		return nil, nil, nil, err
	}
	cert, key, _, err := ca.Issue("kube-apiserver-etcd-client", apiServerClientRequest)
	return ca.CertPEM, cert, key, err
}

// Client returns the role's taskbox client.
func (r *Role) Client() *Client { return r.client }

func memberRequest(h *cluster.Host) pki.Request {
	req := pki.Request{CommonName: h.Name, Server: true, Client: true,
		DNSNames: []string{h.Name, "localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}}
	for _, a := range []string{h.IP, h.Target.Address} {
		if a == "" {
			continue
		}
		if ip := net.ParseIP(a); ip != nil {
			if !containsIP(req.IPs, ip) {
				req.IPs = append(req.IPs, ip)
			}
		} else if a != h.Name {
			req.DNSNames = append(req.DNSNames, a)
		}
	}
	return req
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

// envData is the data of etcd.env.tmpl.
type envData struct {
	Name, DataDir, ClientURL, PeerURL, CertDir, BootstrapFile string
	HeartbeatMS, ElectionMS, QuotaBytes                       int
}

// Env renders /etc/etcd.env for a member.
func Env(h *cluster.Host) ([]byte, error) {
	return templates.Render("etcd.env.tmpl", envData{Name: h.Name, DataDir: DataDir, ClientURL: ClientURL(h), PeerURL: PeerURL(h),
		CertDir: CertDir, BootstrapFile: BootstrapFile, HeartbeatMS: HeartbeatMS, ElectionMS: ElectionMS, QuotaBytes: QuotaBytes})
}

// Unit renders the systemd unit.
func Unit() ([]byte, error) {
	return templates.Render("etcd.service.tmpl", map[string]string{"EnvFile": EnvFile, "BootstrapFile": BootstrapFile, "Binary": BinDir + "/etcd"})
}

// Bootstrap renders /etc/etcd/bootstrap.env.
func Bootstrap(initialCluster, state, token string) ([]byte, error) {
	return templates.Render("bootstrap.env.tmpl", map[string]string{"InitialCluster": initialCluster, "State": state, "Token": token})
}

// Token is the initial-cluster-token: distinct per cluster, so members of two clusters can
// never merge by mistake.
func (r *Role) Token() string { return "kinstall-" + r.c.Config.ClusterName }

func stageDir(component, version, arch string) string { return stage.Dir(component, version, arch) }

// Arch returns the host's Go arch, from preflight's facts or by asking.
func Arch(ctx context.Context, h *runner.Host) (string, error) { return stage.Arch(ctx, h) }

// Staging is the artifacts phase: etcd's binaries pushed to the members before the etcd phase.
// (Kubernetes binaries and images are staged by the kubelet phase, flannel by the cni phase: a
// phase run on its own, --only etcd, needs nothing of theirs.)
type Staging struct{ task runner.Task }

// NewStaging prepares the artifacts phase.
func NewStaging(e *role.Env) (*Staging, error) {
	return &Staging{task: StageTask(e.Source(), e.Cluster.Config.EtcdVersion)}, nil
}

// Tasks returns the staging task; it selects the etcd hosts itself.
func (s *Staging) Tasks() []runner.Task { return []runner.Task{s.task} }

// StageTask pushes the etcd binaries of version to the host's staging directory (hash-checked:
// unchanged files are not sent again). The artifacts phase and upgrades run it.
func StageTask(src *artifacts.Source, version string) runner.Task {
	t := stage.Task(src, "etcd", version, Binaries, 0o755, func(h *runner.Host) bool { return h.Etcd })
	t.Name = "etcd " + version + " binaries staged"
	return t
}

func fileSpec(path string, mode os.FileMode) transport.FileSpec {
	return transport.FileSpec{Path: path, Mode: mode, Sudo: true}
}

func quote(s string) string { return transport.Quote(s) }

// installed reports whether /usr/local/bin holds exactly the staged binaries of version.
func (r *Role) binariesCheck(ctx context.Context, h *runner.Host, version string) (string, error) {
	arch, err := Arch(ctx, h)
	if err != nil {
		return "", err
	}
	src := stageDir("etcd", version, arch)
	var cmds []string
	for _, b := range Binaries {
		cmds = append(cmds, "cmp -s "+quote(src+"/"+b)+" "+BinDir+"/"+b)
	}
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: strings.Join(cmds, " && "), Sudo: true})
	if err != nil {
		return "", err
	}
	if res.ExitCode == 0 {
		return "", nil
	}
	return "install etcd " + version + " into " + BinDir, nil
}

func (r *Role) installBinaries(ctx context.Context, h *runner.Host, version string) error {
	arch, err := Arch(ctx, h)
	if err != nil {
		return err
	}
	src := stageDir("etcd", version, arch)
	var cmds []string
	for _, b := range Binaries {
		// install writes a new file and renames it: a running etcd keeps its old binary.
		cmds = append(cmds, "install -m 0755 "+quote(src+"/"+b)+" "+BinDir+"/"+b)
	}
	_, err = h.Sudo(ctx, strings.Join(cmds, " && "))
	return err
}

// Facts the install tasks share.
const (
	factActive  = "etcd_active"   // "yes" when etcd.service was running before this run touched it
	factHasData = "etcd_has_data" // "yes" when the member has a data directory
	factJoin    = "etcd_join"     // "yes" when the member must be added to a running cluster
)

// Tasks returns the install tasks, run in lockstep over the [etcd] hosts: files first, then the
// membership decision (new cluster, existing member, or a member to add), then the starts (all
// new members at once; restarts and joins one at a time), then a wait for health.
func (r *Role) Tasks() []runner.Task {
	certs := func(name string, mode os.FileMode, content func(h *runner.Host) ([]byte, error)) runner.Task {
		title := strings.TrimSuffix(strings.ReplaceAll(strings.ReplaceAll(name, "-NAME", ""), "-key", " key"), ".pem")
		if !strings.HasSuffix(title, " key") {
			title += " certificate"
		}
		return runner.EnsureFileAt(title, func(h *runner.Host) string {
			return CertDir + "/" + strings.ReplaceAll(name, "NAME", h.Name)
		}, mode, content)
	}
	pair := func(name string) (cert, key []byte, err error) {
		c, k, _, err := r.ca.Issue(name, r.requestFor(name))
		return c, k, err
	}
	return []runner.Task{
		{Name: "version", Check: r.checkVersion},
		{Name: "binaries", Check: func(ctx context.Context, h *runner.Host) (string, error) { return r.binariesCheck(ctx, h, r.version) },
			Apply: func(ctx context.Context, h *runner.Host) error {
				if err := r.installBinaries(ctx, h, r.version); err != nil {
					return err
				}
				h.SetFact("changed:binary", "true")
				return nil
			}},
		certs("ca.pem", 0o644, func(*runner.Host) ([]byte, error) { return r.ca.CertPEM, nil }),
		certs("member-NAME.pem", 0o644, func(h *runner.Host) ([]byte, error) { c, _, err := pair("member-" + h.Name); return c, err }),
		certs("member-NAME-key.pem", 0o600, func(h *runner.Host) ([]byte, error) { _, k, err := pair("member-" + h.Name); return k, err }),
		certs("admin.pem", 0o644, func(*runner.Host) ([]byte, error) { c, _, err := pair("admin"); return c, err }),
		certs("admin-key.pem", 0o600, func(*runner.Host) ([]byte, error) { _, k, err := pair("admin"); return k, err }),
		runner.EnsureFileAt("etcd.env", func(*runner.Host) string { return EnvFile }, 0o644, func(h *runner.Host) ([]byte, error) { return Env(h.Host) }),
		runner.EnsureFileAt("systemd unit", func(*runner.Host) string { return UnitFile }, 0o644, func(*runner.Host) ([]byte, error) { return Unit() }),
		{Name: "membership", Check: r.checkMembership},
		{Name: "bootstrap file", Check: r.checkBootstrapFile, Apply: r.writeBootstrapFile},
		{Name: "running", Check: r.checkRunning, Apply: r.startOrRestart},
		{Name: "healthy", Check: r.checkHealthy, Apply: r.removeBootstrapFile},
	}
}

func (r *Role) requestFor(name string) pki.Request {
	switch {
	case name == "admin":
		return pki.Request{CommonName: "kinstall-admin", Client: true}
	case strings.HasPrefix(name, "member-"):
		return memberRequest(r.c.Host(strings.TrimPrefix(name, "member-")))
	}
	panic("etcd: no certificate request for " + name)
}

// hostState reads what the rest of the tasks need from the host in one round trip.
func hostState(ctx context.Context, h *runner.Host) (hostFacts, error) {
	out, err := h.Sudo(ctx, `systemctl is-active --quiet etcd && echo active=yes; [ -d `+DataDir+`/member ] && echo data=yes; [ -x `+BinDir+`/etcd ] && `+BinDir+`/etcd --version 2>/dev/null | sed -n 's/^etcd Version: /version=/p'; [ -f `+CertDir+`/ca.pem ] && echo ca=$(sha256sum < `+CertDir+`/ca.pem | cut -d' ' -f1); true`)
	if err != nil {
		return hostFacts{}, err
	}
	var f hostFacts
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "active":
			f.active = true
		case "data":
			f.hasData = true
		case "version":
			f.version = "v" + strings.TrimPrefix(v, "v")
		case "ca":
			f.caSHA256 = v
		}
	}
	return f, nil
}

// hostFacts is what the etcd tasks learn about a host in one round trip.
type hostFacts struct {
	active, hasData bool
	version         string // of /usr/local/bin/etcd, "" when absent
	caSHA256        string // of the CA certificate on the host, "" when absent
}

// checkVersion refuses to swap the binary of an existing member during install: that is an
// upgrade, which must go one member at a time with a snapshot first.
func (r *Role) checkVersion(ctx context.Context, h *runner.Host) (string, error) {
	f, err := hostState(ctx, h)
	if err != nil {
		return "", err
	}
	active, hasData, version := f.active, f.hasData, f.version
	// A member with data that trusts another CA was installed from another state directory:
	// new certificates would cut it off from its peers, so stop before touching anything.
	sum := sha256.Sum256(r.ca.CertPEM)
	if hasData && f.caSHA256 != "" && f.caSHA256 != hex.EncodeToString(sum[:]) {
		return "", fmt.Errorf("etcd on %s has data and trusts a different CA than %s: it was installed with another state directory. Run kinstall with that --state-dir (or copy its pki/etcd here); replacing the certificates would split the cluster",
			h.Name, r.opts.State.EtcdPKI())
	}
	if active {
		h.SetFact(factActive, "yes")
	}
	if hasData {
		h.SetFact(factHasData, "yes")
	}
	r.dataMu.Lock()
	r.hasData[h.Name] = hasData
	r.anyActive = r.anyActive || active
	r.dataMu.Unlock()
	if hasData && version != "" && version != r.version && !r.opts.Upgrade {
		return "", fmt.Errorf("etcd %s on %s has data and common.yaml asks for %s: change versions with 'kinstall upgrade --role etcd --version %s' (one member at a time, snapshot first), or set etcd_version: %s",
			version, h.Name, r.version, r.version, version)
	}
	return "", nil
}

// probe reads the running cluster's member list once per run. Where no [etcd] host runs etcd
// or has data there is no cluster to ask (and no point waiting for timeouts).
func (r *Role) probe(ctx context.Context) []*etcdserverpb.Member {
	r.probeOnce.Do(func() {
		r.dataMu.Lock()
		// Only when every [etcd] host was looked at (not with --limit on some of them).
		fresh := !r.anyActive && len(r.hasData) == len(r.c.Etcd)
		r.dataMu.Unlock()
		if fresh && !r.anyHasData() {
			return
		}
		members, err := r.client.MemberList(ctx)
		if err == nil {
			r.members = members
		}
	})
	return r.members
}

func memberFor(members []*etcdserverpb.Member, peerURL string) *etcdserverpb.Member {
	for _, m := range members {
		for _, u := range m.PeerURLs {
			if u == peerURL {
				return m
			}
		}
	}
	return nil
}

// checkMembership decides, for a host, how its member comes to life:
//   - it has data: it is (or was) a member; starting it is enough;
//   - no data, and no cluster answers, and no [etcd] host has data: a new cluster, all members
//     start together;
//   - no data, a cluster answers and lists it: it starts and joins the existing cluster;
//   - no data, a cluster answers and does not list it: it is added (learner, then voter) alone.
func (r *Role) checkMembership(ctx context.Context, h *runner.Host) (string, error) {
	hasData := h.Fact(factHasData) == "yes"
	members := r.probe(ctx)
	m := memberFor(members, PeerURL(h.Host))
	switch {
	case hasData && members != nil && m == nil:
		return "", fmt.Errorf("%s has etcd data in %s but the running cluster does not list it as a member (removed earlier?): clean the host (kinstall etcd remove %s --dead) or move the data away before it can rejoin",
			h.Name, DataDir, h.Name)
	case hasData:
		return "", nil
	case members == nil && r.anyHasData():
		return "", fmt.Errorf("%s has no etcd data, other members have data but no member answers: etcd is down or without quorum; start it first (kinstall etcd status), then re-run", h.Name)
	case members == nil:
		return "new cluster member", nil
	case m == nil:
		h.SetFact(factJoin, "yes")
		return "add to the running cluster (learner, then voter)", nil
	}
	return "start as a listed member of the running cluster", nil
}

func (r *Role) anyHasData() bool {
	r.dataMu.Lock()
	defer r.dataMu.Unlock()
	for _, v := range r.hasData {
		if v {
			return true
		}
	}
	return false
}

// initialCluster lists name=peerURL for a new cluster: every [etcd] host.
func (r *Role) initialCluster() string {
	var parts []string
	for _, h := range r.c.Etcd {
		parts = append(parts, h.Name+"="+PeerURL(h))
	}
	return strings.Join(parts, ",")
}

// existingCluster lists name=peerURL for the current members (named by inventory host where the
// peer URL matches) plus the joining host.
func (r *Role) existingCluster(members []*etcdserverpb.Member, self *cluster.Host) string {
	var parts []string
	seen := map[string]bool{}
	for _, m := range members {
		for _, u := range m.PeerURLs {
			name := m.Name
			for _, h := range r.c.Etcd {
				if PeerURL(h) == u {
					name = h.Name
				}
			}
			if name == "" || seen[u] {
				continue
			}
			seen[u] = true
			parts = append(parts, name+"="+u)
		}
	}
	if !seen[PeerURL(self)] {
		parts = append(parts, self.Name+"="+PeerURL(self))
	}
	return strings.Join(parts, ",")
}

func (r *Role) wantedBootstrap(ctx context.Context, h *runner.Host) ([]byte, error) {
	if h.Fact(factHasData) == "yes" || h.Fact(factJoin) == "yes" {
		return nil, nil // none; a joining member's file is written when it is added
	}
	if members := r.probe(ctx); members != nil {
		return Bootstrap(r.existingCluster(members, h.Host), "existing", r.Token())
	}
	return Bootstrap(r.initialCluster(), "new", r.Token())
}

func (r *Role) checkBootstrapFile(ctx context.Context, h *runner.Host) (string, error) {
	want, err := r.wantedBootstrap(ctx, h)
	if err != nil || want == nil {
		return "", err
	}
	return runner.EnsureFile("", BootstrapFile, 0o644, "", func(*runner.Host) ([]byte, error) { return want, nil }).Check(ctx, h)
}

func (r *Role) writeBootstrapFile(ctx context.Context, h *runner.Host) error {
	want, err := r.wantedBootstrap(ctx, h)
	if err != nil || want == nil {
		return err
	}
	_, err = h.Conn.WriteFile(ctx, want, transport.FileSpec{Path: BootstrapFile, Mode: 0o644, Sudo: true})
	return err
}

// needsRestart: a running member whose binary, certificates, env or unit changed in this run.
func needsRestart(h *runner.Host) bool {
	for k := range h.Facts() {
		path := strings.TrimPrefix(k, "changed:")
		if path != k && (path == "binary" || path == EnvFile || path == UnitFile || strings.HasPrefix(path, CertDir+"/")) {
			return true
		}
	}
	return false
}

func (r *Role) checkRunning(ctx context.Context, h *runner.Host) (string, error) {
	switch {
	case h.Fact(factJoin) == "yes":
		return "add member and start it", nil
	case h.Fact(factActive) != "yes":
		return "start etcd", nil
	case needsRestart(h):
		return "restart etcd (configuration changed), one member at a time", nil
	}
	return "", nil
}

func (r *Role) startOrRestart(ctx context.Context, h *runner.Host) error {
	switch {
	case h.Fact(factJoin) == "yes":
		return r.join(ctx, h)
	case h.Fact(factActive) != "yes":
		// Members of a new cluster start together (lockstep): --no-block, because a member is
		// ready only once a quorum of them runs. The "healthy" task waits.
		_, err := h.Sudo(ctx, "systemctl daemon-reload && systemctl enable --quiet etcd && systemctl start --no-block etcd")
		return err
	}
	return r.rollingRestart(ctx, h)
}

// rollingRestart restarts one member at a time, and only when every other member is healthy.
func (r *Role) rollingRestart(ctx context.Context, h *runner.Host) error {
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	if err := GuardStop(r.client.Status(ctx), h.Name); err != nil {
		return err
	}
	if _, err := h.Sudo(ctx, "systemctl daemon-reload && systemctl restart --no-block etcd"); err != nil {
		return err
	}
	return r.WaitHealthy(ctx, h.Host, 2*time.Minute)
}

// join adds a member to the running cluster alone: as a learner (it gets the data without
// counting towards quorum), then promoted to voter once it has caught up.
func (r *Role) join(ctx context.Context, h *runner.Host) error {
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	st := r.client.Status(ctx)
	for _, m := range st.Members {
		if m.InCluster && !m.Healthy {
			return fmt.Errorf("refusing to add %s: member %s is unhealthy (%s); a new member raises the quorum, so every member must be healthy first", h.Name, m.Name, m.Err)
		}
	}
	cli, err := r.client.Cluster()
	if err != nil {
		return err
	}
	defer cli.Close()
	// etcd itself refuses (ErrUnhealthy) until its leader has been connected to a quorum for
	// a few seconds, e.g. right after the cluster (re)started: wait for that, briefly.
	var resp *clientv3.MemberAddResponse
	for deadline := time.Now().Add(30 * time.Second); ; {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err = cli.MemberAddAsLearner(actx, []string{PeerURL(h.Host)})
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			return fmt.Errorf("etcd member add %s: %w", h.Name, err)
		}
		time.Sleep(time.Second)
	}
	id := resp.Member.ID
	boot, err := Bootstrap(r.existingCluster(resp.Members, h.Host), "existing", r.Token())
	if err != nil {
		return err
	}
	if _, err := h.Conn.WriteFile(ctx, boot, transport.FileSpec{Path: BootstrapFile, Mode: 0o644, Sudo: true}); err != nil {
		return err
	}
	if _, err := h.Sudo(ctx, "systemctl daemon-reload && systemctl enable --quiet etcd && systemctl start --no-block etcd"); err != nil {
		return err
	}
	// Promotion fails until the learner has caught up with the leader; retry.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.MemberPromote(pctx, id)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd learner %s did not catch up to be promoted: %w (it stays a learner, which does not count for quorum; see journalctl -u etcd on %s)", h.Name, err, h.Name)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return r.WaitHealthy(ctx, h.Host, 2*time.Minute)
}

// checkHealthy waits until the member is a healthy voter; its Apply then removes the bootstrap
// file, which has done its job.
func (r *Role) checkHealthy(ctx context.Context, h *runner.Host) (string, error) {
	if h.DryRun {
		return "", nil
	}
	if err := r.WaitHealthy(ctx, h.Host, 2*time.Minute); err != nil {
		return "", err
	}
	res, err := h.Conn.Run(ctx, transport.Cmd{Command: "test -e " + BootstrapFile, Sudo: true})
	if err != nil || res.ExitCode != 0 {
		return "", err
	}
	return "remove " + BootstrapFile + " (member has joined)", nil
}

func (r *Role) removeBootstrapFile(ctx context.Context, h *runner.Host) error {
	_, err := h.Sudo(ctx, "rm -f "+BootstrapFile)
	return err
}

// WaitHealthy polls until the member on h is a healthy voter, or the timeout passes.
func (r *Role) WaitHealthy(ctx context.Context, h *cluster.Host, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st := r.client.Status(ctx)
		if m, ok := st.Member(h.Name); ok {
			if m.Healthy && m.InCluster && !m.Learner && !m.NotStarted {
				return nil
			}
			last = m.Err
			if m.Learner {
				last = "still a learner"
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd member %s not healthy after %s: %s (see journalctl -u etcd on %s)", h.Name, timeout, last, h.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
