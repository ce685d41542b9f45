package artifacts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestDefaultManifestPinsEtcd(t *testing.T) {
	m := DefaultManifest()
	etcd := m["etcd"]
	if len(etcd.Files) != 3 || etcd.SHA256["v3.6.14"]["amd64"] == "" {
		t.Fatalf("etcd pins missing: %+v", etcd)
	}
	for v, arches := range etcd.SHA256 {
		for a, sum := range arches {
			if len(sum) != 64 {
				t.Errorf("etcd %s %s: bad sha256 %q", v, a, sum)
			}
		}
	}
}

func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var sums strings.Builder
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		sums.WriteString(hex.EncodeToString(sum[:]) + "  " + name + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBundle(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"etcd-v1-linux-amd64/etcd": "e", "etcd-v1-linux-amd64/etcdctl": "c", "etcd-v1-linux-amd64/etcdutl": "u",
	})
	ctx := context.Background()
	s := &Source{BundleDir: dir}
	set, err := s.Resolve(ctx, "etcd", "v1", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if set.Files["etcdctl"] != filepath.Join(dir, "etcd-v1-linux-amd64/etcdctl") {
		t.Errorf("files: %v", set.Files)
	}
	if _, err := s.Resolve(ctx, "etcd", "v2", "amd64"); err == nil || !strings.Contains(err.Error(), "it has: v1") {
		t.Errorf("missing version: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etcd-v1-linux-amd64/etcd"), []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Source{BundleDir: dir}).Resolve(ctx, "etcd", "v1", "amd64"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("tampered file: %v", err)
	}
}

func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestDownloadOnceVerified(t *testing.T) {
	archive := tarball(t, map[string]string{"etcd-v9-linux-amd64/etcd": "E", "etcd-v9-linux-amd64/etcdctl": "C", "etcd-v9-linux-amd64/README.md": "r"})
	sum := sha256.Sum256(archive)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(archive)
	}))
	defer srv.Close()
	manifest := Manifest{"etcd": {URL: srv.URL + "/{version}/etcd-{version}-linux-{arch}.tar.gz", Files: []string{"etcd", "etcdctl"},
		SHA256: map[string]map[string]string{"v9": {"amd64": hex.EncodeToString(sum[:])}, "v8": {"amd64": strings.Repeat("0", 64)}}}}
	cache := t.TempDir()
	ctx := context.Background()
	for i := 0; i < 2; i++ { // a second Source (a second run) reuses the verified download
		s := &Source{CacheDir: cache, Manifest: manifest}
		set, err := s.Resolve(ctx, "etcd", "v9", "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(set.Files["etcdctl"]); string(b) != "C" {
			t.Errorf("etcdctl = %q", b)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("downloaded %d times, want 1", hits.Load())
	}
	s := &Source{CacheDir: cache, Manifest: manifest}
	if _, err := s.Resolve(ctx, "etcd", "v8", "amd64"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("checksum mismatch: %v", err)
	}
	if _, err := s.Resolve(ctx, "etcd", "v7", "amd64"); err == nil || !strings.Contains(err.Error(), "no pinned sha256") {
		t.Errorf("unpinned: %v", err)
	}
}
