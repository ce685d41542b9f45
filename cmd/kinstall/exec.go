package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newExecCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var become bool
	cmd := &cobra.Command{
		Use:   "exec [--become] [--limit HOSTS] [--] COMMAND...",
		Short: "Run an ad-hoc shell command on hosts, in parallel",
		Long: `exec runs one shell command on every host (or those named by --limit) through the same
connections install uses, and prints each host's output grouped under its name. Like
'ansible all -m shell -a'. The exit code is non-zero when the command fails on any host.`,
		Example: `  kinstall exec 'uptime'
  kinstall exec --become --limit etcd 'systemctl is-active etcd'
  kinstall exec --limit kube-node -- df -h /var`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			outputs, runErr := s.Exec(cmd.Context(), strings.Join(args, " "), become)
			names := make([]string, 0, len(outputs))
			for n := range outputs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "%s | %s\n", n, outputs[n])
			}
			return runErr
		},
	}
	cmd.Flags().BoolVarP(&become, "become", "b", false, "run the command as root (sudo)")
	f.register(cmd, false)
	return cmd
}
