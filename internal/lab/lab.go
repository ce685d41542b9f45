// Package lab runs kinstall's test hosts: Docker containers that boot systemd and sshd, each
// with its own IP on a private bridge of this machine, which tests can stop, start, kill,
// partition and heal. Nothing is pulled: the image is built locally with debootstrap.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed image/build.sh
var buildScript []byte

// Image is the lab host image built by EnsureImage.
const Image = "kinstall-lab:bookworm"

// Options describe a lab.
type Options struct {
	Name   string // default "kinstall"; several labs can coexist with other names and subnets
	N      int    // hosts
	Subnet string // /24, default 172.30.0.0/24; host i gets .(10+i)
	Dir    string // default /var/tmp/kinstall-lab/<Name>
}

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "kinstall"
	}
	if !regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,14}$`).MatchString(o.Name) {
		return o, fmt.Errorf("lab name %q: use up to 15 lowercase letters, digits and dashes", o.Name)
	}
	if o.Subnet == "" {
		o.Subnet = "172.30.0.0/24"
	}
	ip, ipnet, err := net.ParseCIDR(o.Subnet)
	if err != nil || ip.To4() == nil {
		return o, fmt.Errorf("lab subnet %q: want an IPv4 /24 such as 172.30.0.0/24", o.Subnet)
	}
	if ones, _ := ipnet.Mask.Size(); ones != 24 {
		return o, fmt.Errorf("lab subnet %q: want a /24", o.Subnet)
	}
	if o.Dir == "" {
		o.Dir = filepath.Join("/var/tmp/kinstall-lab", o.Name)
	}
	if o.N < 0 || o.N > 200 {
		return o, fmt.Errorf("lab size %d: 1 to 200 hosts", o.N)
	}
	return o, nil
}

// Host is one lab host.
type Host struct {
	Name      string
	IP        string
	Container string
}

// Lab is a running lab.
type Lab struct {
	Name           string
	Dir            string
	KeyFile        string // private key for root and deploy
	KnownHostsFile string
	InventoryFile  string
	ConfigFile     string
	OpsPassword    string // password of the ops user (login and sudo)
	Gateway        string // the taskbox's address on the lab bridge
	VIP            string // a free address for a virtual IP
	Hosts          []Host
	prefix         string // "172.30.0."
}

func (o Options) prefix() string {
	ip, _, _ := net.ParseCIDR(o.Subnet)
	p := ip.To4()
	return fmt.Sprintf("%d.%d.%d.", p[0], p[1], p[2])
}

func (l *Lab) network() string           { return l.Name + "-lab-net" }
func (l *Lab) container(h string) string { return l.Name + "-lab-" + h }
func (l *Lab) chain() string             { return "KINSTALL-LAB-" + strings.ToUpper(l.Name) }
func labelLab(name string) string        { return "kinstall-lab=" + name }

func newLab(o Options) *Lab {
	p := o.prefix()
	return &Lab{Name: o.Name, Dir: o.Dir, prefix: p,
		KeyFile:        filepath.Join(o.Dir, "id_ed25519"),
		KnownHostsFile: filepath.Join(o.Dir, "known_hosts"),
		InventoryFile:  filepath.Join(o.Dir, "hosts.ini"),
		ConfigFile:     filepath.Join(o.Dir, "common.yaml"),
		Gateway:        p + "1", VIP: p + "250"}
}

// IP returns a host's address ("node3" -> .13).
func (l *Lab) IP(host string) (string, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(host, "node"))
	if err != nil || !strings.HasPrefix(host, "node") || n < 1 {
		return "", fmt.Errorf("no lab host %q (hosts are node1, node2, ...)", host)
	}
	return l.prefix + strconv.Itoa(10+n), nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// EnsureDocker makes sure a Docker engine answers: it uses a running one, or installs
// Debian's docker.io and starts dockerd in the background (it outlives this process).
func EnsureDocker(ctx context.Context, log io.Writer) error {
	if exec.CommandContext(ctx, "docker", "info").Run() == nil {
		return nil
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		fmt.Fprintln(log, "installing docker.io from Debian's packages")
		for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "docker.io"}} {
			cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get %s: %v: %s", args[0], err, out)
			}
		}
	}
	fmt.Fprintln(log, "starting dockerd (log: /var/log/kinstall-dockerd.log)")
	logf, err := os.OpenFile("/var/log/kinstall-dockerd.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("setsid", "dockerd")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if exec.CommandContext(ctx, "docker", "info").Run() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return errors.New("dockerd did not start in 60s: see /var/log/kinstall-dockerd.log")
}

// EnsureImage builds the lab image unless it is already built from this recipe.
func EnsureImage(ctx context.Context, log io.Writer) (string, error) {
	sum := sha256.Sum256(buildScript)
	f, err := os.CreateTemp("", "kinstall-lab-build-*.sh")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(buildScript); err != nil {
		return "", err
	}
	f.Close()
	cmd := exec.CommandContext(ctx, "bash", f.Name())
	cmd.Env = append(os.Environ(), "RECIPE_HASH="+hex.EncodeToString(sum[:8]), "IMAGE="+Image)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build lab image: %w", err)
	}
	return Image, nil
}

// runFlags: what systemd, sshd and later kubelet/containerd need inside a container here.
// (--privileged fails on these VMs: CAP_SYS_RESOURCE cannot be granted.)
var runFlags = []string{
	"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
	"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
	"--security-opt", "systempaths=unconfined", // writable /proc/sys for sysctls
	"--device-cgroup-rule", "a *:* rwm", // mknod /dev/kmsg etc.
	"--cgroupns=private", // own cgroup tree, remounted rw by lab-init
	"--tmpfs", "/run", "--tmpfs", "/run/lock",
	"-v", "/var/lib/containerd", // overlayfs cannot sit on Docker's overlayfs
	"--stop-timeout", "10",
}

// Up boots the lab (reusing hosts that already run), provisions users and writes the
// inventory, known_hosts and common.yaml into Dir.
func Up(ctx context.Context, o Options, log io.Writer) (*Lab, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.N < 1 {
		return nil, errors.New("lab up needs at least 1 host")
	}
	if err := EnsureDocker(ctx, log); err != nil {
		return nil, err
	}
	if _, err := EnsureImage(ctx, log); err != nil {
		return nil, err
	}
	if err := raiseKernelLimits(log); err != nil {
		return nil, err
	}
	l := newLab(o)
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := l.ensureKey(ctx); err != nil {
		return nil, err
	}
	if err := l.ensurePassword(); err != nil {
		return nil, err
	}
	if _, err := docker(ctx, "network", "inspect", l.network()); err != nil {
		if _, err := docker(ctx, "network", "create", "--driver", "bridge", "--subnet", o.Subnet,
			"--gateway", l.Gateway, "--label", labelLab(l.Name), l.network()); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= o.N; i++ {
		name := fmt.Sprintf("node%d", i)
		ip, _ := l.IP(name)
		l.Hosts = append(l.Hosts, Host{Name: name, IP: ip, Container: l.container(name)})
	}
	if err := l.parallel(ctx, func(h Host) error {
		state, err := docker(ctx, "inspect", "-f", "{{.State.Status}}", h.Container)
		switch {
		case err != nil:
			args := append([]string{"run", "-d", "--name", h.Container, "--hostname", h.Name,
				"--network", l.network(), "--ip", h.IP, "--label", labelLab(l.Name),
				"--label", "kinstall-lab.host=" + h.Name}, runFlags...)
			if _, err := docker(ctx, append(args, Image)...); err != nil {
				return err
			}
		case state != "running":
			if _, err := docker(ctx, "start", h.Container); err != nil {
				return err
			}
		}
		if err := l.provision(ctx, h); err != nil {
			return fmt.Errorf("%s: provision: %w", h.Name, err)
		}
		return waitSSH(ctx, h.IP, 60*time.Second)
	}); err != nil {
		return nil, err
	}
	if err := l.writeKnownHosts(ctx); err != nil {
		return nil, err
	}
	if err := l.writeInventory(); err != nil {
		return nil, err
	}
	return l, l.writeConfig()
}

// Open attaches to a running lab.
func Open(ctx context.Context, o Options) (*Lab, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	l := newLab(o)
	out, err := docker(ctx, "ps", "-a", "--filter", "label="+labelLab(l.Name), "--format", `{{.Label "kinstall-lab.host"}}`)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Fields(out) {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(names[i], "node"))
		b, _ := strconv.Atoi(strings.TrimPrefix(names[j], "node"))
		return a < b
	})
	for _, n := range names {
		ip, err := l.IP(n)
		if err != nil {
			continue
		}
		l.Hosts = append(l.Hosts, Host{Name: n, IP: ip, Container: l.container(n)})
	}
	if pw, err := os.ReadFile(filepath.Join(l.Dir, "ops.password")); err == nil {
		l.OpsPassword = strings.TrimSpace(string(pw))
	}
	return l, nil
}

func (l *Lab) parallel(ctx context.Context, fn func(Host) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.Hosts))
	for i, h := range l.Hosts {
		wg.Add(1)
		go func(i int, h Host) {
			defer wg.Done()
			errs[i] = fn(h)
		}(i, h)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *Lab) ensureKey(ctx context.Context) error {
	if _, err := os.Stat(l.KeyFile); err == nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kinstall-lab-"+l.Name, "-f", l.KeyFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	return nil
}

func (l *Lab) ensurePassword() error {
	path := filepath.Join(l.Dir, "ops.password")
	if b, err := os.ReadFile(path); err == nil {
		l.OpsPassword = strings.TrimSpace(string(b))
		return nil
	}
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	l.OpsPassword = "lab-" + hex.EncodeToString(b)
	return os.WriteFile(path, []byte(l.OpsPassword+"\n"), 0o600)
}

// provision creates the users: root and deploy (passwordless sudo) log in with the lab key;
// ops logs in with a password, and sudo asks for it (the become-password case).
func (l *Lab) provision(ctx context.Context, h Host) error {
	pub, err := os.ReadFile(l.KeyFile + ".pub")
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`set -e
for _ in $(seq 200); do [ -S /run/systemd/private ] && break; sleep 0.05; done
timeout 60 systemctl is-system-running --wait >/dev/null 2>&1 || true
install -d -m 700 /root/.ssh
echo '%[1]s' > /root/.ssh/authorized_keys
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
cp /root/.ssh/authorized_keys /home/deploy/.ssh/ && chown deploy: /home/deploy/.ssh/authorized_keys
echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy
id ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops
chpasswd
echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops
chmod 440 /etc/sudoers.d/*
`, strings.TrimSpace(string(pub)))
	// The password reaches chpasswd on stdin after the script, never on a command line.
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", h.Container, "bash", "-c",
		`f=$(mktemp); head -c `+strconv.Itoa(len(script))+` > "$f"; bash "$f"; rc=$?; rm -f "$f"; exit $rc`)
	cmd.Stdin = strings.NewReader(script + "ops:" + l.OpsPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// waitSSH waits until sshd greets on port 22.
func waitSSH(ctx context.Context, ip string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: sshd did not answer in %s", ip, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeKnownHosts records each host's real ed25519 host key (generated at its first boot).
func (l *Lab) writeKnownHosts(ctx context.Context) error {
	var b strings.Builder
	for _, h := range l.Hosts {
		key, err := docker(ctx, "exec", h.Container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
		if err != nil {
			return err
		}
		f := strings.Fields(key)
		if len(f) < 2 {
			return fmt.Errorf("%s: bad host key %q", h.Name, key)
		}
		fmt.Fprintf(&b, "%s %s %s\n", h.IP, f[0], f[1])
	}
	return os.WriteFile(l.KnownHostsFile, []byte(b.String()), 0o600)
}

// Inventory renders the KubeSphere-style hosts.ini of the lab: the taskbox (local), node1 as
// root with a key, node2 as deploy (key, passwordless sudo), node3 as ops (password, sudo
// password), the rest as root; masters and etcd on the first three.
func (l *Lab) Inventory() string {
	var b strings.Builder
	b.WriteString("; kinstall lab inventory (generated by 'kinstall lab up')\n[all]\n")
	fmt.Fprintf(&b, "taskbox ansible_connection=local ip=%s\n", l.Gateway)
	for i, h := range l.Hosts {
		conn := "ansible_user=root"
		switch i {
		case 1:
			conn = "ansible_user=deploy ansible_become=true"
		case 2:
			// KubeSphere's documented non-root sample, as written: no ansible_become (implied).
			conn = fmt.Sprintf("ansible_user=ops ansible_ssh_pass=%s ansible_become_pass=%s", l.OpsPassword, l.OpsPassword)
		}
		fmt.Fprintf(&b, "%s ansible_host=%s ip=%s %s\n", h.Name, h.IP, h.IP, conn)
	}
	m := len(l.Hosts)
	if m > 3 {
		m = 3
	}
	group := func(name string, hosts []Host) {
		fmt.Fprintf(&b, "\n[%s]\n", name)
		for _, h := range hosts {
			b.WriteString(h.Name + "\n")
		}
	}
	group("kube-master", l.Hosts[:m])
	group("etcd", l.Hosts[:m])
	if len(l.Hosts) > 3 {
		group("kube-node", l.Hosts[3:])
	} else {
		group("kube-node", l.Hosts[:m])
	}
	b.WriteString("\n[k8s-cluster:children]\nkube-master\nkube-node\n")
	fmt.Fprintf(&b, "\n[all:vars]\nansible_ssh_private_key_file=%s\n", l.KeyFile)
	return b.String()
}

func (l *Lab) writeInventory() error {
	return os.WriteFile(l.InventoryFile, []byte(l.Inventory()), 0o600)
}

func (l *Lab) writeConfig() error {
	cfg := fmt.Sprintf(`# kinstall lab cluster settings (generated by 'kinstall lab up')
loadbalancer_apiserver:
  address: %s   # a free address on the lab bridge: the VIP
  port: 6443
loadbalancer_apiserver_mode: vip
apiserver_loadbalancer_domain_name: lb.kubesphere.local
`, l.VIP)
	return os.WriteFile(l.ConfigFile, []byte(cfg), 0o600)
}

// kernelLimits are the machine-wide limits lab hosts share: every kubelet, kube-proxy and
// containerd of every lab host takes inotify instances from the one kernel (the default 128
// per user runs out with one cluster: kube-proxy fails with "too many open files").
var kernelLimits = map[string]int{
	"fs/inotify/max_user_instances": 8192,
	"fs/inotify/max_user_watches":   524288,
}

// raiseKernelLimits raises (never lowers) the machine's limits.
func raiseKernelLimits(log io.Writer) error {
	for key, want := range kernelLimits {
		p := "/proc/sys/" + key
		b, err := os.ReadFile(p)
		if err != nil {
			continue // not Linux, or not exposed: nothing to raise
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= want {
			continue
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(want)), 0o644); err != nil {
			return fmt.Errorf("lab: raise %s to %d (lab hosts share this machine's kernel): %w", strings.ReplaceAll(key, "/", "."), want, err)
		}
		fmt.Fprintf(log, "raised %s to %d for the lab hosts\n", strings.ReplaceAll(key, "/", "."), want)
	}
	return nil
}
