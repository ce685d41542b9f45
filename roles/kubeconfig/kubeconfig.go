// Package kubeconfig writes the admin kubeconfig on the taskbox (0600, issued from the cluster
// CA kinstall keeps, talking to the load balancer) and checks the cluster through it: the API
// answers through the endpoint and every node is Ready.
package kubeconfig

import (
	"context"
	"os"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/state"
	"github.com/kinstall/kinstall/internal/verify"
	"github.com/kinstall/kinstall/roles/role"
)

// Role is the taskbox's admin kubeconfig and the install's last wait.
type Role struct {
	c     *cluster.Cluster
	state state.Dir
}

// New prepares the role.
func New(e *role.Env) (*Role, error) { return &Role{c: e.Cluster, state: e.State}, nil }

// Tasks run once (on the first master's slot of the run; they act on the taskbox).
func (r *Role) Tasks() []runner.Task {
	c, stateDir := r.c, r.state
	path := stateDir.AdminKubeconfig()
	return []runner.Task{
		{Name: "admin kubeconfig on the taskbox",
			Check: func(context.Context, *runner.Host) (string, error) {
				if _, err := os.Stat(path); err == nil {
					return "", nil
				}
				return "write " + path, nil
			},
			Apply: func(context.Context, *runner.Host) error {
				_, err := kube.WriteAdminKubeconfig(stateDir, c)
				return err
			}},
		{Name: "API answers through " + kube.TaskboxServer(c), Check: func(ctx context.Context, h *runner.Host) (string, error) {
			if h.DryRun {
				return "", nil
			}
			cl, err := kube.NewClientFromKubeconfig(path)
			if err != nil {
				return "", err
			}
			_, err = verify.WaitNodesReady(ctx, cl, c, 3*time.Minute)
			return "", err
		}},
		{Name: "control plane ready on every master, CoreDNS and kube-proxy ready", Check: func(ctx context.Context, h *runner.Host) (string, error) {
			if h.DryRun {
				return "", nil
			}
			cl, err := kube.NewClientFromKubeconfig(path)
			if err != nil {
				return "", err
			}
			if _, err := verify.WaitControlPlane(ctx, cl, c, 3*time.Minute); err != nil {
				return "", err
			}
			_, err = verify.WaitAddons(ctx, cl, 3*time.Minute)
			return "", err
		}},
	}
}
