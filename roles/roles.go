// Package roles maps each phase of the plan to the tasks of the role that implements it.
package roles

import (
	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	artifactsrole "github.com/kinstall/kinstall/roles/artifacts"
	"github.com/kinstall/kinstall/roles/bootstrap"
	"github.com/kinstall/kinstall/roles/cni"
	"github.com/kinstall/kinstall/roles/containerruntime"
	"github.com/kinstall/kinstall/roles/controlplane"
	"github.com/kinstall/kinstall/roles/etcd"
	"github.com/kinstall/kinstall/roles/kubeconfig"
	"github.com/kinstall/kinstall/roles/kubelet"
	"github.com/kinstall/kinstall/roles/loadbalancer"
	"github.com/kinstall/kinstall/roles/preflight"
	"github.com/kinstall/kinstall/roles/workers"
)

// Env is what roles need besides the cluster: where state lives on the taskbox and where
// artifacts come from.
type Env struct {
	Cluster   *cluster.Cluster
	StateDir  string
	Artifacts *artifacts.Source

	join *controlplane.JoinSecrets // one run's join token and certificate key, shared by phases
}

func (e *Env) controlPlane() (*controlplane.Role, error) {
	if e.join == nil {
		e.join = controlplane.NewJoinSecrets(e.Cluster)
	}
	return controlplane.New(e.Cluster, e.StateDir, e.join)
}

// Implemented says whether a role implements the phase, without preparing anything.
func Implemented(phase string) bool {
	switch phase {
	case "preflight", "bootstrap", "artifacts", "container-runtime", "etcd", "loadbalancer",
		"kubelet", "control-plane/init", "control-plane/join", "workers", "cni", "kubeconfig":
		return true
	}
	return false
}

// Tasks returns the tasks for a plan phase, and false when no role implements it yet.
func Tasks(phase string, env *Env) ([]runner.Task, bool, error) {
	c := env.Cluster
	switch phase {
	case "preflight":
		return preflight.Tasks(c), true, nil
	case "bootstrap":
		return bootstrap.Tasks(c), true, nil
	case "artifacts":
		return artifactsrole.Tasks(c, env.Artifacts), true, nil
	case "container-runtime":
		return containerruntime.Tasks(c, env.Artifacts), true, nil
	case "etcd":
		r, err := etcd.New(c, etcd.Options{StateDir: env.StateDir, Artifacts: env.Artifacts})
		if err != nil {
			return nil, true, err
		}
		return r.Tasks(), true, nil
	case "loadbalancer":
		return loadbalancer.New(c, env.Artifacts).Tasks(), true, nil
	case "kubelet":
		return kubelet.New(c, env.Artifacts).Tasks(), true, nil
	case "control-plane/init", "control-plane/join", "workers":
		cp, err := env.controlPlane()
		if err != nil {
			return nil, true, err
		}
		switch phase {
		case "control-plane/init":
			return cp.InitTasks(), true, nil
		case "control-plane/join":
			return cp.JoinTasks(), true, nil
		}
		return workers.Tasks(c, cp), true, nil
	case "cni":
		r, err := cni.New(c, env.StateDir, env.Artifacts)
		if err != nil {
			return nil, true, err
		}
		return r.Tasks(), true, nil
	case "kubeconfig":
		return kubeconfig.Tasks(c, env.StateDir), true, nil
	}
	return nil, false, nil
}
