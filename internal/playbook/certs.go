package playbook

import (
	"context"
	"errors"

	"github.com/kinstall/kinstall/internal/certs"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/controlplane"
)

// CertsCheck reads every certificate on the (--limit) role hosts.
func (s *Session) CertsCheck(ctx context.Context) ([]certs.Cert, error) {
	return certs.Collect(ctx, s.Runner, s.LimitHosts(s.Cluster.RoleHosts()))
}

// CertsRenew renews kubeadm's certificates one master at a time.
func (s *Session) CertsRenew(ctx context.Context) error {
	if len(s.Cluster.Masters) == 0 {
		return errors.New("no masters in the inventory")
	}
	cp, err := controlplane.New(s.Env)
	if err != nil {
		return err
	}
	return s.Run(ctx, []runner.Phase{{Name: "certs-renew", Hosts: s.Cluster.Masters, Tasks: cp.RenewTasks(), Serial: 1, Critical: true}})
}
