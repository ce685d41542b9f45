package lab

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kinstall/kinstall/internal/pki"
	"github.com/kinstall/kinstall/internal/registry"
)

// Registry is the lab's image registry: Debian's docker-registry package (the CNCF
// distribution registry) on a lab host of its own, with TLS from a lab CA and basic auth. It
// stands in for a site's private registry.
type Registry struct {
	Addr      string // IP:5000
	CAFile    string // the lab registry CA (PEM) on the taskbox
	Username  string
	Password  string // never printed; also in Dir/registry.password (0600)
	Container string
}

// RegistryUser is the lab registry's user.
const RegistryUser = "kinstall"

const registryConfig = `# kinstall lab registry
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  tls:
    certificate: /etc/docker/registry/tls.crt
    key: /etc/docker/registry/tls.key
auth:
  htpasswd:
    realm: kinstall-lab
    path: /etc/docker/registry/htpasswd
`

func (l *Lab) registryContainer() string { return l.container("registry") }

// RegistryIP is the registry host's address (.5 of the lab subnet).
func (l *Lab) RegistryIP() string { return l.prefix + "5" }

// RegistryDebs downloads docker-registry and what it needs on the lab image into
// bundleDir/debs/lab-registry-debian-12-amd64 (cached), with apt in a throw-away lab container.
func RegistryDebs(ctx context.Context, bundleDir string, log io.Writer) (string, error) {
	dir := filepath.Join(bundleDir, "debs", "lab-registry-debian-12-amd64")
	if m, _ := filepath.Glob(filepath.Join(dir, "docker-registry_*.deb")); len(m) > 0 {
		return dir, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintln(log, "lab registry: downloading docker-registry from Debian")
	if _, err := docker(ctx, "run", "--rm", "--network", "bridge", "-v", tmp+":/out", "--entrypoint", "/bin/bash", Image, "-c",
		"set -e; apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --download-only docker-registry >/dev/null; cp /var/cache/apt/archives/*.deb /out/"); err != nil {
		return "", fmt.Errorf("lab registry: download docker-registry: %w", err)
	}
	os.RemoveAll(dir)
	return dir, os.Rename(tmp, dir)
}

// RegistryUp starts (or reuses) the registry host and configures it; it returns once the
// registry answers 401 without and 200 with the credentials, over TLS checked with the CA.
func (l *Lab) RegistryUp(ctx context.Context, bundleDir string, log io.Writer) (*Registry, error) {
	debs, err := RegistryDebs(ctx, bundleDir, log)
	if err != nil {
		return nil, err
	}
	r := &Registry{Addr: l.RegistryIP() + ":5000", Username: RegistryUser, Container: l.registryContainer(),
		CAFile: filepath.Join(l.Dir, "registry-ca", "ca.crt")}
	if r.Password, err = l.registryPassword(); err != nil {
		return nil, err
	}
	state, err := docker(ctx, "inspect", "-f", "{{.State.Status}}", r.Container)
	switch {
	case err != nil:
		args := append([]string{"run", "-d", "--name", r.Container, "--hostname", "registry",
			"--network", l.network(), "--ip", l.RegistryIP(), "--label", labelLab(l.Name)}, runFlags...)
		if _, err := docker(ctx, append(args, Image)...); err != nil {
			return nil, err
		}
	case state != "running":
		if _, err := docker(ctx, "start", r.Container); err != nil {
			return nil, err
		}
	}
	if err := l.configureRegistry(ctx, r, debs); err != nil {
		return nil, fmt.Errorf("lab registry: %w", err)
	}
	return r, r.wait(ctx, 60*time.Second)
}

func (l *Lab) registryPassword() (string, error) {
	path := filepath.Join(l.Dir, "registry.password")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	pw := "reg-" + hex.EncodeToString(b)
	return pw, os.WriteFile(path, []byte(pw+"\n"), 0o600)
}

// configureRegistry installs the package (docker cp writes below any tmpfs systemd mounts on
// /tmp, hence /var/tmp) and writes the TLS pair, htpasswd and config.
func (l *Lab) configureRegistry(ctx context.Context, r *Registry, debs string) error {
	ca, err := pki.LoadOrCreateCA(filepath.Dir(r.CAFile), "kinstall-lab-registry-ca")
	if err != nil {
		return err
	}
	cert, key, _, err := ca.Issue("registry", pki.Request{CommonName: l.RegistryIP(), IPs: []net.IP{net.ParseIP(l.RegistryIP())}, Server: true})
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	if err := l.registryExec(ctx, r, nil, "for _ in $(seq 200); do [ -S /run/systemd/private ] && break; sleep 0.05; done; mkdir -p /var/tmp/kinstall-registry-debs /etc/docker/registry"); err != nil {
		return err
	}
	if _, err := docker(ctx, "cp", debs+"/.", r.Container+":/var/tmp/kinstall-registry-debs/"); err != nil {
		return err
	}
	if err := l.registryExec(ctx, r, nil, "dpkg-query -W -f='${Status}' docker-registry 2>/dev/null | grep -q 'ok installed' || DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/kinstall-registry-debs/*.deb >/dev/null"); err != nil {
		return err
	}
	files := map[string][]byte{"tls.crt": cert, "tls.key": key, "htpasswd": []byte(RegistryUser + ":" + string(hash) + "\n"), "config.yml": []byte(registryConfig)}
	for name, data := range files {
		if err := l.registryExec(ctx, r, data, "cat > /etc/docker/registry/"+name+" && chown root:docker-registry /etc/docker/registry/"+name+" && chmod 640 /etc/docker/registry/"+name); err != nil {
			return err
		}
	}
	return l.registryExec(ctx, r, nil, "systemctl enable --quiet docker-registry && systemctl restart docker-registry")
}

func (l *Lab) registryExec(ctx context.Context, r *Registry, stdin []byte, script string) error {
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", r.Container, "sh", "-c", script)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.SplitN(script, " ", 2)[0], err, out)
	}
	return nil
}

// wait polls /v2/ until it asks for credentials and accepts ours.
func (r *Registry) wait(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = r.Probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("lab registry %s did not answer in %s: %v", r.Addr, timeout, last)
}

// Probe checks the registry: 401 without credentials, 200 with them, TLS verified.
func (r *Registry) Probe(ctx context.Context) error {
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for _, withAuth := range []bool{false, true} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.Addr+"/v2/", nil)
		want := http.StatusUnauthorized
		if withAuth {
			req.SetBasicAuth(r.Username, r.Password)
			want = http.StatusOK
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET /v2/ (credentials %v): %s, want %d", withAuth, resp.Status, want)
		}
	}
	return nil
}

// RegistryStop stops the registry host (an outage the tests use).
func (l *Lab) RegistryStop(ctx context.Context) error {
	_, err := docker(ctx, "stop", l.registryContainer())
	return err
}

// RegistryStart starts it again and waits for it.
func (l *Lab) RegistryStart(ctx context.Context) (*Registry, error) {
	if _, err := docker(ctx, "start", l.registryContainer()); err != nil {
		return nil, err
	}
	pw, err := l.registryPassword()
	if err != nil {
		return nil, err
	}
	r := &Registry{Addr: l.RegistryIP() + ":5000", Username: RegistryUser, Password: pw, Container: l.registryContainer(),
		CAFile: filepath.Join(l.Dir, "registry-ca", "ca.crt")}
	if err := r.wait(ctx, 60*time.Second); err != nil {
		return nil, errors.Join(err, fmt.Errorf("is the registry up? kinstall lab registry up"))
	}
	return r, nil
}

// OnlineConfig is the lab's common.yaml for the real-world path: files from the mirror (whose
// .sha256 files are the pins of the lab's own builds: files_checksums: mirror), images from
// the lab registry with its credentials and CA. password is written as given (tests pass a
// wrong one).
func (l *Lab) OnlineConfig(mirrorURL string, r *Registry, password, kubeVersion string) string {
	return fmt.Sprintf(`# kinstall lab cluster settings: the online path (a file mirror and a private registry)
loadbalancer_apiserver:
  address: %s
  port: 6443
loadbalancer_apiserver_mode: vip
kube_version: %s
files_repo: %s
files_checksums: mirror
kube_image_repo: %s/k8s
verify_image: %s/k8s/probe:v1
containerd_registry_auth:
  - registry: %s
    username: %s
    password: %q
    ca_file: %s
`, l.VIP, kubeVersion, mirrorURL, r.Addr, r.Addr, r.Addr, r.Username, password, r.CAFile)
}

// PushBundleImages pushes the bundle's images of a Kubernetes version (control plane, node,
// and the verify probe) to Addr/k8s, as a site fills its private registry.
func (r *Registry) PushBundleImages(ctx context.Context, bundleDir, kubeVersion string) ([]string, error) {
	client := &registry.Client{Registries: []registry.Registry{{Host: r.Addr, CAFile: r.CAFile, Auth: registry.Auth{Username: r.Username, Password: r.Password}}}}
	dir := filepath.Join(bundleDir, "kube-images-"+kubeVersion+"-linux-amd64")
	var all []string
	for _, archive := range []string{"control-plane.tar", "node.tar"} {
		pushed, err := client.PushArchive(ctx, filepath.Join(dir, archive), r.Addr+"/k8s")
		if err != nil {
			return all, fmt.Errorf("push %s: %w", archive, err)
		}
		all = append(all, pushed...)
	}
	return all, nil
}
