package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
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
			defer s.close()
			var mu sync.Mutex
			outputs := map[string]string{}
			task := runner.Task{Name: "exec", Apply: func(ctx context.Context, h *runner.Host) error {
				res, err := h.Conn.Run(ctx, transport.Cmd{Command: strings.Join(args, " "), Sudo: become})
				if err != nil {
					return err
				}
				mu.Lock()
				outputs[h.Name] = fmt.Sprintf("rc=%d\n%s%s", res.ExitCode, res.Stdout, res.Stderr)
				mu.Unlock()
				if res.ExitCode != 0 {
					return fmt.Errorf("exit code %d", res.ExitCode)
				}
				return nil
			}}
			runErr := s.runner.Run(cmd.Context(), []runner.Phase{{Name: "exec", Hosts: s.cluster.Hosts, Tasks: []runner.Task{task}}})
			names := make([]string, 0, len(outputs))
			for n := range outputs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "%s | %s\n", n, strings.TrimRight(outputs[n], "\n"))
			}
			return runErr
		},
	}
	cmd.Flags().BoolVarP(&become, "become", "b", false, "run the command as root (sudo)")
	f.register(cmd, false)
	return cmd
}
