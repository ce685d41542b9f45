package main

import (
	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// globalOptions are the flags every command shares.
type globalOptions struct {
	inventory string // -i
	config    string // -c
	verbose   bool   // -v
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "kinstall",
		Short: "Install and operate highly available Kubernetes clusters",
		Long: `kinstall turns hosts listed in an Ansible-style inventory (conf/hosts.ini) into a highly
available Kubernetes cluster described by conf/common.yaml, over SSH, in parallel.`,
		Example: `  kinstall check -i conf/hosts.ini -c conf/common.yaml
  kinstall plan
  kinstall ping
  kinstall install`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.inventory, "inventory", "i", "conf/hosts.ini", "Ansible INI inventory file")
	pf.StringVarP(&g.config, "config", "c", "conf/common.yaml", "cluster config file")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "show every command run on the hosts")

	root.AddCommand(
		newVersionCmd(),
		newInventoryCmd(g),
		newCheckCmd(g),
		newPlanCmd(g),
		newLabCmd(g),
		newPingCmd(g),
		newInstallCmd(g),
		newExecCmd(g),
		newUpgradeCmd(g),
		newEtcdCmd(g),
		newVerifyCmd(g),
		newKubeconfigCmd(g),
		newCertsCmd(g),
		newResetCmd(g),
		newRemoveNodeCmd(g),
		newAddNodeCmd(g),
		newArtifactsCmd(g),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print kinstall's version",
		Example: "  kinstall version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			cmd.Printf("kinstall %s\n", version)
		},
	}
}
