package artifacts

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A bundle is a directory (or a tar of one) in the layout Source reads:
//
//	SHA256SUMS                                 sha256 and relative path of every other file
//	<component>-<version>-linux-<arch>/<file>  etcd, kubernetes, flannel, kube-images
//	debs/<platform>/*.deb                      distribution packages, e.g. debian-12-amd64
//
// `kinstall artifacts export` writes one from the sources an online install uses; the lab's
// `make bundle` builds one from Go module sources.

// AddSet copies a resolved set into the bundle directory dir.
func AddSet(dir string, set *Set) error {
	dest := filepath.Join(dir, set.Component+"-"+set.Version+"-linux-"+set.Arch)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(set.Files))
	for f := range set.Files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if err := copyFile(set.Files[f], filepath.Join(dest, f), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// WriteSums writes dir/SHA256SUMS for every regular file under dir (sorted, sha256sum's
// format, so `sha256sum -c SHA256SUMS` checks a bundle by hand too).
func WriteSums(dir string) error {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "SHA256SUMS" || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		lines = append(lines, sum+"  "+rel)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// Tar writes the bundle directory dir as an uncompressed tar at path (atomically). Binaries
// and image archives are already compressed or do not shrink much; tar keeps export and
// unpack fast.
func Tar(dir, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bundle-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// OpenBundle returns the bundle directory for path: path itself when it is a directory, else
// the tar unpacked once into cacheDir (keyed by the tar's sha256, so a changed tar is unpacked
// again). The caller then checks every file against SHA256SUMS as for any bundle.
func OpenBundle(path, cacheDir string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("artifacts: bundle: %w", err)
	}
	if fi.IsDir() {
		return path, nil
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return "", fmt.Errorf("artifacts: bundle: %w", err)
	}
	dir := filepath.Join(cacheDir, "bundle-"+sum[:16])
	if _, err := os.Stat(filepath.Join(dir, "SHA256SUMS")); err == nil {
		return dir, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := untar(path, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("artifacts: bundle %s: %w", path, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "SHA256SUMS")); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("artifacts: bundle %s has no SHA256SUMS: not a kinstall bundle", path)
	}
	os.RemoveAll(dir)
	return dir, os.Rename(tmp, dir)
}

func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("unsafe path %q", hdr.Name)
		}
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := writeFrom(tr, target, os.FileMode(hdr.Mode)&0o755|0o600); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: only files and directories belong in a bundle", hdr.Name)
		}
	}
}

// writeFrom writes what r holds (a tar member) to path with mode.
func writeFrom(r io.Reader, path string, mode os.FileMode) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
