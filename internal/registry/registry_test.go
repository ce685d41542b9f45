package registry

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	user     = "kinstall"
	password = "s3cret-pw-1234"
	token    = "tok-abcdef-5678"
)

// server is a real registry (go-containerregistry's, in memory) behind an auth middleware.
type server struct {
	host, ca string
	// deny, when set, answers 404 to the requests it matches (a layer lost by the registry).
	deny atomic.Pointer[func(*http.Request) bool]
}

// auth configures the middleware: which credentials pass and which challenge a 401 carries.
type auth struct {
	user, pass, token string
	bearerChallenge   bool
}

func newServer(t *testing.T, a auth, useTLS bool) *server {
	t.Helper()
	s := &server{}
	reg := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allows(r) {
			a.challenge(w, r)
			return
		}
		if deny := s.deny.Load(); deny != nil && (*deny)(r) {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		reg.ServeHTTP(w, r)
	})
	if !useTLS {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		s.host = strings.TrimPrefix(srv.URL, "http://")
		return s
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the TLS cases' handshake errors are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.host = strings.TrimPrefix(srv.URL, "https://")
	s.ca = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(s.ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (a auth) allows(r *http.Request) bool {
	if a.token != "" && r.Header.Get("Authorization") == "Bearer "+a.token {
		return true
	}
	u, p, ok := r.BasicAuth()
	return a.user != "" && ok && u == a.user && p == a.pass
}

func (a auth) challenge(w http.ResponseWriter, r *http.Request) {
	if a.bearerChallenge {
		// The realm is never called: a configured token replaces the exchange.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="https://%s/token",service="test"`, r.Host))
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
	}
	http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
}

func (s *server) registry() Registry {
	return Registry{Host: s.host, CAFile: s.ca, Auth: Auth{Username: user, Password: password}}
}

// Upstream-style tags of the archive; LoadManifest lists them sorted.
var archiveTagsInOrder = []string{"kinstall.local/probe:v1", "registry.k8s.io/kube-apiserver:v1.34.4"}

// writeTestArchive writes a docker archive with one random image per tag and returns the
// config digest of each tag's image.
func writeTestArchive(t *testing.T) (string, map[string]v1.Hash) {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	configs := map[string]v1.Hash{}
	for _, tag := range archiveTagsInOrder {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		refs[mustRef(t, tag)] = img
		if configs[tag], err = img.ConfigName(); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(t.TempDir(), "images.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		t.Fatal(err)
	}
	return p, configs
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushed fills a server with the test archive under host/k8s.
func pushed(t *testing.T, s *server) []string {
	t.Helper()
	archive, _ := writeTestArchive(t)
	refs, err := (&Client{Registries: []Registry{s.registry()}}).PushArchive(context.Background(), archive, s.host+"/k8s/")
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

func TestPushCheckSave(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, auth{user: user, pass: password}, true)
	c := &Client{Registries: []Registry{s.registry()}}
	archive, configs := writeTestArchive(t)

	refs, err := c.PushArchive(ctx, archive, s.host+"/k8s")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{s.host + "/k8s/probe:v1", s.host + "/k8s/kube-apiserver:v1.34.4"}
	if !reflect.DeepEqual(refs, want) {
		t.Fatalf("pushed %v, want %v (archive order)", refs, want)
	}
	if err := c.Check(ctx, refs); err != nil {
		t.Fatalf("check: %v", err)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "saved.tar")
	if err := c.Save(ctx, refs, out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("saved archive: %v %v", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left beside the archive: %v", entries)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out) })
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	if want := []string{refs[1], refs[0]}; !reflect.DeepEqual(tags, want) { // sorted by the writer
		t.Fatalf("saved tags %v, want %v", tags, want)
	}
	// The saved images are the pushed ones: same config as in the source archive.
	for i, src := range archiveTagsInOrder {
		tag := mustRef(t, refs[i]).(name.Tag)
		img, err := tarball.ImageFromPath(out, &tag)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := img.ConfigName(); got != configs[src] {
			t.Errorf("%s: config %s, want %s", refs[i], got, configs[src])
		}
	}
}

func TestCheckErrors(t *testing.T) {
	s := newServer(t, auth{user: user, pass: password}, true)
	pushed(t, s)
	good := s.registry()
	closed := closedAddr(t)
	badPEM := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(badPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missingPEM := filepath.Join(t.TempDir(), "missing.pem")
	probe := s.host + "/k8s/probe:v1"
	with := func(f func(*Registry)) Registry { r := good; f(&r); return r }

	tests := []struct {
		name string
		reg  Registry
		ref  string
		want string
	}{
		{"missing tag", good, s.host + "/k8s/kube-apiserver:v9.9.9",
			"image " + s.host + "/k8s/kube-apiserver:v9.9.9: not found in registry " + s.host},
		{"missing repository", good, s.host + "/nope/pause:3.10.1",
			"image " + s.host + "/nope/pause:3.10.1: not found in registry " + s.host},
		{"wrong password", with(func(r *Registry) { r.Auth.Password = "WRONG-" + password }), probe,
			"image " + probe + ": registry " + s.host + " refused the credentials (user kinstall)"},
		{"wrong user", with(func(r *Registry) { r.Auth.Username = "someone" }), probe,
			"image " + probe + ": registry " + s.host + " refused the credentials (user someone)"},
		{"no credentials", with(func(r *Registry) { r.Auth = Auth{} }), probe,
			"image " + probe + ": registry " + s.host + " needs credentials (set containerd_registry_auth)"},
		{"no ca_file", with(func(r *Registry) { r.CAFile = "" }), probe,
			"image " + probe + ": registry " + s.host + ": TLS: certificate signed by unknown authority (set the registry's ca_file)"},
		{"ca_file missing", with(func(r *Registry) { r.CAFile = missingPEM }), probe,
			"image " + probe + ": registry " + s.host + ": ca_file: open " + missingPEM + ": no such file or directory"},
		{"ca_file not PEM", with(func(r *Registry) { r.CAFile = badPEM }), probe,
			"image " + probe + ": registry " + s.host + ": ca_file " + badPEM + " holds no PEM certificate"},
		{"unreachable", Registry{Host: closed, Auth: good.Auth}, closed + "/k8s/probe:v1",
			"image " + closed + "/k8s/probe:v1: registry " + closed + " unreachable: connection refused"},
		{"not a reference", good, "UPPER/Case:bad tag", "image UPPER/Case:bad tag: not an image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Client{Registries: []Registry{tt.reg}}).Check(context.Background(), []string{tt.ref})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
			noSecrets(t, err, tt.reg.Auth, good.Auth)
		})
	}
}

// noSecrets fails when any password or token, or a basic-auth value, is in err.
func noSecrets(t *testing.T, err error, auths ...Auth) {
	t.Helper()
	for _, a := range auths {
		for _, s := range []string{a.Password, a.Token, base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))} {
			if s != "" && s != "Og==" && strings.Contains(err.Error(), s) {
				t.Errorf("a secret leaked into the error: %v", err)
			}
		}
	}
}

// closedAddr is a 127.0.0.1 port that nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheckAggregatesSorted(t *testing.T) {
	s := newServer(t, auth{user: user, pass: password}, true)
	refs := pushed(t, s)
	c := &Client{Registries: []Registry{s.registry()}}
	b, a := s.host+"/k8s/b:v1", s.host+"/k8s/a:v1"
	err := c.Check(context.Background(), []string{b, refs[0], a, b})
	want := "2 images failed:\n" +
		"  - image " + a + ": not found in registry " + s.host + "\n" +
		"  - image " + b + ": not found in registry " + s.host
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestCheckCancelled(t *testing.T) {
	s := newServer(t, auth{user: user, pass: password}, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := (&Client{Registries: []Registry{s.registry()}}).Check(ctx, []string{s.host + "/k8s/probe:v1"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestBearerToken(t *testing.T) {
	for _, bearerChallenge := range []bool{false, true} {
		t.Run(fmt.Sprintf("bearer challenge %v", bearerChallenge), func(t *testing.T) {
			s := newServer(t, auth{user: user, pass: password, token: token, bearerChallenge: bearerChallenge}, true)
			probe := s.host + "/k8s/probe:v1"
			if !bearerChallenge { // a Bearer challenge needs a token for the push too
				pushed(t, s)
			} else if _, err := pushWithToken(t, s); err != nil {
				t.Fatal(err)
			}
			ok := Registry{Host: s.host, CAFile: s.ca, Auth: Auth{Token: token}}
			if err := (&Client{Registries: []Registry{ok}}).Check(context.Background(), []string{probe}); err != nil {
				t.Fatalf("check with the token: %v", err)
			}
			bad := ok
			bad.Auth.Token = "WRONG-" + token
			err := (&Client{Registries: []Registry{bad}}).Check(context.Background(), []string{probe})
			want := "image " + probe + ": registry " + s.host + " refused the credentials (token)"
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
			noSecrets(t, err, bad.Auth, ok.Auth)
		})
	}
}

func pushWithToken(t *testing.T, s *server) ([]string, error) {
	archive, _ := writeTestArchive(t)
	c := &Client{Registries: []Registry{{Host: s.host, CAFile: s.ca, Auth: Auth{Token: token}}}}
	return c.PushArchive(context.Background(), archive, s.host+"/k8s")
}

func TestPlainHTTP(t *testing.T) {
	s := newServer(t, auth{user: user, pass: password}, false)
	reg := Registry{Host: s.host, PlainHTTP: true, Auth: Auth{Username: user, Password: password}}
	c := &Client{Registries: []Registry{reg}}
	archive, _ := writeTestArchive(t)
	refs, err := c.PushArchive(context.Background(), archive, s.host+"/k8s")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background(), refs); err != nil {
		t.Fatal(err)
	}
}

func TestSavePlatform(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, auth{user: user, pass: password}, true)
	ref := s.host + "/k8s/pause:3.10.1"
	configs := pushIndex(t, s, ref, "amd64", "arm64")
	for _, tt := range []struct{ platform, want string }{{"", "amd64"}, {"linux/arm64", "arm64"}} {
		t.Run(tt.want, func(t *testing.T) {
			c := &Client{Registries: []Registry{s.registry()}, Platform: tt.platform}
			out := filepath.Join(t.TempDir(), "pause.tar")
			if err := c.Save(ctx, []string{ref}, out); err != nil {
				t.Fatal(err)
			}
			tag := mustRef(t, ref).(name.Tag)
			img, err := tarball.ImageFromPath(out, &tag)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := img.ConfigName(); got != configs[tt.want] {
				t.Errorf("saved config %s, want the %s image's %s", got, tt.want, configs[tt.want])
			}
		})
	}
	c := &Client{Registries: []Registry{s.registry()}, Platform: "linux/s390x"}
	err := c.Save(ctx, []string{ref}, filepath.Join(t.TempDir(), "x.tar"))
	if err == nil || !strings.HasPrefix(err.Error(), "image "+ref+": registry "+s.host+": ") {
		t.Errorf("save of a platform the index lacks: %v", err)
	}
}

// pushIndex pushes a multi-platform index and returns each arch's image config digest.
func pushIndex(t *testing.T, s *server, ref string, arches ...string) map[string]v1.Hash {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	configs := map[string]v1.Hash{}
	for _, arch := range arches {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		configs[arch], _ = img.ConfigName()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	opts, err := options(context.Background(), s.registry(), checkBackoff)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(mustRef(t, ref), idx, opts...); err != nil {
		t.Fatal(err)
	}
	return configs
}

func TestSaveErrors(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, auth{user: user, pass: password}, true)
	refs := pushed(t, s)
	layer := layerDigest(t, s, refs[1])
	tests := []struct {
		name string
		refs []string
		deny func(*http.Request) bool
		reg  Registry
		want string
	}{
		{"missing tag", []string{refs[0], s.host + "/k8s/etcd:3.6.6-0"}, nil, s.registry(),
			"image " + s.host + "/k8s/etcd:3.6.6-0: not found in registry " + s.host},
		{"digest", []string{s.host + "/k8s/probe@" + layer}, nil, s.registry(),
			"image " + s.host + "/k8s/probe@" + layer + ": save needs a tag, not a digest"},
		{"layer lost", refs, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/blobs/"+layer) }, s.registry(),
			"save images to "},
		{"wrong password", refs, nil, Registry{Host: s.host, CAFile: s.ca, Auth: Auth{Username: user, Password: "WRONG-" + password}},
			"image " + refs[0] + ": registry " + s.host + " refused the credentials (user kinstall)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.deny != nil {
				s.deny.Store(&tt.deny)
				defer s.deny.Store(nil)
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "images.tar")
			err := (&Client{Registries: []Registry{tt.reg}}).Save(ctx, tt.refs, out)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant  %s...", err, tt.want)
			}
			if tt.deny != nil && !strings.HasSuffix(err.Error(), ": image "+refs[1]+": not found in registry "+s.host) {
				t.Errorf("a layer failure does not name the image: %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a failed save left files: %v", entries)
			}
			noSecrets(t, err, tt.reg.Auth)
		})
	}
}

// layerDigest is the digest of the first layer of a pushed image.
func layerDigest(t *testing.T, s *server, ref string) string {
	t.Helper()
	opts, err := options(context.Background(), s.registry(), checkBackoff)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(mustRef(t, ref), opts...)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatal(layers, err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestPushArchiveErrors(t *testing.T) {
	s := newServer(t, auth{user: user, pass: password}, true)
	archive, _ := writeTestArchive(t)
	bad := Registry{Host: s.host, CAFile: s.ca, Auth: Auth{Username: user, Password: "WRONG-" + password}}
	_, err := (&Client{Registries: []Registry{bad}}).PushArchive(context.Background(), archive, s.host+"/k8s")
	want := "image " + s.host + "/k8s/probe:v1: registry " + s.host + " refused the credentials (user kinstall)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	noSecrets(t, err, bad.Auth)

	notTar := filepath.Join(t.TempDir(), "x.tar")
	if err := os.WriteFile(notTar, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Client{}).PushArchive(context.Background(), notTar, s.host+"/k8s"); err == nil || !strings.HasPrefix(err.Error(), notTar+": not a docker archive") {
		t.Errorf("err = %v", err)
	}
}

func TestNetCause(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}}, "lookup registry.invalid: no such host"},
		{fmt.Errorf("Get %q: %w", "https://h/v2/", context.DeadlineExceeded), "timeout"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, "timeout"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "connection closed by the registry"},
	}
	for _, tt := range tests {
		if got, ok := netCause(tt.err); !ok || got != tt.want {
			t.Errorf("netCause(%v) = %q, %v; want %q", tt.err, got, ok, tt.want)
		}
	}
	if _, ok := netCause(errors.New("manifest is not valid JSON")); ok {
		t.Error("a non-network error classified as unreachable")
	}
}

func TestCleanRedacts(t *testing.T) {
	c := &Client{Registries: []Registry{{Host: "h", Auth: Auth{Username: "u", Password: password}}, {Host: "k", Auth: Auth{Token: token}}}}
	basic := base64.StdEncoding.EncodeToString([]byte("u:" + password))
	err := c.clean(fmt.Errorf("x %s y %s z Basic %s", password, token, basic))
	if want := "x <redacted> y <redacted> z Basic <redacted>"; err.Error() != want {
		t.Errorf("clean = %q, want %q", err, want)
	}
	wrapped := fmt.Errorf("check: %w", context.Canceled)
	if got := c.clean(wrapped); !errors.Is(got, context.Canceled) {
		t.Errorf("clean lost the chain of a clean error: %v", got)
	}
}
