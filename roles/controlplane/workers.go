package controlplane

import (
	"context"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/role"
)

// Workers is the workers phase: kubeadm join on every worker, in parallel, with the labels the
// inventory asks for; it shares the run's join secrets with the control plane.
type Workers struct{ *Role }

// NewWorkers prepares the workers' phase.
func NewWorkers(e *role.Env) (*Workers, error) { r, err := New(e); return &Workers{r}, err }

// Tasks are the workers'.
func (w *Workers) Tasks() []runner.Task {
	return []runner.Task{
		{Name: "facts", Check: w.Facts},
		{Name: "kubeadm join", Check: CheckJoined, Apply: func(ctx context.Context, h *runner.Host) error {
			token, err := w.Join.Token(ctx, h)
			if err != nil {
				return err
			}
			data, err := w.Config(h, false, true, token, "")
			if err != nil {
				return err
			}
			return RunKubeadm(ctx, h, data, []string{token}, "kubeadm join --config "+SecretConfig)
		}},
		LabelsTask(w.c),
	}
}
