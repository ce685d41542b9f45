package lab

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/artifacts"
)

func fakeBundle(t *testing.T) string {
	t.Helper()
	b := t.TempDir()
	write := func(dir string, files ...string) {
		os.MkdirAll(filepath.Join(b, dir), 0o755)
		for _, f := range files {
			os.WriteFile(filepath.Join(b, dir, f), []byte(dir+"/"+f), 0o755)
		}
	}
	write("kubernetes-v1.34.4-linux-amd64", "kubeadm", "kubelet", "kubectl")
	write("etcd-v3.6.14-linux-amd64", "etcd", "etcdctl", "etcdutl")
	write("flannel-v0.28.10-linux-amd64", "flanneld")
	return b
}

func TestFillMirrorLayout(t *testing.T) {
	b, m := fakeBundle(t), t.TempDir()
	files := MirrorFiles{Kube: []string{"v1.34.4"}, Etcd: []string{"v3.6.14"}, Flannel: []string{"v0.28.10"}, Arch: "amd64"}
	if err := FillMirror(b, m, files); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubelet",
		"github.com/etcd-io/etcd/releases/download/v3.6.14/etcd-v3.6.14-linux-amd64.tar.gz",
		"github.com/flannel-io/flannel/releases/download/v0.28.10/flannel-v0.28.10-linux-amd64.tar.gz",
	} {
		sum, err := artifacts.FileSHA256(filepath.Join(m, p))
		if err != nil {
			t.Fatal(err)
		}
		side, _ := os.ReadFile(filepath.Join(m, p+".sha256"))
		if strings.TrimSpace(string(side)) != sum {
			t.Errorf("%s.sha256 = %q, file has %s", p, side, sum)
		}
	}
	// Members as upstream names them, and deterministic bytes.
	etcdTar := filepath.Join(m, "github.com/etcd-io/etcd/releases/download/v3.6.14/etcd-v3.6.14-linux-amd64.tar.gz")
	if got := members(t, etcdTar); got != "etcd-v3.6.14-linux-amd64/etcd etcd-v3.6.14-linux-amd64/etcdctl etcd-v3.6.14-linux-amd64/etcdutl" {
		t.Errorf("etcd members: %s", got)
	}
	before, _ := artifacts.FileSHA256(etcdTar)
	if err := FillMirror(b, m, files); err != nil {
		t.Fatal(err)
	}
	if after, _ := artifacts.FileSHA256(etcdTar); after != before {
		t.Error("a second fill changed the archive's sha256")
	}
	url, stop, err := ServeMirror(context.Background(), m, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get(url + "/dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubeadm")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "kubernetes-v1.34.4-linux-amd64/kubeadm" {
		t.Errorf("served %q", body)
	}
}

func members(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return strings.Join(names, " ")
}
