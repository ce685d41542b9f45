package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCAAndLeafReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	ca, err := LoadOrCreateCA(dir, "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	req := Request{CommonName: "node1", DNSNames: []string{"node1", "localhost"}, IPs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("127.0.0.1")}, Server: true, Client: true}
	c1, k1, issued, err := ca.Issue("member-node1", req)
	if err != nil || !issued {
		t.Fatalf("issue: %v %v", issued, err)
	}
	// The pair is a usable TLS key pair that verifies against the CA for every name.
	pair, err := tls.X509KeyPair(c1, k1)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	for _, name := range []string{"node1", "localhost", "10.0.0.1", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	// Files are 0600, the directory 0700.
	for _, f := range []string{"ca.key", "ca.crt", "member-node1.key", "member-node1.crt"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st.Mode(), err)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", st.Mode())
	}
	// A re-run (new CA object from the same dir) reuses everything.
	ca2, err := LoadOrCreateCA(dir, "etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	c2, _, issued, err := ca2.Issue("member-node1", req)
	if err != nil || issued || string(c2) != string(c1) {
		t.Fatalf("re-run re-issued: %v %v", issued, err)
	}
	// A changed address gets a new certificate.
	req.IPs[0] = net.ParseIP("10.0.0.9")
	if _, _, issued, _ := ca2.Issue("member-node1", req); !issued {
		t.Error("changed IP did not re-issue")
	}
	infos, err := Scan(dir, time.Now())
	if err != nil || len(infos) != 2 {
		t.Fatalf("scan: %v %v", infos, err)
	}
	if infos[0].ExpiresIn < 4*365*24*time.Hour {
		t.Errorf("leaf expires too soon: %v", infos[0].ExpiresIn)
	}
}
