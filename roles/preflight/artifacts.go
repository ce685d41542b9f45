package preflight

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/registry"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/internal/stage"
	"github.com/kinstall/kinstall/roles/role"
)

// Artifacts is the preflight/artifacts phase: on the taskbox, every file each host will get is
// downloaded (or read from the bundle) and verified for the host's arch, and every image the
// cluster pulls is checked in its registry with the configured credentials. It changes no
// host, and it is critical: a checksum mismatch, an unpinned version, an unreachable mirror, a
// registry that refuses the credentials or a missing image stops the run before anything
// changes.
type Artifacts struct {
	c   *cluster.Cluster
	src *artifacts.Source

	imagesOnce sync.Once
	imagesErr  error
}

// NewArtifacts prepares the phase.
func NewArtifacts(e *role.Env) (*Artifacts, error) {
	return &Artifacts{c: e.Cluster, src: e.Source()}, nil
}

// Tasks check the host's files, then (once for the run) the images.
func (a *Artifacts) Tasks() []runner.Task {
	return []runner.Task{
		{Name: "files verified on the taskbox", Check: a.checkFiles},
		{Name: "images in their registry", When: func(h *runner.Host) bool { return h.Master || h.Worker }, Check: a.checkImages},
	}
}

// wanted is what a host gets: etcd on members; Kubernetes, flannel (and, from a bundle, the
// image archives) on nodes.
func (a *Artifacts) wanted(h *runner.Host) [][2]string {
	cfg := a.c.Config
	var out [][2]string
	if h.Etcd {
		out = append(out, [2]string{"etcd", cfg.EtcdVersion})
	}
	if h.Master || h.Worker {
		out = append(out, [2]string{"kubernetes", cfg.KubeVersion}, [2]string{"flannel", cfg.FlannelVersion})
		if a.src.BundleDir != "" {
			out = append(out, [2]string{"kube-images", cfg.KubeVersion})
		}
	}
	return out
}

func (a *Artifacts) checkFiles(ctx context.Context, h *runner.Host) (string, error) {
	arch, err := stage.Arch(ctx, h)
	if err != nil {
		return "", err
	}
	for _, w := range a.wanted(h) {
		if _, err := a.src.Resolve(ctx, w[0], w[1], arch); err != nil {
			return "", err
		}
	}
	return "", nil
}

// checkImages asks the registries once for the run; images from a bundle are imported, not
// pulled.
func (a *Artifacts) checkImages(ctx context.Context, _ *runner.Host) (string, error) {
	if a.src.BundleDir != "" {
		return "", nil
	}
	a.imagesOnce.Do(func() { a.imagesErr = CheckImages(ctx, a.c.Config) })
	return "", a.imagesErr
}

// Images lists every image a cluster pulls: the Kubernetes images under kube_image_repo and
// verify's probe image.
func Images(cfg *config.Config) ([]string, error) {
	cp, node, err := artifacts.KubeImages(cfg.ImageRepo(), cfg.KubeVersion)
	if err != nil {
		return nil, err
	}
	refs := append(cp, node...)
	if !strings.HasPrefix(cfg.VerifyImage, "kinstall.local/") { // the bundle's own probe image is imported, never pulled
		refs = append(refs, cfg.VerifyImage)
	}
	return refs, nil
}

// RegistryClient reaches the registries with common.yaml's credentials and CAs.
func RegistryClient(cfg *config.Config) *registry.Client {
	c := &registry.Client{}
	for _, r := range cfg.ContainerdRegistryAuth {
		c.Registries = append(c.Registries, registry.Registry{Host: r.Registry, CAFile: r.CAFile,
			Auth: registry.Auth{Username: r.Username, Password: r.Password, Token: r.Auth}})
	}
	return c
}

// CheckImages checks that every image the cluster pulls exists and the credentials work.
func CheckImages(ctx context.Context, cfg *config.Config) error {
	refs, err := Images(cfg)
	if err != nil {
		return err
	}
	if err := RegistryClient(cfg).Check(ctx, refs); err != nil {
		return fmt.Errorf("images (kube_image_repo %s, containerd_registry_auth): %w", cfg.ImageRepo(), err)
	}
	return nil
}
