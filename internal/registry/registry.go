// Package registry talks to OCI/Docker registries from the taskbox: it checks that every image
// an install needs exists and that the credentials are accepted (before any host changes), saves
// images to docker archives for an offline bundle, and pushes archives (the lab fills its
// registry this way). Credentials never appear in errors or logs.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/hashicorp/go-multierror"
)

// Auth is a registry's credentials: username/password, or a bearer token. Empty: anonymous.
type Auth struct {
	Username, Password string
	Token              string
}

// Registry is how to reach one registry host ("host" or "host:port").
type Registry struct {
	Host   string
	Auth   Auth
	CAFile string // PEM file on the taskbox for a private registry's TLS; empty: system roots
	// PlainHTTP: the registry speaks HTTP, not HTTPS (only when the operator says so).
	PlainHTTP bool
}

// Client reaches the registries it is given; others are reached anonymously over HTTPS.
type Client struct {
	Registries []Registry
	Platform   string // "linux/arm64" for Save; default linux/amd64
}

func (c *Client) registry(host string) Registry {
	for _, r := range c.Registries {
		if r.Host == host {
			return r
		}
	}
	return Registry{Host: host}
}

// options are the remote options for a registry host.
func (c *Client) options(ctx context.Context, reg Registry) ([]remote.Option, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	if reg.CAFile != "" {
		pem, err := os.ReadFile(reg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: ca_file: %w", reg.Host, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: ca_file %s holds no PEM certificate", reg.Host, reg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var auth authn.Authenticator = authn.Anonymous
	switch {
	case reg.Auth.Token != "":
		auth = &authn.Bearer{Token: reg.Auth.Token}
	case reg.Auth.Username != "":
		auth = &authn.Basic{Username: reg.Auth.Username, Password: reg.Auth.Password}
	}
	var rt http.RoundTripper = tr
	if !reg.PlainHTTP {
		rt = httpsOnly{tr}
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(rt), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}, nil
}

// httpsOnly refuses plain HTTP: the library falls back to it for private addresses when TLS
// fails, which would send the credentials in the clear and hide the TLS error.
type httpsOnly struct{ http.RoundTripper }

var errPlainHTTP = errors.New("refusing plain HTTP")

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, errPlainHTTP
	}
	return h.RoundTripper.RoundTrip(r)
}

func (c *Client) parse(ref string) (name.Reference, Registry, error) {
	host := ref
	if i := strings.Index(ref, "/"); i > 0 {
		host = ref[:i]
	}
	reg := c.registry(host)
	var opts []name.Option
	if reg.PlainHTTP {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, reg, fmt.Errorf("image %s: not an image reference: %v", ref, err)
	}
	return r, reg, nil
}

// Check verifies that every image reference exists (a manifest HEAD/GET) with the
// credentials given. Errors, one per image, name the image and the registry and say what is
// wrong: not found, credentials refused (401/403), unreachable (DNS, TCP, TLS).
func (c *Client) Check(ctx context.Context, refs []string) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, ref := range refs {
		wg.Add(1)
		go func(ref string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := c.check(ctx, ref); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(ref)
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	var out *multierror.Error
	for _, e := range errs {
		out = multierror.Append(out, e)
	}
	if out != nil {
		out.ErrorFormat = lines
	}
	return out.ErrorOrNil()
}

func lines(errs []error) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("\n  - ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (c *Client) check(ctx context.Context, ref string) error {
	r, reg, err := c.parse(ref)
	if err != nil {
		return err
	}
	opts, err := c.options(ctx, reg)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	if _, err := remote.Head(r, opts...); err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusMethodNotAllowed {
			_, err = remote.Get(r, opts...)
		}
		if err != nil {
			return explain(ref, r.Context().RegistryStr(), reg, err)
		}
	}
	return nil
}

// explain turns a registry error into what the operator must fix; secrets are never in it
// (the library does not echo credentials; the message is built from status codes anyway).
func explain(ref, host string, reg Registry, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("image %s: not found in registry %s", ref, host)
		case http.StatusUnauthorized, http.StatusForbidden:
			switch {
			case reg.Auth.Username != "":
				return fmt.Errorf("image %s: registry %s refused the credentials (user %s)", ref, host, reg.Auth.Username)
			case reg.Auth.Token != "":
				return fmt.Errorf("image %s: registry %s refused the token", ref, host)
			}
			return fmt.Errorf("image %s: registry %s needs credentials (set containerd_registry_auth)", ref, host)
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return fmt.Errorf("image %s: not found in registry %s", ref, host)
			}
		}
		return fmt.Errorf("image %s: registry %s answered %d", ref, host, te.StatusCode)
	}
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ce) {
		return fmt.Errorf("image %s: registry %s: TLS: %s (set the registry's ca_file in containerd_registry_auth)", ref, host, short(err))
	}
	return fmt.Errorf("image %s: registry %s unreachable: %s", ref, host, short(err))
}

// short keeps the last part of a wrapped network error ("connection refused", "no such host").
func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 120 {
		return s[i+2:]
	}
	return s
}

func (c *Client) platform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	if c.Platform != "" {
		os, arch, _ := strings.Cut(c.Platform, "/")
		p.OS, p.Architecture = os, arch
	}
	return p
}

// Save writes the images to one docker archive (the format `ctr images import` and
// `docker load` read), each tagged with its reference.
func (c *Client) Save(ctx context.Context, refs []string, path string) error {
	images := map[name.Tag]v1.Image{}
	for _, ref := range refs {
		r, reg, err := c.parse(ref)
		if err != nil {
			return err
		}
		tag, ok := r.(name.Tag)
		if !ok {
			return fmt.Errorf("image %s: save needs a tag, not a digest", ref)
		}
		opts, err := c.options(ctx, reg)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		img, err := remote.Image(r, append(opts, remote.WithPlatform(c.platform()))...)
		if err != nil {
			return explain(ref, r.Context().RegistryStr(), reg, err)
		}
		images[tag] = img
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".images-*.tar")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	refImages := map[name.Reference]v1.Image{}
	for t, img := range images {
		refImages[t] = img
	}
	if err := tarball.MultiRefWriteToFile(tmp.Name(), refImages); err != nil {
		return fmt.Errorf("save images to %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// PushArchive pushes every image of a docker archive to the registry, renamed: an image
// tagged "registry.k8s.io/kube-apiserver:v1.34.4" (or "kinstall.local/probe:v1") goes to
// prefix + "/kube-apiserver:v1.34.4" (prefix + "/probe:v1"): the last path element and the
// tag are kept. It returns the references pushed.
func (c *Client) PushArchive(ctx context.Context, archive, prefix string) ([]string, error) {
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	var pushed []string
	for _, m := range manifest {
		for _, tagged := range m.RepoTags {
			src, err := name.NewTag(tagged)
			if err != nil {
				return pushed, fmt.Errorf("%s: tag %s: %w", archive, tagged, err)
			}
			img, err := tarball.ImageFromPath(archive, &src)
			if err != nil {
				return pushed, fmt.Errorf("%s: %s: %w", archive, tagged, err)
			}
			repo := src.RepositoryStr()
			ref := prefix + "/" + repo[strings.LastIndex(repo, "/")+1:] + ":" + src.TagStr()
			dst, reg, err := c.parse(ref)
			if err != nil {
				return pushed, err
			}
			opts, err := c.options(ctx, reg)
			if err != nil {
				return pushed, err
			}
			if err := remote.Write(dst, img, opts...); err != nil {
				return pushed, explain(ref, dst.Context().RegistryStr(), reg, err)
			}
			pushed = append(pushed, ref)
		}
	}
	return pushed, nil
}
