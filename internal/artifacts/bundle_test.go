package artifacts

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bundle written with AddSet + WriteSums + Tar opens from the tar and resolves like any
// bundle; a tampered file is refused.
func TestBundleRoundTrip(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"etcd", "etcdctl", "etcdutl"} {
		os.WriteFile(filepath.Join(src, f), []byte(f+" bytes"), 0o755)
	}
	set := &Set{Component: "etcd", Version: "v3.6.14", Arch: "amd64", Files: map[string]string{}}
	for _, f := range []string{"etcd", "etcdctl", "etcdutl"} {
		set.Files[f] = filepath.Join(src, f)
	}
	dir := t.TempDir()
	if err := AddSet(dir, set); err != nil {
		t.Fatal(err)
	}
	if err := WriteSums(dir); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "bundle.tar")
	if err := Tar(dir, tarPath); err != nil {
		t.Fatal(err)
	}
	opened, err := OpenBundle(tarPath, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&Source{BundleDir: opened}).Resolve(context.Background(), "etcd", "v3.6.14", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got.Files["etcdctl"]); string(b) != "etcdctl bytes" {
		t.Errorf("etcdctl: %q", b)
	}
	os.WriteFile(filepath.Join(opened, "etcd-v3.6.14-linux-amd64", "etcd"), []byte("tampered"), 0o755)
	if _, err := (&Source{BundleDir: opened}).Resolve(context.Background(), "etcd", "v3.6.14", "amd64"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("a tampered bundle file: %v", err)
	}
}

func TestOpenBundleRefusesUnsafeTars(t *testing.T) {
	for name, entry := range map[string]string{"escape": "../evil", "absolute": "/etc/evil"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b.tar")
			f, _ := os.Create(p)
			tw := tar.NewWriter(f)
			tw.WriteHeader(&tar.Header{Name: entry, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
			tw.Write([]byte("x"))
			tw.Close()
			f.Close()
			if _, err := OpenBundle(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "unsafe path") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "nosums.tar")
	os.WriteFile(p, nil, 0o644)
	if _, err := OpenBundle(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no SHA256SUMS") {
		t.Errorf("a tar without SHA256SUMS: %v", err)
	}
}
