package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// helloImage builds a one-binary image (FROM scratch, no registry) as a docker archive.
func helloImage(t *testing.T, e *env) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(e.fake)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fakeapi"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY fakeapi /fakeapi\nENTRYPOINT [\"/fakeapi\", \"-print\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", "kinstall.local/hello:v1", dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v %s", err, out)
	}
	tar := filepath.Join(dir, "hello.tar")
	if out, err := exec.Command("docker", "save", "-o", tar, "kinstall.local/hello:v1").CombinedOutput(); err != nil {
		t.Fatalf("docker save: %v %s", err, out)
	}
	return tar
}

// containerd from the bundle's packages on every Kubernetes node, configured for what the host
// is (a lab host is a container: no CAP_SYS_RESOURCE), runs a container from an imported image;
// a re-run changes nothing.
func TestContainerRuntime(t *testing.T) {
	e := lab_(t)
	r := e.kinstall(t, "install", "--only", "preflight,container-runtime")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	t.Logf("container runtime on %d hosts in %s", len(nodes), r.took)
	tar := helloImage(t, e)
	var wg sync.WaitGroup
	for _, h := range nodes {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			ctr := e.lab.Name + "-lab-" + h
			if out, err := exec.Command("docker", "cp", tar, ctr+":/root/hello.tar").CombinedOutput(); err != nil {
				t.Errorf("%s: docker cp: %v %s", h, err, out)
				return
			}
			out, err := e.lab.Exec(context.Background(), h, "ctr -n k8s.io images import /root/hello.tar >/dev/null && ctr -n k8s.io run --rm kinstall.local/hello:v1 hello-"+h)
			if err != nil || !strings.Contains(out, "hello from") {
				t.Errorf("%s: container did not run: %v\n%s", h, err, out)
			}
		}(h)
	}
	wg.Wait()
	cfg := e.sh(t, "node1", "cat /etc/containerd/config.toml")
	// Lab hosts are containers without CAP_SYS_RESOURCE: the config must say so.
	if !strings.Contains(cfg, "restrict_oom_score_adj = true") {
		t.Errorf("config does not restrict OOM score changes on a host without CAP_SYS_RESOURCE:\n%s", cfg)
	}
	again := e.kinstall(t, "install", "--only", "preflight,container-runtime")
	if again.code != 0 {
		t.Fatalf("re-run (%d):\n%s", again.code, again.out)
	}
	recapUnchanged(t, again.out, nodes)
}
