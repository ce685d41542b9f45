// Package pki issues the cluster's certificates on the taskbox with crypto/x509 and keeps them in
// the state directory (files 0600, directories 0700). A re-run reuses what is there; a certificate
// is re-issued only when its names changed or it is close to expiry.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Validity periods. Operators of other installers get bitten by one-year certificates; etcd's
// are internal to the cluster, so they last longer and `kinstall check` reports their expiry.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 5 * 365 * 24 * time.Hour
	// RenewBefore: a re-run re-issues a certificate this close to its expiry.
	RenewBefore = 30 * 24 * time.Hour
)

// CA is a certificate authority kept in Dir as ca.crt / ca.key.
type CA struct {
	Dir     string
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// Request describes a leaf certificate.
type Request struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Server       bool // TLS server auth
	Client       bool // TLS client auth
}

// LoadOrCreateCA returns the CA in dir, creating it (and dir) when absent.
func LoadOrCreateCA(dir, commonName string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certPEM, keyPEM, err := readPair(dir, "ca")
	if err == nil {
		cert, key, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", filepath.Join(dir, "ca.crt"), err)
		}
		return &CA{Dir: dir, Cert: cert, Key: key, CertPEM: certPEM}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pki: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew between hosts
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writePair(dir, "ca", certPEM, key); err != nil {
		return nil, err
	}
	return &CA{Dir: dir, Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// Issue returns the certificate and key stored as name.crt / name.key, issuing them when absent,
// not signed by this CA, for other names or usages, or within RenewBefore of expiry.
// reissued says whether new files were written.
func (ca *CA) Issue(name string, req Request) (certPEM, keyPEM []byte, reissued bool, err error) {
	certPEM, keyPEM, err = readPair(ca.Dir, name)
	if err == nil {
		cert, _, perr := parsePair(certPEM, keyPEM)
		if perr == nil && ca.matches(cert, req) {
			return certPEM, keyPEM, false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, fmt.Errorf("pki: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(CertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  extUsage(req),
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("pki: issue %s: %w", name, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writePair(ca.Dir, name, certPEM, key); err != nil {
		return nil, nil, false, err
	}
	certPEM, keyPEM, err = readPair(ca.Dir, name)
	return certPEM, keyPEM, true, err
}

func extUsage(req Request) []x509.ExtKeyUsage {
	var u []x509.ExtKeyUsage
	if req.Server {
		u = append(u, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		u = append(u, x509.ExtKeyUsageClientAuth)
	}
	return u
}

func (ca *CA) matches(cert *x509.Certificate, req Request) bool {
	if cert.CheckSignatureFrom(ca.Cert) != nil || time.Until(cert.NotAfter) < RenewBefore {
		return false
	}
	if cert.Subject.CommonName != req.CommonName || !slices.Equal(cert.ExtKeyUsage, extUsage(req)) {
		return false
	}
	return sameSet(cert.DNSNames, req.DNSNames) && sameSet(ipStrings(cert.IPAddresses), ipStrings(req.IPs))
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func readPair(dir, name string) ([]byte, []byte, error) {
	c, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, nil, err
	}
	k, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("key cannot sign")
	}
	return cert, signer, nil
}

// writePair writes the key first, both 0600, each atomically.
func writePair(dir, name string, certPEM []byte, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFile(filepath.Join(dir, name+".key"), keyPEM); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, name+".crt"), certPEM)
}

func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// CertInfo is one certificate found in a directory, for expiry reports.
type CertInfo struct {
	File      string
	Subject   string
	NotAfter  time.Time
	ExpiresIn time.Duration
}

// Scan lists the certificates (*.crt) under dir, soonest expiry first. A missing dir is empty.
func Scan(dir string, now time.Time) ([]CertInfo, error) {
	var out []CertInfo
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".crt") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		cert, err := ParseCert(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, CertInfo{File: p, Subject: cert.Subject.CommonName, NotAfter: cert.NotAfter, ExpiresIn: cert.NotAfter.Sub(now)})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].NotAfter.Before(out[j].NotAfter) })
	return out, err
}

// ParseCert parses the first PEM certificate in b.
func ParseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(bytes.TrimSpace(b))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// KeyPEM returns the CA's private key as PKCS#8 PEM (for a host that signs with it, e.g. the
// first master's kubeadm, which also shares it with masters that join).
func KeyPEM(ca *CA) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
