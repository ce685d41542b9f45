// Package certs lists every certificate kinstall and kubeadm put on the hosts, with its expiry:
// the Kubernetes PKI, the etcd PKI, the kubelets' client certificates and the certificates
// embedded in kubeconfigs. Only certificates are read (never the keys beside them).
package certs

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
)

// Cert is one certificate found on a host.
type Cert struct {
	Host, Path, Subject, Issuer string
	NotAfter                    time.Time
}

// DaysLeft until expiry (negative once expired).
func (c Cert) DaysLeft(now time.Time) int { return int(c.NotAfter.Sub(now).Hours() / 24) }

// script prints "== PATH" then the PEM of every certificate file, and for kubeconfigs only the
// base64 client-certificate-data line (the key on the next line is never printed).
const script = `for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /etc/ssl/etcd/ssl/*.pem /var/lib/kubelet/pki/*.crt /var/lib/kubelet/pki/kubelet-client-current.pem; do
  [ -f "$f" ] || continue
  case "$f" in *-key.pem|*.key) continue;; esac
  echo "== $f"; sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f"
done
for f in /etc/kubernetes/*.conf; do
  [ -f "$f" ] || continue
  d=$(awk '$1 == "client-certificate-data:" {print $2; exit}' "$f")
  [ -n "$d" ] && echo "== $f" && echo "B64 $d"
done; true`

// Collect reads the certificates of every host at once.
func Collect(ctx context.Context, hosts runner.Hosts, list []*cluster.Host) ([]Cert, error) {
	var mu sync.Mutex
	var out []Cert
	var errs []string
	var wg sync.WaitGroup
	for _, h := range list {
		wg.Add(1)
		go func(h *cluster.Host) {
			defer wg.Done()
			text, err := hosts.Sudo(ctx, h, script)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, h.Name+": "+err.Error())
				return
			}
			out = append(out, Parse(h.Name, text)...)
		}(h)
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Path < out[j].Path
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Parse reads the script's output (the first certificate of each file: the leaf).
func Parse(host, text string) []Cert {
	var out []Cert
	for _, block := range strings.Split(text, "== ")[1:] {
		path, body, _ := strings.Cut(block, "\n")
		var der []byte
		if b64, ok := strings.CutPrefix(strings.TrimSpace(body), "B64 "); ok {
			data, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				continue
			}
			body = string(data)
		}
		if p, _ := pem.Decode([]byte(body)); p != nil {
			der = p.Bytes
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		out = append(out, Cert{Host: host, Path: strings.TrimSpace(path), Subject: cert.Subject.CommonName, Issuer: cert.Issuer.CommonName, NotAfter: cert.NotAfter})
	}
	return out
}

// Print writes the table; certificates within warn of expiry are flagged.
func Print(w io.Writer, certs []Cert, now time.Time, warn time.Duration) (expiring int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCERTIFICATE\tSUBJECT\tISSUER\tEXPIRES\tDAYS LEFT\t")
	for _, c := range certs {
		flag := ""
		if c.NotAfter.Sub(now) < warn {
			flag = "RENEW"
			expiring++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.Host, c.Path, c.Subject, c.Issuer, c.NotAfter.UTC().Format("2006-01-02"), c.DaysLeft(now), flag)
	}
	_ = tw.Flush()
	return expiring
}
