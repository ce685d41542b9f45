package lab

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// MirrorFiles says what a file mirror holds: versions per component, and the arch.
type MirrorFiles struct {
	Kube, Etcd, Flannel []string
	Arch                string
}

// FillMirror lays the bundle's binaries out in the official upstream layout under dir, each
// with a NAME.sha256 beside it (the hash alone, like dl.k8s.io's), as a site's file mirror
// (Kubespray's files_repo) holds them:
//
//	dl.k8s.io/release/V/bin/linux/ARCH/{kubeadm,kubelet,kubectl}
//	github.com/etcd-io/etcd/releases/download/V/etcd-V-linux-ARCH.tar.gz
//	github.com/flannel-io/flannel/releases/download/V/flannel-V-linux-ARCH.tar.gz
//
// The archives are deterministic, so their sums do not change between runs.
func FillMirror(bundleDir, dir string, m MirrorFiles) error {
	for _, v := range m.Kube {
		src := filepath.Join(bundleDir, "kubernetes-"+v+"-linux-"+m.Arch)
		dst := filepath.Join(dir, "dl.k8s.io", "release", v, "bin", "linux", m.Arch)
		for _, f := range []string{"kubeadm", "kubelet", "kubectl"} {
			if err := mirrorFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
				return err
			}
		}
	}
	for _, v := range m.Etcd {
		name := "etcd-" + v + "-linux-" + m.Arch
		src := filepath.Join(bundleDir, name)
		dst := filepath.Join(dir, "github.com", "etcd-io", "etcd", "releases", "download", v, name+".tar.gz")
		if err := mirrorArchive(dst, name+"/", src, "etcd", "etcdctl", "etcdutl"); err != nil {
			return err
		}
	}
	for _, v := range m.Flannel {
		src := filepath.Join(bundleDir, "flannel-"+v+"-linux-"+m.Arch)
		dst := filepath.Join(dir, "github.com", "flannel-io", "flannel", "releases", "download", v, "flannel-"+v+"-linux-"+m.Arch+".tar.gz")
		if err := mirrorArchive(dst, "", src, "flanneld"); err != nil {
			return err
		}
	}
	return nil
}

func mirrorFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	return writeWithSum(dst, data)
}

// writeWithSum writes data and NAME.sha256.
func writeWithSum(dst string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	return os.WriteFile(dst+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644)
}

// mirrorArchive packs files of srcDir as a .tar.gz with members prefix+file.
func mirrorArchive(dst, prefix, srcDir string, files ...string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".mirror-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	gz := gzip.NewWriter(tmp)
	gz.ModTime = time.Unix(0, 0)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(srcDir, f))
		if err != nil {
			tmp.Close()
			return fmt.Errorf("mirror: %w", err)
		}
		hdr := &tar.Header{Name: prefix + f, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			tmp.Close()
			return err
		}
		if _, err := tw.Write(data); err != nil {
			tmp.Close()
			return err
		}
	}
	err = errors.Join(tw.Close(), gz.Close(), tmp.Close())
	if err != nil {
		return err
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	return writeWithSum(dst, data)
}

// ServeMirror serves dir over plain HTTP on addr (port 0 picks one) until ctx ends or stop
// is called; it returns the base URL.
func ServeMirror(ctx context.Context, dir, addr string) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("mirror: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return "http://" + ln.Addr().String(), cancel, nil
}
