// Package artifacts resolves a component's version to verified files on the taskbox: from a local
// bundle directory (air-gapped sites, the lab) or from a pinned upstream URL, downloaded once and
// checked against the sha256 in versions.yaml. Roles push the resolved files to the hosts; hosts
// never download anything themselves.
package artifacts

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed versions.yaml
var versionsYAML []byte

// Component is one entry of versions.yaml.
type Component struct {
	URL   string   `yaml:"url"`
	Files []string `yaml:"files"`
	// An archive (etcd, flannel): version -> arch -> sha256 of the download.
	SHA256 map[string]map[string]string `yaml:"sha256"`
	// Files downloaded one by one ({file} in URL: Kubernetes' binaries):
	// version -> arch -> file -> sha256.
	FileSHA256 map[string]map[string]map[string]string `yaml:"file_sha256"`
}

// perFile says the component's files are downloaded one by one.
func (c Component) perFile() bool { return strings.Contains(c.URL, "{file}") }

// Versions lists the pinned versions.
func (c Component) Versions() []string {
	var out []string
	for v := range c.SHA256 {
		out = append(out, v)
	}
	for v := range c.FileSHA256 {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Manifest is versions.yaml: component name -> pins.
type Manifest map[string]Component

// DefaultManifest returns the pins built into kinstall.
func DefaultManifest() Manifest {
	var m Manifest
	if err := yaml.Unmarshal(versionsYAML, &m); err != nil {
		panic("artifacts: versions.yaml: " + err.Error()) // embedded; a test parses it
	}
	return m
}

// Set is a component's files for one version and arch, verified, on the taskbox.
type Set struct {
	Component, Version, Arch string
	Dir                      string            // holds the files
	Files                    map[string]string // file name -> local path
	SHA256                   map[string]string // file name -> sha256 (hex)
}

// Source resolves artifacts. With BundleDir set only the bundle is used (nothing is downloaded).
type Source struct {
	BundleDir string
	CacheDir  string // downloads and unpacked files; default ~/.cache/kinstall/artifacts
	Manifest  Manifest
	Client    *http.Client

	// FilesRepo is a file mirror holding the upstream paths under its base (Kubespray's
	// files_repo): https://dl.k8s.io/release/X is fetched from FilesRepo/dl.k8s.io/release/X.
	FilesRepo string
	// TrustMirrorSums takes each file's sha256 from the .sha256 file beside it on FilesRepo
	// (or upstream) instead of the pins: the operator's choice for a mirror of their own builds.
	TrustMirrorSums bool
	// ExtraSums are sha256s the operator vouches for, by downloaded file name; they win over
	// the pins.
	ExtraSums map[string]string

	mu   sync.Mutex
	sets map[string]*Set
	errs map[string]error
}

// Resolve returns the verified files of component at version for a Go arch (amd64, arm64). It
// is safe for concurrent use: each set is fetched and verified once per Source.
func (s *Source) Resolve(ctx context.Context, component, version, arch string) (*Set, error) {
	key := component + "-" + version + "-linux-" + arch
	s.mu.Lock()
	defer s.mu.Unlock() // one resolution at a time: downloads go once, not per host
	if set, ok := s.sets[key]; ok {
		return set, nil
	}
	if err, ok := s.errs[key]; ok {
		return nil, err
	}
	var set *Set
	var err error
	if s.BundleDir != "" {
		set, err = s.fromBundle(component, version, arch)
	} else {
		set, err = s.download(ctx, component, version, arch)
	}
	if s.sets == nil {
		s.sets, s.errs = map[string]*Set{}, map[string]error{}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.errs[key] = err
		}
		return nil, err
	}
	s.sets[key] = set
	return set, nil
}

func (s *Source) manifest() Manifest {
	if s.Manifest != nil {
		return s.Manifest
	}
	return DefaultManifest()
}

// fromBundle checks DIR/<component>-<version>-linux-<arch>/ against DIR/SHA256SUMS.
func (s *Source) fromBundle(component, version, arch string) (*Set, error) {
	comp, ok := s.manifest()[component]
	if !ok {
		return nil, fmt.Errorf("artifacts: unknown component %q", component)
	}
	name := component + "-" + version + "-linux-" + arch
	dir := filepath.Join(s.BundleDir, name)
	sums, err := readSums(filepath.Join(s.BundleDir, "SHA256SUMS"))
	if err != nil {
		return nil, fmt.Errorf("artifacts: bundle %s: %w", s.BundleDir, err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("artifacts: %s %s for linux/%s is not in the bundle %s (it has: %s); add it with 'make bundle' or use another version",
			component, version, arch, s.BundleDir, strings.Join(bundleVersions(s.BundleDir, component, arch), ", "))
	}
	set := &Set{Component: component, Version: version, Arch: arch, Dir: dir, Files: map[string]string{}, SHA256: map[string]string{}}
	for _, f := range comp.Files {
		p := filepath.Join(dir, f)
		want, ok := sums[name+"/"+f]
		if !ok {
			return nil, fmt.Errorf("artifacts: bundle %s: SHA256SUMS has no entry for %s/%s", s.BundleDir, name, f)
		}
		got, err := fileSHA256(p)
		if err != nil {
			return nil, fmt.Errorf("artifacts: bundle: %w", err)
		}
		if got != want {
			return nil, fmt.Errorf("artifacts: bundle file %s is corrupt: sha256 %s, SHA256SUMS says %s", p, got, want)
		}
		set.Files[f], set.SHA256[f] = p, got
	}
	return set, nil
}

func bundleVersions(dir, component, arch string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, component+"-*-linux-"+arch))
	var out []string
	for _, m := range matches {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), component+"-"), "-linux-"+arch)
		out = append(out, v)
	}
	if len(out) == 0 {
		return []string{"nothing"}
	}
	sort.Strings(out)
	return out
}

// download fetches the component's files once into the cache, each verified against its
// sha256 (pin, operator's sum or trusted mirror sum), and unpacks archives.
func (s *Source) download(ctx context.Context, component, version, arch string) (*Set, error) {
	comp, ok := s.manifest()[component]
	if !ok {
		return nil, fmt.Errorf("artifacts: unknown component %q", component)
	}
	if comp.URL == "" {
		return nil, fmt.Errorf("artifacts: %s %s comes only from a bundle (--artifacts DIR or 'kinstall artifacts export')", component, version)
	}
	cache, err := s.cacheDir()
	if err != nil {
		return nil, err
	}
	name := component + "-" + version + "-linux-" + arch
	dir := filepath.Join(cache, name)
	set := &Set{Component: component, Version: version, Arch: arch, Dir: dir, Files: map[string]string{}, SHA256: map[string]string{}}
	if comp.perFile() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("artifacts: %w", err)
		}
		for _, f := range comp.Files {
			url := s.URL(comp, version, arch, f)
			want, err := s.wantSum(ctx, comp, component, version, arch, f, url)
			if err != nil {
				return nil, err
			}
			p := filepath.Join(dir, f)
			if err := s.fetchOnce(ctx, url, p, want); err != nil {
				return nil, err
			}
			set.Files[f], set.SHA256[f] = p, want.sum
		}
		return set, nil
	}
	url := s.URL(comp, version, arch, "")
	want, err := s.wantSum(ctx, comp, component, version, arch, "", url)
	if err != nil {
		return nil, err
	}
	archive := filepath.Join(cache, path.Base(url))
	if err := s.fetchOnce(ctx, url, archive, want); err != nil {
		return nil, err
	}
	if err := unpack(archive, dir, comp.Files); err != nil {
		return nil, fmt.Errorf("artifacts: unpack %s: %w", archive, err)
	}
	for _, f := range comp.Files {
		p := filepath.Join(dir, f)
		sum, err := fileSHA256(p)
		if err != nil {
			return nil, fmt.Errorf("artifacts: %w", err)
		}
		set.Files[f], set.SHA256[f] = p, sum
	}
	return set, nil
}

func (s *Source) cacheDir() (string, error) {
	cache := s.CacheDir
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("artifacts: no cache directory: %w", err)
		}
		cache = filepath.Join(base, "kinstall", "artifacts")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("artifacts: %w", err)
	}
	return cache, nil
}

// URL is where a component's file (or archive, file "") is fetched from: the upstream URL, or
// its path under FilesRepo.
func (s *Source) URL(comp Component, version, arch, file string) string {
	u := strings.NewReplacer("{version}", version, "{arch}", arch, "{file}", file).Replace(comp.URL)
	if s.FilesRepo == "" {
		return u
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	return strings.TrimRight(s.FilesRepo, "/") + "/" + rest
}

// sum is a wanted sha256 and who vouches for it (for messages).
type sum struct{ sum, origin string }

// wantSum finds the sha256 a download must have: the operator's files_sha256, else the
// trusted .sha256 beside it, else kinstall's pin; none is a refusal that says what to do.
func (s *Source) wantSum(ctx context.Context, comp Component, component, version, arch, file, url string) (sum, error) {
	if v, ok := s.ExtraSums[path.Base(url)]; ok {
		return sum{v, "files_sha256 in common.yaml"}, nil
	}
	if s.TrustMirrorSums {
		v, err := s.fetchSum(ctx, url+".sha256")
		if err != nil {
			return sum{}, err
		}
		return sum{v, url + ".sha256 (files_checksums: mirror)"}, nil
	}
	pin := comp.SHA256[version][arch]
	if file != "" {
		pin = comp.FileSHA256[version][arch][file]
	}
	if pin != "" {
		return sum{pin, "kinstall's pin"}, nil
	}
	what := component
	if file != "" {
		what = file
	}
	return sum{}, fmt.Errorf("artifacts: no pinned sha256 for %s %s linux/%s (pinned versions: %s): pick a pinned version, give the sha256 of %s in common.yaml files_sha256, trust your mirror's .sha256 files (files_checksums: mirror), or use --artifacts with a bundle that has it",
		what, version, arch, strings.Join(comp.Versions(), ", "), path.Base(url))
}

// fetchSum reads a .sha256 file (the hash, optionally followed by a file name).
func (s *Source) fetchSum(ctx context.Context, url string) (string, error) {
	body, err := s.get(ctx, url)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 4096))
	if err != nil {
		return "", fmt.Errorf("artifacts: download %s: %w", url, err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f[0]) != 64 || strings.Trim(strings.ToLower(f[0]), "0123456789abcdef") != "" {
		return "", fmt.Errorf("artifacts: %s does not hold a sha256", url)
	}
	return strings.ToLower(f[0]), nil
}

// fetchOnce downloads url to dest unless dest already has the wanted sha256.
func (s *Source) fetchOnce(ctx context.Context, url, dest string, want sum) error {
	if got, err := fileSHA256(dest); err == nil && got == want.sum {
		return nil
	}
	return s.fetch(ctx, url, dest, want)
}

func (s *Source) get(ctx context.Context, url string) (io.ReadCloser, error) {
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("artifacts: download %s: %w (unreachable? air-gapped sites use --artifacts DIR)", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("artifacts: download %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

func (s *Source) fetch(ctx context.Context, url, dest string, want sum) error {
	body, err := s.get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".download-*")
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
		tmp.Close()
		return fmt.Errorf("artifacts: download %s: %w", url, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.sum {
		return fmt.Errorf("artifacts: %s has sha256 %s, but %s says %s: refusing it", url, got, want.origin, want.sum)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return os.Rename(tmp.Name(), dest)
}

// unpack extracts the named files (by base name, wherever they sit in the archive) into dir.
func unpack(archive, dir string, files []string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, name := range files {
		wanted[name] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	found := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		base := path.Base(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || !wanted[base] {
			continue
		}
		if err := writeFrom(tr, filepath.Join(dir, base), 0o755); err != nil {
			return err
		}
		found[base] = true
	}
	for _, name := range files {
		if !found[name] {
			return fmt.Errorf("%s is not in the archive", name)
		}
	}
	return nil
}

func readSums(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 {
			sums[strings.TrimPrefix(strings.TrimPrefix(fields[1], "*"), "./")] = fields[0]
		}
	}
	return sums, sc.Err()
}

// FileSHA256 is a file's sha256 in hex.
func FileSHA256(p string) (string, error) { return fileSHA256(p) }

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// GoArch maps `uname -m` to the Go/release arch name.
func GoArch(unameM string) (string, error) {
	switch strings.TrimSpace(unameM) {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("unsupported architecture %q (kinstall supports x86_64 and aarch64)", unameM)
}

// Packages returns the distribution packages the bundle holds for a platform such as
// "debian-12-amd64" (DIR/debs/<platform>/*.deb), each checked against SHA256SUMS. ok is false
// when there is no bundle or it has none for that platform: the host then uses its own
// package mirror.
func (s *Source) Packages(platform string) (files []string, ok bool, err error) {
	if s.BundleDir == "" {
		return nil, false, nil
	}
	dir := filepath.Join(s.BundleDir, "debs", platform)
	matches, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(matches) == 0 {
		return nil, false, nil
	}
	sums, err := readSums(filepath.Join(s.BundleDir, "SHA256SUMS"))
	if err != nil {
		return nil, false, fmt.Errorf("artifacts: bundle %s: %w", s.BundleDir, err)
	}
	sort.Strings(matches)
	for _, m := range matches {
		rel, _ := filepath.Rel(s.BundleDir, m)
		got, err := fileSHA256(m)
		if err != nil {
			return nil, false, fmt.Errorf("artifacts: %w", err)
		}
		if want, listed := sums[filepath.ToSlash(rel)]; !listed || got != want {
			return nil, false, fmt.Errorf("artifacts: bundle package %s does not match SHA256SUMS (re-run make bundle)", m)
		}
	}
	return matches, true, nil
}
