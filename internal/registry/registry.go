// Package registry talks to OCI/Docker registries from the taskbox: it checks that every image
// an install needs exists and that the credentials are accepted (before any host changes), saves
// images to docker archives for an offline bundle, and pushes archives (the lab fills its
// registry this way). Credentials never appear in errors or logs.
package registry

import "context"

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
}

// Check verifies that every image reference exists (a manifest HEAD/GET) with the
// credentials given. Errors, one per image, name the image and the registry and say what is
// wrong: not found, credentials refused (401/403), unreachable (DNS, TCP, TLS).
func (c *Client) Check(ctx context.Context, refs []string) error { panic("TODO(helper)") }

// Save writes the images to one docker archive (the format `ctr images import` and
// `docker load` read), each tagged with its reference.
func (c *Client) Save(ctx context.Context, refs []string, path string) error { panic("TODO(helper)") }

// PushArchive pushes every image of a docker archive to the registry, renamed: an image
// tagged "registry.k8s.io/kube-apiserver:v1.34.4" (or "kinstall.local/probe:v1") goes to
// prefix + "/kube-apiserver:v1.34.4" (prefix + "/probe:v1"): the last path element and the
// tag are kept. It returns the references pushed.
func (c *Client) PushArchive(ctx context.Context, archive, prefix string) ([]string, error) {
	panic("TODO(helper)")
}
