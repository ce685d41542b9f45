package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/pki"
	"github.com/kinstall/kinstall/internal/state"
)

func newCheckCmd(g *globalOptions) *cobra.Command {
	var output, stateDir string
	var noProbe bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the inventory and common.yaml and report the topology",
		Long: `check reads both files, touches no host, and prints the topology: hosts per role, etcd
quorum and the failures it tolerates, the API endpoint and load balancer mode, then errors,
warnings and notes. It exits non-zero when the cluster cannot be installed as written.`,
		Example: `  kinstall check -i conf/hosts.ini -c conf/common.yaml
  kinstall check -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadCluster(g)
			if err != nil {
				return err
			}
			r := c.Check()
			if !noProbe {
				probeExternalLB(c, r)
			}
			if output == "json" {
				b, err := r.JSON()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				r.Print(cmd.OutOrStdout())
			}
			if len(r.Errors) > 0 {
				return errors.New("the topology has errors (see above)")
			}
			if output != "json" {
				return printCertExpiry(cmd.OutOrStdout(), state.Dir(stateDir))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "do not try to reach an external load balancer from this machine")
	cmd.Flags().StringVar(&stateDir, "state-dir", state.DefaultDir.String(), "state directory whose certificates' expiry is reported")
	return cmd
}

// printCertExpiry lists the certificates kinstall keeps in the state directory, soonest expiry
// first; an expired one is an error, one expiring within 30 days a warning.
func printCertExpiry(w io.Writer, stateDir state.Dir) error {
	certs, err := pki.Scan(stateDir.PKI(), time.Now())
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\ncertificates in %s:\n", stateDir.PKI())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  FILE\tSUBJECT\tEXPIRES\tIN")
	var expired []string
	for _, c := range certs {
		days := int(c.ExpiresIn.Hours() / 24)
		state := fmt.Sprintf("%d days", days)
		switch {
		case c.ExpiresIn <= 0:
			state = "EXPIRED"
			expired = append(expired, c.File)
		case c.ExpiresIn < pki.RenewBefore:
			state += " (WARNING: renewed by the next install)"
		}
		rel, _ := filepath.Rel(stateDir.String(), c.File)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", rel, c.Subject, c.NotAfter.Format("2006-01-02"), state)
	}
	_ = tw.Flush()
	if len(expired) > 0 {
		return fmt.Errorf("%d certificate(s) expired: re-run kinstall install to renew them", len(expired))
	}
	return nil
}

// probeExternalLB: an external load balancer exists before kinstall runs, so check can tell
// now whether it accepts TCP (from this machine; install checks again from every node).
func probeExternalLB(c *cluster.Cluster, r *cluster.Report) {
	cfg := c.Config
	if cfg.Mode() != config.LBExternal {
		return
	}
	addr := net.JoinHostPort(cfg.LoadBalancerAPIServer.Address, strconv.Itoa(cfg.LoadBalancerAPIServer.Port))
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("the external load balancer %s does not accept TCP from this machine (%v): it must be up and forward to the masters' port %d before install (--no-probe skips this)", addr, err, cfg.APIServerPort))
		return
	}
	conn.Close()
	r.Notes = append(r.Notes, fmt.Sprintf("the external load balancer %s accepts TCP from this machine.", addr))
}
