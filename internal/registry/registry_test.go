package registry

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testRegistry is a real registry (go-containerregistry's) over TLS behind basic auth.
func testRegistry(t *testing.T, user, pass string) (host, caFile string) {
	t.Helper()
	reg := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(srv.URL, "https://"), caFile
}

// archive writes a docker archive with two random images under upstream-style tags.
func archive(t *testing.T) string {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for _, tag := range []string{"registry.k8s.io/kube-apiserver:v1.34.4", "kinstall.local/probe:v1"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := name.ParseReference(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[r] = img
	}
	p := filepath.Join(t.TempDir(), "images.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPushCheckSave(t *testing.T) {
	ctx := context.Background()
	host, ca := testRegistry(t, "kinstall", "s3cret-pw")
	c := &Client{Registries: []Registry{{Host: host, CAFile: ca, Auth: Auth{Username: "kinstall", Password: "s3cret-pw"}}}}
	pushed, err := c.PushArchive(ctx, archive(t), host+"/k8s")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pushed, " ") != host+"/k8s/kube-apiserver:v1.34.4 "+host+"/k8s/probe:v1" && strings.Join(pushed, " ") != host+"/k8s/probe:v1 "+host+"/k8s/kube-apiserver:v1.34.4" {
		t.Fatalf("pushed %v", pushed)
	}
	if err := c.Check(ctx, pushed); err != nil {
		t.Fatalf("check: %v", err)
	}
	out := filepath.Join(t.TempDir(), "saved.tar")
	if err := c.Save(ctx, pushed, out); err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out) })
	if err != nil || len(m) != 2 {
		t.Fatalf("saved archive: %v %v", m, err)
	}
}

func TestCheckErrors(t *testing.T) {
	ctx := context.Background()
	host, ca := testRegistry(t, "kinstall", "s3cret-pw")
	good := Registry{Host: host, CAFile: ca, Auth: Auth{Username: "kinstall", Password: "s3cret-pw"}}
	c := &Client{Registries: []Registry{good}}
	if _, err := c.PushArchive(ctx, archive(t), host+"/k8s"); err != nil {
		t.Fatal(err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name string
		reg  Registry
		ref  string
		want string
	}{
		{"missing tag", good, host + "/k8s/kube-apiserver:v9.9.9", "not found in registry " + host},
		{"wrong password", Registry{Host: host, CAFile: ca, Auth: Auth{Username: "kinstall", Password: "WRONG-pw"}}, host + "/k8s/probe:v1", "refused the credentials (user kinstall)"},
		{"no credentials", Registry{Host: host, CAFile: ca}, host + "/k8s/probe:v1", "needs credentials"},
		{"unknown CA", Registry{Host: host, Auth: good.Auth}, host + "/k8s/probe:v1", "TLS"},
		{"unreachable", Registry{Host: closedAddr}, closedAddr + "/k8s/probe:v1", "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Client{Registries: []Registry{tt.reg}}).Check(ctx, []string{tt.ref})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.ref) {
				t.Fatalf("err = %v, want %q naming %s", err, tt.want, tt.ref)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("a password leaked into the error: %v", err)
			}
		})
	}
}
