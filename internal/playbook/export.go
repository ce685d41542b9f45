package playbook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/export"
	"github.com/kinstall/kinstall/roles/preflight"
)

// ExportOptions are `kinstall artifacts export`'s.
type ExportOptions struct {
	Output   string   // bundle.tar, or a directory
	Arches   []string // empty: the arches of the inventory's hosts (asks them)
	Packages bool     // download the distribution packages on one host per platform
}

// Export writes an offline bundle with everything this common.yaml needs, fetched and verified
// from the sources an online install uses (files_repo or upstream, kube_image_repo with its
// credentials): etcd, Kubernetes and flannel binaries per arch, the images as docker archives,
// the distribution packages for the hosts' platforms, and SHA256SUMS. `--artifacts` installs
// from it with no network.
func (s *Session) Export(ctx context.Context, o ExportOptions) error {
	if s.Artifacts.BundleDir != "" {
		return fmt.Errorf("export reads the online sources (files_repo, kube_image_repo): drop --artifacts %s", s.Artifacts.BundleDir)
	}
	if o.Output == "" {
		return fmt.Errorf("-o FILE.tar or DIR is required")
	}
	arches := o.Arches
	var phases []runner.Phase
	if len(arches) == 0 || o.Packages {
		phases = append(phases, runner.Phase{Name: "export/facts", Hosts: s.Cluster.RoleHosts(), Tasks: preflight.GatherFacts(), Critical: true})
	}
	dir := o.Output
	tarball := strings.HasSuffix(o.Output, ".tar")
	if tarball {
		dir = o.Output + ".d"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if o.Packages {
		r, err := export.New(s.Env)
		if err != nil {
			return err
		}
		r.Dest = dir
		phases = append(phases, runner.Phase{Name: "export/packages", Hosts: s.Cluster.RoleHosts(), Tasks: r.Tasks(), Lockstep: true, Critical: true})
	}
	if len(phases) > 0 {
		if err := s.Run(ctx, phases); err != nil {
			return err
		}
	}
	if len(arches) == 0 {
		arches = s.hostArches()
	}
	if err := s.exportFiles(ctx, dir, arches); err != nil {
		return err
	}
	if err := s.exportImages(ctx, dir, arches); err != nil {
		return err
	}
	if err := artifacts.WriteSums(dir); err != nil {
		return err
	}
	if tarball {
		if err := artifacts.Tar(dir, o.Output); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.Out, "bundle: %s (arches %s)\n", o.Output, strings.Join(arches, ", "))
	return nil
}

// hostArches are the Go arches the run's hosts reported.
func (s *Session) hostArches() []string {
	seen := map[string]bool{}
	for _, ch := range s.Cluster.RoleHosts() {
		if h := s.Runner.Host(ch.Name); h != nil {
			if a, err := artifacts.GoArch(h.Fact(preflight.FactArch)); err == nil {
				seen[a] = true
			}
		}
	}
	var out []string
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func (s *Session) exportFiles(ctx context.Context, dir string, arches []string) error {
	cfg := s.Cluster.Config
	for _, arch := range arches {
		for _, c := range [][2]string{{"etcd", cfg.EtcdVersion}, {"kubernetes", cfg.KubeVersion}, {"flannel", cfg.FlannelVersion}} {
			set, err := s.Artifacts.Resolve(ctx, c[0], c[1], arch)
			if err != nil {
				return err
			}
			if err := artifacts.AddSet(dir, set); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "%s %s linux/%s: verified\n", c[0], c[1], arch)
		}
	}
	return nil
}

// exportImages saves the images in the layout the kubelet phase imports:
// kube-images-V-linux-ARCH/{control-plane.tar,node.tar,images.txt}.
func (s *Session) exportImages(ctx context.Context, dir string, arches []string) error {
	cfg := s.Cluster.Config
	cp, node, err := artifacts.KubeImages(cfg.ImageRepo(), cfg.KubeVersion)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(cfg.VerifyImage, "kinstall.local/") {
		node = append(node, cfg.VerifyImage)
	}
	client := preflight.RegistryClient(cfg)
	for _, arch := range arches {
		out := filepath.Join(dir, "kube-images-"+cfg.KubeVersion+"-linux-"+arch)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		client.Platform = "linux/" + arch
		var list strings.Builder
		for file, refs := range map[string][]string{"control-plane.tar": cp, "node.tar": node} {
			if err := client.Save(ctx, refs, filepath.Join(out, file)); err != nil {
				return fmt.Errorf("export images (kube_image_repo %s): %w", cfg.ImageRepo(), err)
			}
			for _, r := range refs {
				fmt.Fprintf(&list, "%s %s\n", r, file)
			}
		}
		lines := strings.Split(strings.TrimSpace(list.String()), "\n")
		sort.Strings(lines)
		if err := os.WriteFile(filepath.Join(out, "images.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(s.Out, "images %s linux/%s: %d saved\n", cfg.KubeVersion, arch, len(cp)+len(node))
	}
	return nil
}
