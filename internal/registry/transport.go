package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Timeouts for one connection: a registry that does not answer within them is reported
// unreachable instead of hanging the preflight.
const (
	dialTimeout   = 10 * time.Second
	tlsTimeout    = 10 * time.Second
	headerTimeout = 30 * time.Second
)

// Retries: Check fails fast (the operator fixes the cause and runs again); Save and push
// move hundreds of megabytes, where one 503 or reset should not lose the whole export.
var (
	checkBackoff    = remote.Backoff{Steps: 1}
	transferBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 3}
)

// registry finds the entry for a reference's registry, as written ("docker.io") or as the
// name package normalizes it ("index.docker.io").
func (c *Client) registry(hosts ...string) Registry {
	for _, h := range hosts {
		for _, r := range c.Registries {
			if r.Host == h {
				return r
			}
		}
	}
	return Registry{Host: hosts[0]}
}

// parse parses an image reference and finds its registry entry; a PlainHTTP registry's
// references are parsed insecure so that the library speaks http to it.
func (c *Client) parse(ref string) (name.Reference, Registry, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, Registry{}, fmt.Errorf("image %s: not an image reference: %v", ref, err)
	}
	written, _, _ := strings.Cut(ref, "/")
	reg := c.registry(r.Context().RegistryStr(), written)
	if reg.PlainHTTP {
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, reg, fmt.Errorf("image %s: not an image reference: %v", ref, err)
		}
	}
	return r, reg, nil
}

// options are the remote options for a registry: its transport (CA, timeouts), its
// credentials, the context and the retry policy.
func options(ctx context.Context, reg Registry, backoff remote.Backoff) ([]remote.Option, error) {
	tr, err := httpTransport(reg)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = tr
	if !reg.PlainHTTP {
		rt = httpsOnly{tr}
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(authenticator(reg.Auth)),
		remote.WithTransport(rt),
		remote.WithRetryBackoff(backoff),
		remote.WithUserAgent("kinstall"),
	}, nil
}

func httpTransport(reg Registry) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone() // keeps HTTPS_PROXY/NO_PROXY
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = tlsTimeout
	tr.ResponseHeaderTimeout = headerTimeout
	if reg.CAFile != "" {
		pool, err := rootsWith(reg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", reg.Host, err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}

// rootsWith is the system roots plus the PEM file's certificates: a private registry's CA
// is added, not substituted, so a mirror behind a public certificate keeps working.
func rootsWith(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err) // the *PathError names the file
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// authenticator: a token is sent as "Authorization: Bearer" (directly to a Basic-challenge
// registry, and in place of a token exchange for a Bearer-challenge one).
func authenticator(a Auth) authn.Authenticator {
	switch {
	case a.Token != "":
		return &authn.Bearer{Token: a.Token}
	case a.Username != "" || a.Password != "":
		return &authn.Basic{Username: a.Username, Password: a.Password}
	}
	return authn.Anonymous
}

// httpsOnly refuses plain HTTP unless the operator asked for it: for private and loopback
// addresses the library falls back to http when TLS fails, which would send the credentials
// in the clear.
type httpsOnly struct{ http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, fmt.Errorf("refusing plain HTTP to %s (TLS failed)", r.URL.Host)
	}
	return h.RoundTripper.RoundTrip(r)
}
