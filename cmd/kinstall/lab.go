package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/lab"
)

func newLabCmd(_ *globalOptions) *cobra.Command {
	o := &lab.Options{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run test hosts on this machine (Docker containers with systemd and sshd)",
		Long: `lab boots Linux hosts as Docker containers that run systemd and sshd, each with its own IP on
a private bridge, and writes a ready inventory (hosts.ini), known_hosts and common.yaml for them.
Try an HA install on a laptop, or inject faults: stop, kill, partition, heal.`,
		Example: `  kinstall lab up -n 5
  kinstall install -i /var/tmp/kinstall-lab/kinstall/hosts.ini -c /var/tmp/kinstall-lab/kinstall/common.yaml \
      --known-hosts /var/tmp/kinstall-lab/kinstall/known_hosts
  kinstall lab partition node2
  kinstall lab heal node2
  kinstall lab down`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.Name, "name", "kinstall", "lab name (several labs may coexist with different names and subnets)")
	pf.StringVar(&o.Subnet, "subnet", "172.30.0.0/24", "the lab bridge's /24; host i gets .10+i")

	open := func(cmd *cobra.Command) (*lab.Lab, error) { return lab.Open(cmd.Context(), *o) }
	hostCmd := func(use, short string, fn func(l *lab.Lab, cmd *cobra.Command, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.MinimumNArgs(1),
			Example: "  kinstall lab " + strings.Fields(use)[0] + " node2",
			RunE: func(cmd *cobra.Command, args []string) error {
				l, err := open(cmd)
				if err != nil {
					return err
				}
				return fn(l, cmd, args)
			}}
	}
	up := &cobra.Command{
		Use:     "up",
		Short:   "Boot N hosts (reusing running ones) and write hosts.ini, known_hosts, common.yaml",
		Example: "  kinstall lab up -n 5",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			l, err := lab.Up(cmd.Context(), *o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "lab %s: %d hosts up in %s\n", l.Name, len(l.Hosts), time.Since(start).Round(100*time.Millisecond))
			fmt.Fprintf(out, "  inventory:   %s\n  config:      %s\n  known_hosts: %s\n", l.InventoryFile, l.ConfigFile, l.KnownHostsFile)
			fmt.Fprintf(out, "try: kinstall ping -i %s -c %s --known-hosts %s\n", l.InventoryFile, l.ConfigFile, l.KnownHostsFile)
			return nil
		},
	}
	up.Flags().IntVarP(&o.N, "hosts", "n", 5, "number of hosts")
	cmd.AddCommand(newLabRegistryCmd(open), newLabMirrorCmd(o))
	cmd.AddCommand(up,
		&cobra.Command{Use: "down", Short: "Remove the hosts, their volumes, the network and partition rules", Args: cobra.NoArgs,
			Example: "  kinstall lab down",
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := open(cmd)
				if err != nil {
					return err
				}
				return l.Down(cmd.Context())
			}},
		&cobra.Command{Use: "status", Short: "Show each host's state, sshd and partitions", Args: cobra.NoArgs,
			Example: "  kinstall lab status",
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := open(cmd)
				if err != nil {
					return err
				}
				st, err := l.Status(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "HOST\tIP\tSTATE\tSSH\tPARTITION RULES")
				for _, s := range st {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\n", s.Host.Name, s.Host.IP, s.State, s.SSH, s.Rules)
				}
				return tw.Flush()
			}},
		&cobra.Command{Use: "image", Short: "Build (or confirm) the lab host image", Args: cobra.NoArgs,
			Example: "  kinstall lab image",
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := lab.EnsureDocker(cmd.Context(), cmd.ErrOrStderr()); err != nil {
					return err
				}
				_, err := lab.EnsureImage(cmd.Context(), cmd.ErrOrStderr())
				return err
			}},
		hostCmd("stop HOST", "Shut a host down cleanly", func(l *lab.Lab, cmd *cobra.Command, a []string) error { return l.Stop(cmd.Context(), a[0]) }),
		hostCmd("start HOST", "Boot a stopped host and wait for sshd", func(l *lab.Lab, cmd *cobra.Command, a []string) error { return l.Start(cmd.Context(), a[0]) }),
		hostCmd("kill HOST", "Crash a host", func(l *lab.Lab, cmd *cobra.Command, a []string) error { return l.Kill(cmd.Context(), a[0]) }),
		hostCmd("partition HOST [PEER...]", "Drop a host's traffic (only to/from PEERs if given)", func(l *lab.Lab, cmd *cobra.Command, a []string) error {
			return l.Partition(cmd.Context(), a[0], a[1:]...)
		}),
		hostCmd("heal HOST", "Remove a host's partition rules", func(l *lab.Lab, cmd *cobra.Command, a []string) error { return l.Heal(cmd.Context(), a[0]) }),
		hostCmd("ssh HOST [COMMAND]", "SSH into a host as root with the lab key", func(l *lab.Lab, cmd *cobra.Command, a []string) error {
			ip, err := l.IP(a[0])
			if err != nil {
				return err
			}
			args := append([]string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + l.KnownHostsFile,
				"-i", l.KeyFile, "root@" + ip}, a[1:]...)
			c := exec.CommandContext(cmd.Context(), "ssh", args...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			return c.Run()
		}),
	)
	return cmd
}
