// Package kube holds what the Kubernetes roles and commands share on the taskbox: the cluster's
// CA (kept in the state directory, like the etcd CA, so that kinstall can issue the admin and
// component kubeconfigs without copying keys off a master), kubeconfig rendering, join secrets
// and a small API client.
package kube

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/pki"
	"github.com/kinstall/kinstall/internal/state"
)

// Paths on the hosts.
const (
	ConfigDir       = "/etc/kubernetes"
	PKIDir          = ConfigDir + "/pki"
	KinstallDir     = ConfigDir + "/kinstall" // kinstall's kubeadm config, patches, resolv.conf
	AdminConf       = ConfigDir + "/admin.conf"
	KubeletConf     = ConfigDir + "/kubelet.conf"
	BinDir          = "/usr/local/bin"
	EtcdCertDir     = "/etc/ssl/etcd/ssl" // the etcd client certificate the API servers use
	CRISocket       = "unix:///run/containerd/containerd.sock"
	ImagesStatusDir = "/var/lib/kinstall/images" // sha256 of each image archive imported
)

// LoadCA returns the cluster CA, creating it on first use. kubeadm uses an existing
// /etc/kubernetes/pki/ca.{crt,key} instead of making its own.
func LoadCA(st state.Dir) (*pki.CA, error) {
	return pki.LoadOrCreateCA(st.KubernetesPKI(), "kubernetes")
}

// CAHash is the --discovery-token-ca-cert-hash of a CA: sha256 of its public key info.
func CAHash(ca *pki.CA) string {
	sum := sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Endpoint is host:port of the API for the cluster's nodes: the load balancer's name, or the
// first master's address when there is no load balancer.
func Endpoint(c *cluster.Cluster) string {
	port := c.Config.LoadBalancerAPIServer.Port
	if c.Config.Mode() == config.LBNone {
		port = c.Config.APIServerPort
	}
	return c.Config.APIServerLoadBalancerDomainName + ":" + strconv.Itoa(port)
}

// TaskboxServer is the API URL the taskbox uses: the LB address (the taskbox need not resolve
// the LB's name), else the first master. With per-node proxies there is no shared address.
func TaskboxServer(c *cluster.Cluster) string {
	cfg := c.Config
	switch cfg.Mode() {
	case config.LBExternal, config.LBVIP:
		return "https://" + joinHostPort(cfg.LoadBalancerAPIServer.Address, cfg.LoadBalancerAPIServer.Port)
	}
	if len(c.Masters) == 0 {
		return ""
	}
	return "https://" + joinHostPort(c.Masters[0].IP, cfg.APIServerPort)
}

// Kubeconfig renders a kubeconfig with an embedded client certificate.
func Kubeconfig(clusterName, server string, caPEM, certPEM, keyPEM []byte, user string) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`# Managed by kinstall.
apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[4]s
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: %[4]s@%[1]s
  context:
    cluster: %[1]s
    user: %[4]s
current-context: %[4]s@%[1]s
`, clusterName, server, b64(caPEM), user, b64(certPEM), b64(keyPEM)))
}

// ClientKubeconfig issues (or reuses) a client certificate name from the CA and renders a
// kubeconfig for it.
func ClientKubeconfig(ca *pki.CA, clusterName, server, name, commonName string, groups []string) ([]byte, error) {
	cert, key, _, err := ca.Issue(name, pki.Request{CommonName: commonName, Organization: groups, Client: true})
	if err != nil {
		return nil, err
	}
	return Kubeconfig(clusterName, server, ca.CertPEM, cert, key, commonName), nil
}

// WriteAdminKubeconfig writes the taskbox's admin kubeconfig (0600) and returns its path.
func WriteAdminKubeconfig(st state.Dir, c *cluster.Cluster) (string, error) {
	ca, err := LoadCA(st)
	if err != nil {
		return "", err
	}
	data, err := ClientKubeconfig(ca, c.Config.ClusterName, TaskboxServer(c), "admin", "kinstall-admin", []string{"system:masters"})
	if err != nil {
		return "", err
	}
	p := st.AdminKubeconfig()
	if old, err := os.ReadFile(p); err == nil && string(old) == string(data) {
		return p, nil
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// ExistingAdminKubeconfig (re)writes the admin kubeconfig of an installed cluster: it refuses
// when the state directory has no cluster CA (a new one would match no cluster).
func ExistingAdminKubeconfig(st state.Dir, c *cluster.Cluster) (string, error) {
	if _, err := os.Stat(filepath.Join(st.KubernetesPKI(), "ca.crt")); err != nil {
		return "", fmt.Errorf("no cluster CA in %s: install the cluster first, or pass the --state-dir it was installed with", st.KubernetesPKI())
	}
	return WriteAdminKubeconfig(st, c)
}

const tokenChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewToken returns a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}) from crypto/rand.
func NewToken() (string, error) {
	b := make([]byte, 23)
	for i := range b {
		if i == 6 {
			b[i] = '.'
			continue
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(tokenChars))))
		if err != nil {
			return "", err
		}
		b[i] = tokenChars[n.Int64()]
	}
	return string(b), nil
}

// NewCertificateKey returns a key for kubeadm's uploaded control-plane certificates (32 bytes, hex).
func NewCertificateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ParseCert is a convenience for callers holding PEM.
func ParseCert(pemBytes []byte) (*x509.Certificate, error) { return pki.ParseCert(pemBytes) }

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
