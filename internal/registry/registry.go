// Package registry talks to OCI/Docker registries from the taskbox: it checks that every image
// an install needs exists and that the credentials are accepted (before any host changes), saves
// images to docker archives for an offline bundle, and pushes archives (the lab fills its
// registry this way). Credentials never appear in errors or logs.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
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

// checkParallel bounds the manifest requests in flight: enough to hide latency for the
// ~10 images of an install, few enough not to trip a registry's rate limit.
const checkParallel = 8

// Check verifies that every image reference exists (a manifest HEAD/GET) with the
// credentials given. Errors, one per image, name the image and the registry and say what is
// wrong: not found, credentials refused (401/403), unreachable (DNS, TCP, TLS).
func (c *Client) Check(ctx context.Context, refs []string) error {
	refs = unique(refs)
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, checkParallel)
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				errs[i] = c.clean(c.check(ctx, ref))
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	// A cancelled check says nothing about the images: report the cancellation, not a
	// list of "unreachable" lines that would send the operator to the network.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check images: %w", err)
	}
	return aggregate(errs)
}

func unique(refs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// aggregate sorts the per-image errors (stable output for logs and tests) into one error.
func aggregate(errs []error) error {
	var failed []error
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].Error() < failed[j].Error() })
	out := multierror.Append(nil, failed...)
	out.ErrorFormat = lines
	return out
}

// lines prints one image a line; a single failure stays a plain sentence so that callers
// can prefix it ("images (...): image X: not found ...").
func lines(errs []error) string {
	if len(errs) == 1 {
		return errs[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d images failed:", len(errs))
	for _, e := range errs {
		b.WriteString("\n  - ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Save writes the images to one docker archive (the format `ctr images import` and
// `docker load` read), each tagged with its reference.
func (c *Client) Save(ctx context.Context, refs []string, path string) error {
	images, err := c.pull(ctx, unique(refs))
	if err != nil {
		return c.clean(err)
	}
	return c.clean(writeArchive(path, images))
}

// PushArchive pushes every image of a docker archive to the registry, renamed: an image
// tagged "registry.k8s.io/kube-apiserver:v1.34.4" (or "kinstall.local/probe:v1") goes to
// prefix + "/kube-apiserver:v1.34.4" (prefix + "/probe:v1"): the last path element and the
// tag are kept. It returns the references pushed.
func (c *Client) PushArchive(ctx context.Context, archive, prefix string) ([]string, error) {
	tags, err := archiveTags(archive)
	if err != nil {
		return nil, err
	}
	prefix = strings.TrimRight(prefix, "/")
	var pushed []string
	for _, src := range tags {
		if err := ctx.Err(); err != nil {
			return pushed, fmt.Errorf("push %s: %w", archive, err)
		}
		ref, err := c.pushOne(ctx, archive, src, prefix)
		if err != nil {
			return pushed, c.clean(err)
		}
		pushed = append(pushed, ref)
	}
	return pushed, nil
}

// check HEADs the manifest, the cheapest request that proves both existence and access;
// a registry or proxy that mishandles HEAD gets a GET.
func (c *Client) check(ctx context.Context, ref string) error {
	r, reg, err := c.parse(ref)
	if err != nil {
		return err
	}
	opts, err := options(ctx, reg, checkBackoff)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	_, err = remote.Head(r, opts...)
	if headUnsupported(err) {
		_, err = remote.Get(r, opts...)
	}
	if err != nil {
		return explain(ref, r.Context().RegistryStr(), reg, err)
	}
	return nil
}

// headUnsupported: an HTTP answer to HEAD that GET may answer differently (405, 400, a
// proxy's 5xx); not found and auth answers are final, so they are not asked twice.
func headUnsupported(err error) bool {
	var te *transport.Error
	if err == nil || !errors.As(err, &te) {
		return false
	}
	switch te.StatusCode {
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		return false
	}
	return true
}
