package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func (c *Client) platform() (v1.Platform, error) {
	if c.Platform == "" {
		return v1.Platform{OS: "linux", Architecture: "amd64"}, nil
	}
	p, err := v1.ParsePlatform(c.Platform)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch (linux/arm64)", c.Platform)
	}
	return *p, nil
}

// pull resolves each reference to an image of the client's platform. Only manifests and
// configs are fetched here (so a missing image fails before the archive is started); the
// layers stream into the archive.
func (c *Client) pull(ctx context.Context, refs []string) (map[name.Reference]v1.Image, error) {
	platform, err := c.platform()
	if err != nil {
		return nil, err
	}
	images := map[name.Reference]v1.Image{}
	byDigest := map[v1.Hash]v1.Image{} // one copy of an image saved under two tags
	for _, ref := range refs {
		tag, img, err := c.pullOne(ctx, ref, platform)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		if seen, ok := byDigest[d]; ok {
			img = seen
		}
		byDigest[d] = img
		images[tag] = img
	}
	return images, nil
}

func (c *Client) pullOne(ctx context.Context, ref string, platform v1.Platform) (name.Tag, v1.Image, error) {
	r, reg, err := c.parse(ref)
	if err != nil {
		return name.Tag{}, nil, err
	}
	tag, ok := r.(name.Tag)
	if !ok { // a docker archive can only name an image by tag
		return name.Tag{}, nil, fmt.Errorf("image %s: save needs a tag, not a digest", ref)
	}
	opts, err := options(ctx, reg, transferBackoff)
	if err != nil {
		return name.Tag{}, nil, fmt.Errorf("image %s: %w", ref, err)
	}
	host := r.Context().RegistryStr()
	why := func(err error) error { return explain(ref, host, reg, err) }
	img, err := remote.Image(r, append(opts, remote.WithPlatform(platform))...)
	if err != nil {
		return name.Tag{}, nil, why(err)
	}
	named := &namedImage{Image: img, why: why}
	if _, err := named.RawConfigFile(); err != nil {
		return name.Tag{}, nil, err
	}
	return tag, named, nil
}

// writeArchive writes the archive beside path and renames it into place, so that a failed
// or interrupted save never leaves a truncated archive that an import would half-load.
func writeArchive(path string, images map[name.Reference]v1.Image) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save images: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// MultiRefWrite on our own file (MultiRefWriteToFile creates it) so that it can be
	// synced before the rename.
	if err := tarball.MultiRefWrite(images, tmp); err != nil {
		return fmt.Errorf("save images to %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("save images to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save images to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save images to %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// namedImage makes the lazy fetches of a remote image (its config and layers, done while
// the archive is written) fail with the image's name and the cause explained.
type namedImage struct {
	v1.Image
	why func(error) error
}

func (n *namedImage) RawConfigFile() ([]byte, error) {
	b, err := n.Image.RawConfigFile()
	if err != nil {
		return nil, n.why(err)
	}
	return b, nil
}

func (n *namedImage) Layers() ([]v1.Layer, error) {
	layers, err := n.Image.Layers()
	if err != nil {
		return nil, n.why(err)
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = namedLayer{Layer: l, why: n.why}
	}
	return out, nil
}

type namedLayer struct {
	v1.Layer
	why func(error) error
}

func (l namedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, l.why(err)
	}
	return namedReader{rc, l.why}, nil
}

func (l namedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, l.why(err)
	}
	return namedReader{rc, l.why}, nil
}

// namedReader names the image when a layer download breaks mid-stream.
type namedReader struct {
	io.ReadCloser
	why func(error) error
}

func (r namedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = r.why(err)
	}
	return n, err
}

// archiveTags lists the tags of a docker archive in its manifest's order; untagged images
// cannot be renamed, so they are not pushed.
func archiveTags(archive string) ([]name.Tag, error) {
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		return nil, fmt.Errorf("%s: not a docker archive: %w", archive, err)
	}
	var tags []name.Tag
	for _, m := range manifest {
		for _, t := range m.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("%s: tag %s: %w", archive, t, err)
			}
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("%s: no tagged image", archive)
	}
	return tags, nil
}

// pushOne pushes the archive's image tagged src to prefix/<last path element>:<tag>.
func (c *Client) pushOne(ctx context.Context, archive string, src name.Tag, prefix string) (string, error) {
	img, err := tarball.ImageFromPath(archive, &src)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", archive, src, err)
	}
	repo := src.RepositoryStr()
	ref := prefix + "/" + repo[strings.LastIndex(repo, "/")+1:] + ":" + src.TagStr()
	dst, reg, err := c.parse(ref)
	if err != nil {
		return "", err
	}
	opts, err := options(ctx, reg, transferBackoff)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	if err := remote.Write(dst, img, opts...); err != nil {
		return "", explain(ref, dst.Context().RegistryStr(), reg, err)
	}
	return ref, nil
}
