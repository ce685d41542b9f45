// Package workers joins the worker nodes with `kubeadm join`, in parallel, and gives each the
// labels the inventory asks for.
package workers

import (
	"context"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/controlplane"
)

// Tasks returns the workers' tasks; cp shares the run's join secrets with the control plane.
func Tasks(c *cluster.Cluster, cp *controlplane.Role) []runner.Task {
	return []runner.Task{
		{Name: "facts", Check: cp.Facts},
		{Name: "kubeadm join", Check: controlplane.CheckJoined, Apply: func(ctx context.Context, h *runner.Host) error {
			token, err := cp.Join.Token(ctx, h)
			if err != nil {
				return err
			}
			data, err := cp.Config(h, false, true, token, "")
			if err != nil {
				return err
			}
			return controlplane.RunKubeadm(ctx, h, data, []string{token}, "kubeadm join --config "+controlplane.SecretConfig)
		}},
		controlplane.LabelsTask(c),
	}
}
