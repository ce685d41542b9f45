package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinstall/kinstall/internal/lab"
)

// mirrorEnv is the real-world artifacts path in the lab: a file mirror in the official layout
// (files_repo) and a private registry with TLS from its own CA and basic auth (kube_image_repo,
// containerd_registry_auth). Nothing comes from the lab's bundle: kinstall downloads and
// verifies the files on the taskbox and kubeadm/containerd pull the images.
type mirrorEnv struct {
	*k8sEnv
	reg       *lab.Registry
	mirrorDir string
	mirrorURL string
	stop      func()
}

func newMirrorEnv(t *testing.T) *mirrorEnv {
	t.Helper()
	// A cache of our own: every download is fetched and verified by this test.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	m := &mirrorEnv{}
	m.k8sEnv = newK8sLab(t, "k8s-online", "172.31.13.0/24", 5, nil)
	m.f.artifacts = "-"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg, err := m.lab.RegistryUp(ctx, m.bundle, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	m.reg = reg
	pushed, err := reg.PushBundleImages(ctx, m.bundle, kubeOld)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registry %s: pushed %s", reg.Addr, strings.Join(pushed, ", "))
	m.mirrorDir = t.TempDir()
	if err := lab.FillMirror(m.bundle, m.mirrorDir, lab.MirrorFiles{Kube: []string{kubeOld}, Etcd: []string{etcdNew}, Flannel: []string{"v0.28.10"}, Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	m.mirrorURL, m.stop, err = lab.ServeMirror(context.Background(), m.mirrorDir, m.lab.Gateway+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	m.writeConfig(t, reg.Password)
	return m
}

func (m *mirrorEnv) writeConfig(t *testing.T, password string) {
	t.Helper()
	if err := os.WriteFile(m.f.config, []byte(m.lab.OnlineConfig(m.mirrorURL, m.reg, password, kubeOld)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// assertUntouched: a refused install changed nothing on the hosts.
func (m *mirrorEnv) assertUntouched(t *testing.T, why string) {
	t.Helper()
	for _, h := range []string{"node1", "node4"} {
		if got := m.sh(t, h, "grep -l 'BEGIN kinstall' /etc/hosts; ls /etc/containerd/config.toml /opt/kinstall /etc/kubernetes 2>/dev/null; true"); got != "" {
			t.Errorf("after %s, %s was changed: %s", why, h, got)
		}
	}
}

func (m *mirrorEnv) mustRefuse(t *testing.T, why string, want ...string) {
	t.Helper()
	r := m.kinstall(t, "install")
	if r.code == 0 {
		t.Fatalf("%s: install succeeded:\n%s", why, r.out)
	}
	for _, w := range want {
		if !strings.Contains(r.out, w) {
			t.Errorf("%s: the error lacks %q:\n%s", why, w, r.out)
		}
	}
	if strings.Contains(r.out, m.reg.Password) {
		t.Errorf("%s: the registry password appears in the output", why)
	}
	m.assertUntouched(t, why)
}

// An HA install from the file mirror and the private registry (no bundle), with bad input
// refused first and nothing half-installed; then verify and the HA drill; then an offline
// bundle is exported from those sources and a fresh cluster installed from it with the mirror
// and the registry stopped.
func TestInstallFromMirrorAndRegistry(t *testing.T) {
	m := newMirrorEnv(t)

	// A tampered binary on the mirror (its .sha256 unchanged) is refused by checksum.
	kubelet := filepath.Join(m.mirrorDir, "dl.k8s.io/release", kubeOld, "bin/linux/amd64/kubelet")
	good, err := os.ReadFile(kubelet)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubelet, append(append([]byte{}, good...), 0), 0o644); err != nil {
		t.Fatal(err)
	}
	m.mustRefuse(t, "a tampered kubelet", m.mirrorURL+"/dl.k8s.io/release/"+kubeOld+"/bin/linux/amd64/kubelet has sha256", "refusing it")
	if err := os.WriteFile(kubelet, good, 0o644); err != nil {
		t.Fatal(err)
	}
	// A wrong registry password, a missing image, an unreachable mirror: refused, named.
	m.writeConfig(t, "not-the-password")
	m.mustRefuse(t, "a wrong registry password", "registry "+m.reg.Addr+" refused the credentials (user kinstall)")
	m.writeConfig(t, m.reg.Password)
	cfg, _ := os.ReadFile(m.f.config)
	os.WriteFile(m.f.config, []byte(strings.Replace(string(cfg), "verify_image: "+m.reg.Addr+"/k8s/probe:v1", "verify_image: "+m.reg.Addr+"/k8s/probe:v9", 1)), 0o600)
	m.mustRefuse(t, "a missing image", "image "+m.reg.Addr+"/k8s/probe:v9: not found in registry "+m.reg.Addr)
	os.WriteFile(m.f.config, []byte(strings.Replace(string(cfg), m.mirrorURL, "http://"+m.lab.Gateway+":1", 1)), 0o600)
	m.mustRefuse(t, "an unreachable mirror", "download http://"+m.lab.Gateway+":1/")
	m.writeConfig(t, m.reg.Password)

	r := m.mustInstall(t)
	t.Logf("HA cluster from the mirror and the registry installed in %s", r.took.Round(time.Second))
	if strings.Contains(r.out, m.reg.Password) {
		t.Error("the registry password appears in the install's output")
	}
	if got := m.sh(t, "node1", "stat -c %a /etc/containerd/config.toml; ls /opt/kinstall/artifacts | grep -c kube-images; true"); got != "600\n0" {
		t.Errorf("node1: config.toml mode and image archives staged: %q, want 600 and none (images are pulled)", got)
	}
	if got := m.sh(t, "node1", "grep imageRepository /etc/kubernetes/kinstall/kubeadm.yaml 2>/dev/null || grep -r imageRepository /etc/kubernetes/kinstall | head -1"); !strings.Contains(got, m.reg.Addr+"/k8s") {
		t.Errorf("kubeadm's imageRepository: %q", got)
	}
	t.Logf("verify:\n%s", m.mustVerify(t))
	ha := m.kinstall(t, "verify", "--ha", "--yes")
	t.Logf("verify --ha (%d):\n%s", ha.code, ha.out)
	if ha.code != 0 || !strings.Contains(ha.out, "PASSED") {
		t.Fatalf("HA drill failed")
	}

	// Export an offline bundle from the same sources (packages from one lab host).
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	// --no-packages: the dependency closure export downloads still holds alternatives that
	// conflict on a fresh host (libelogind0, libpam-modules); the hosts take their packages
	// from their Debian mirror here. Known gap, see the README.
	ex := m.kinstall(t, "artifacts", "export", "-o", bundle, "--no-packages")
	t.Logf("artifacts export (%d) in %s:\n%s", ex.code, ex.took.Round(time.Second), tail(ex.out, 12))
	if ex.code != 0 {
		t.Fatal("export failed")
	}
	fi, err := os.Stat(bundle)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bundle: %d MiB", fi.Size()>>20)
	m.stop()
	if err := m.lab.RegistryStop(context.Background()); err != nil {
		t.Fatal(err)
	}
	offlineFromBundle(t, m, bundle)
}

// offlineFromBundle installs a fresh single-master cluster from the exported bundle alone.
func offlineFromBundle(t *testing.T, m *mirrorEnv, bundle string) {
	cfg, _ := os.ReadFile(m.f.config)
	k := newK8sLab(t, "k8s-offline", "172.31.14.0/24", 2, func(inv, _ string, l *lab.Lab) (string, string) {
		inv = regexp.MustCompile(`(?s)\[kube-master\]\n.*?\n\n`).ReplaceAllString(inv, "[kube-master]\nnode1\n\n")
		inv = regexp.MustCompile(`(?s)\[etcd\]\n.*?\n\n`).ReplaceAllString(inv, "[etcd]\nnode1\n\n")
		inv = regexp.MustCompile(`(?s)\[kube-node\]\n.*?\n\n`).ReplaceAllString(inv, "[kube-node]\nnode2\n\n")
		// The same sources, now unreachable; the load balancer settings go (one master).
		c := regexp.MustCompile(`(?s)loadbalancer_apiserver:.*?loadbalancer_apiserver_mode: vip\n`).ReplaceAllString(string(cfg), "")
		return inv, c
	})
	k.f.artifacts = bundle
	r := k.mustInstall(t)
	t.Logf("cluster installed from the exported bundle, mirror and registry stopped, in %s", r.took.Round(time.Second))
	t.Logf("verify:\n%s", k.mustVerify(t))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
