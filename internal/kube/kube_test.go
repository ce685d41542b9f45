package kube

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/state"
)

func TestSecretsFormat(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(tok) || seen[tok] {
			t.Fatalf("bad or repeated token %q", tok)
		}
		seen[tok] = true
	}
	key, err := NewCertificateKey()
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(key) {
		t.Fatalf("certificate key %q, %v", key, err)
	}
}

func TestAdminKubeconfig(t *testing.T) {
	dir := state.Dir(t.TempDir())
	cfg := config.Default()
	cfg.LoadBalancerAPIServer.Address = "10.0.0.100"
	cfg.LoadBalancerMode = config.LBVIP
	c := &cluster.Cluster{Config: cfg, Masters: []*cluster.Host{{Name: "m1", IP: "10.0.0.2"}}}
	if _, err := ExistingAdminKubeconfig(dir, c); err == nil || !strings.Contains(err.Error(), "install the cluster first") {
		t.Fatalf("without a CA: %v", err)
	}
	p, err := WriteAdminKubeconfig(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 || p != filepath.Join(dir.String(), "admin.conf") {
		t.Errorf("%s mode %o", p, st.Mode().Perm())
	}
	cl, err := NewClientFromKubeconfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Server != "https://10.0.0.100:6443" {
		t.Errorf("server %s, want the VIP", cl.Server)
	}
	ca, _ := LoadCA(dir)
	if h := CAHash(ca); !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(h) {
		t.Errorf("CA hash %s", h)
	}
	if Endpoint(c) != "lb.kubesphere.local:6443" {
		t.Errorf("endpoint %s", Endpoint(c))
	}
}
