package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/lab"
)

// newLabRegistryCmd: the lab's private registry (TLS + basic auth), standing in for a site's.
func newLabRegistryCmd(open func(*cobra.Command) (*lab.Lab, error)) *cobra.Command {
	bundle := os.Getenv("KINSTALL_ARTIFACTS")
	kube := "v1.34.4"
	cmd := &cobra.Command{
		Use:   "registry up|stop|start|push",
		Short: "The lab's image registry (Debian's docker-registry with TLS and basic auth) on a host of its own",
		Example: `  kinstall lab registry up --bundle /var/tmp/kinstall-bundle
  kinstall lab registry stop`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := open(cmd)
			if err != nil {
				return err
			}
			var r *lab.Registry
			switch args[0] {
			case "up":
				if bundle == "" {
					return fmt.Errorf("--bundle DIR is required (the cache for the registry's packages)")
				}
				r, err = l.RegistryUp(cmd.Context(), bundle, cmd.ErrOrStderr())
			case "start":
				r, err = l.RegistryStart(cmd.Context())
			case "stop":
				return l.RegistryStop(cmd.Context())
			case "push":
				if r, err = l.RegistryUp(cmd.Context(), bundle, cmd.ErrOrStderr()); err != nil {
					return err
				}
				pushed, err := r.PushBundleImages(cmd.Context(), bundle, kube)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\n", strings.Join(pushed, ", "))
				return nil
			default:
				return fmt.Errorf("registry %s: use up, stop or start", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registry %s (user %s, password in %s/registry.password, CA %s)\n", r.Addr, r.Username, l.Dir, r.CAFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&bundle, "bundle", bundle, "the lab's bundle directory (caches the registry's packages; push reads its images)")
	cmd.Flags().StringVar(&kube, "kube", kube, "push: the Kubernetes version whose images go to ADDR/k8s")
	return cmd
}

// newLabMirrorCmd serves a file mirror in the upstream layout from the lab's bundle.
func newLabMirrorCmd(o *lab.Options) *cobra.Command {
	var bundle, dir, addr, kube, etcd, flannel string
	var writeConfig bool
	cmd := &cobra.Command{
		Use:     "mirror",
		Short:   "Serve the bundle's binaries in the official upstream layout with .sha256 files (a files_repo) until Ctrl-C",
		Example: "  kinstall lab mirror --bundle /var/tmp/kinstall-bundle --addr 172.30.0.1:8080",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := lab.MirrorFiles{Kube: strings.Split(kube, ","), Etcd: strings.Split(etcd, ","), Flannel: strings.Split(flannel, ","), Arch: "amd64"}
			if err := lab.FillMirror(bundle, dir, m); err != nil {
				return err
			}
			url, stop, err := lab.ServeMirror(cmd.Context(), dir, addr)
			if err != nil {
				return err
			}
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "files_repo: %s\n", url)
			if writeConfig {
				l, err := lab.Open(cmd.Context(), *o)
				if err != nil {
					return err
				}
				r, err := l.RegistryStart(cmd.Context())
				if err != nil {
					return err
				}
				if err := os.WriteFile(l.ConfigFile, []byte(l.OnlineConfig(url, r, r.Password, strings.Split(kube, ",")[0])), 0o600); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: files from %s, images from %s/k8s\n", l.ConfigFile, url, r.Addr)
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&bundle, "bundle", os.Getenv("KINSTALL_ARTIFACTS"), "the lab's bundle directory")
	cmd.Flags().StringVar(&dir, "dir", "/var/tmp/kinstall-mirror", "where the mirror's files are laid out")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address (the lab bridge's gateway makes it reachable from the hosts)")
	cmd.Flags().StringVar(&kube, "kube", "v1.34.4", "Kubernetes versions (comma-separated)")
	cmd.Flags().StringVar(&etcd, "etcd", "v3.6.14", "etcd versions")
	cmd.Flags().StringVar(&flannel, "flannel", "v0.28.10", "flannel versions")
	cmd.Flags().BoolVar(&writeConfig, "write-config", false, "write the lab's common.yaml for this mirror and the lab registry (which must be up)")
	return cmd
}
