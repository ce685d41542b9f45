package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/playbook"
)

func newArtifactsCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifacts",
		Short: "Offline bundles: export everything an install needs into one file",
	}
	cmd.AddCommand(newArtifactsExportCmd(g))
	return cmd
}

func newArtifactsExportCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var output, arches string
	var noPackages bool
	cmd := &cobra.Command{
		Use:   "export -o bundle.tar",
		Short: "Download and verify everything common.yaml needs into one offline bundle (like kk artifact export)",
		Long: `export runs on a machine that reaches the sources an online install uses (files_repo or the
upstream hosts, kube_image_repo with its credentials) and writes one bundle: etcd, Kubernetes
and flannel binaries for each arch, every image as docker archives, the distribution packages
of the inventory's host platforms (downloaded with their dependencies on one host of each
platform, through its own package mirror) and a SHA256SUMS manifest. Every file is verified as
an install verifies it. Then 'kinstall install --artifacts bundle.tar' needs no network.`,
		Example: `  kinstall artifacts export -o bundle.tar
  kinstall artifacts export -o bundle.tar --arch amd64,arm64 --no-packages`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			o := playbook.ExportOptions{Output: output, Packages: !noPackages}
			if arches != "" {
				o.Arches = strings.Split(arches, ",")
			}
			return s.Export(cmd.Context(), o)
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVarP(&output, "output", "o", "", "bundle file (.tar) or directory")
	cmd.Flags().StringVar(&arches, "arch", "", "arches to export (default: those the inventory's hosts report)")
	cmd.Flags().BoolVar(&noPackages, "no-packages", false, "leave out the distribution packages (the hosts keep using their mirror)")
	return cmd
}
