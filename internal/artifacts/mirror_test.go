package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every pinned Kubernetes version has all three binaries for both arches, and every minor
// with pins has its image tags.
func TestUpstreamPins(t *testing.T) {
	k := DefaultManifest()["kubernetes"]
	if !k.perFile() || len(k.FileSHA256) < 2 {
		t.Fatalf("kubernetes pins: %+v", k)
	}
	for _, must := range []string{"v1.34.4", "v1.35.4"} {
		if _, ok := k.FileSHA256[must]; !ok {
			t.Errorf("no pins for %s", must)
		}
	}
	for v, arches := range k.FileSHA256 {
		for _, a := range []string{"amd64", "arm64"} {
			for _, f := range k.Files {
				if s := arches[a][f]; len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
					t.Errorf("%s %s %s: bad or missing sha256 %q", v, a, f, s)
				}
			}
		}
		if _, _, err := KubeImages("registry.k8s.io", v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

func TestKubeImages(t *testing.T) {
	cp, node, err := KubeImages("10.0.0.5:5000/k8s", "v1.35.4")
	if err != nil {
		t.Fatal(err)
	}
	want := "10.0.0.5:5000/k8s/kube-apiserver:v1.35.4 10.0.0.5:5000/k8s/kube-controller-manager:v1.35.4 10.0.0.5:5000/k8s/kube-scheduler:v1.35.4 | 10.0.0.5:5000/k8s/kube-proxy:v1.35.4 10.0.0.5:5000/k8s/pause:3.10.1 10.0.0.5:5000/k8s/coredns:v1.13.1"
	if got := strings.Join(cp, " ") + " | " + strings.Join(node, " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	_, node, _ = KubeImages("registry.k8s.io", "v1.34.4")
	if node[2] != "registry.k8s.io/coredns/coredns:v1.12.1" {
		t.Errorf("upstream CoreDNS: %s", node[2])
	}
	if _, _, err := KubeImages("r", "v1.99.0"); err == nil {
		t.Error("an unknown minor has no tags")
	}
}

func TestURLUnderFilesRepo(t *testing.T) {
	k := DefaultManifest()["kubernetes"]
	tests := []struct{ repo, want string }{
		{"", "https://dl.k8s.io/release/v1.34.4/bin/linux/arm64/kubelet"},
		{"http://10.0.0.5:8080/files/", "http://10.0.0.5:8080/files/dl.k8s.io/release/v1.34.4/bin/linux/arm64/kubelet"},
	}
	for _, tt := range tests {
		if got := (&Source{FilesRepo: tt.repo}).URL(k, "v1.34.4", "arm64", "kubelet"); got != tt.want {
			t.Errorf("files_repo %q: %s, want %s", tt.repo, got, tt.want)
		}
	}
}

// mirror serves files in the upstream layout; tamper replaces one file's bytes after its
// .sha256 was written.
func mirror(t *testing.T, files map[string]string, tamper string) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(content), 0o644)
		sum := sha256.Sum256([]byte(content))
		os.WriteFile(full+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644)
	}
	if tamper != "" {
		os.WriteFile(filepath.Join(dir, tamper), []byte("tampered"), 0o644)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv
}

func kubeFiles(v string) map[string]string {
	out := map[string]string{}
	for _, f := range []string{"kubeadm", "kubelet", "kubectl"} {
		out["dl.k8s.io/release/"+v+"/bin/linux/amd64/"+f] = f + " " + v
	}
	return out
}

func TestMirrorDownloads(t *testing.T) {
	ctx := context.Background()
	files := kubeFiles("v1.34.4")
	sumOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	tests := []struct {
		name   string
		src    func(url string) *Source
		tamper string
		err    string
	}{
		{"kinstall's pins refuse a mirror of other builds", func(u string) *Source { return &Source{FilesRepo: u} }, "",
			"but kinstall's pin says"},
		{"trusted mirror sums", func(u string) *Source { return &Source{FilesRepo: u, TrustMirrorSums: true} }, "", ""},
		{"a tampered binary is refused", func(u string) *Source { return &Source{FilesRepo: u, TrustMirrorSums: true} },
			"dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubelet", "kubelet has sha256"},
		{"operator's sums win", func(u string) *Source {
			return &Source{FilesRepo: u, ExtraSums: map[string]string{"kubeadm": sumOf("kubeadm v1.34.4"), "kubelet": sumOf("kubelet v1.34.4"), "kubectl": sumOf("kubectl v1.34.4")}}
		}, "", ""},
		{"an unreachable mirror names the URL", func(string) *Source { return &Source{FilesRepo: "http://127.0.0.1:1", TrustMirrorSums: true} }, "",
			"download http://127.0.0.1:1/dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubeadm.sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mirror(t, files, tt.tamper)
			src := tt.src(srv.URL)
			src.CacheDir = t.TempDir()
			set, err := src.Resolve(ctx, "kubernetes", "v1.34.4", "amd64")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(set.Files["kubelet"])
			if string(b) != "kubelet v1.34.4" || set.SHA256["kubelet"] != sumOf("kubelet v1.34.4") {
				t.Errorf("kubelet: %q %s", b, set.SHA256["kubelet"])
			}
		})
	}
}

func TestUnpinnedVersionRefused(t *testing.T) {
	src := &Source{CacheDir: t.TempDir()}
	_, err := src.Resolve(context.Background(), "flannel", "v0.28.10", "amd64")
	if err == nil || !strings.Contains(err.Error(), "files_sha256") || !strings.Contains(err.Error(), "flannel-v0.28.10-linux-amd64.tar.gz") {
		t.Fatalf("err = %v", err)
	}
}
