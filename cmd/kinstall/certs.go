package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/certs"
)

func newCertsCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Certificates on every host: check expiry, renew the control plane's",
	}
	cmd.AddCommand(newCertsCheckCmd(g), newCertsRenewCmd(g))
	return cmd
}

func newCertsCheckCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	var warn time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Every certificate on every host (Kubernetes, etcd, kubelet, kubeconfigs) with its expiry",
		Long: `check reads the certificates (never the keys) under /etc/kubernetes, /etc/ssl/etcd/ssl and
/var/lib/kubelet/pki on every host, and the client certificates embedded in /etc/kubernetes/*.conf,
and prints them with their expiry. Exit 1 when one expires within --warn.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			list, err := s.CertsCheck(cmd.Context())
			n := certs.Print(cmd.OutOrStdout(), list, time.Now(), warn)
			if err != nil {
				return err
			}
			if n > 0 {
				return exitError{code: 1, err: fmt.Errorf("%d certificate(s) expire within %s: kinstall certs renew (control plane), kinstall install --only etcd (etcd)", n, warn)}
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().DurationVar(&warn, "warn", 30*24*time.Hour, "flag certificates that expire within this time")
	return cmd
}

func newCertsRenewCmd(g *globalOptions) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Renew kubeadm's certificates, one master at a time (rolling: the API stays up)",
		Long: `renew runs 'kubeadm certs renew all' on one master, restarts its control-plane containers and
waits for its API before the next master. etcd's certificates are kinstall's: 'kinstall install
--only etcd' re-issues those within 30 days of expiry, one member at a time. Kubelets rotate
their own client certificates.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, g, f)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.CertsRenew(cmd.Context())
		},
	}
	f.register(cmd, false)
	return cmd
}
