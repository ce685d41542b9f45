// Package role is the one shape every role has: a constructor New(*Env) (*Role, error) and a
// Tasks method. The playbook layer pairs each phase of a command with a role constructor.
package role

import (
	"sync"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/state"
)

// Env is what a role needs besides its own code: the cluster, the taskbox's state directory
// and where artifacts come from. One Env serves one run.
type Env struct {
	Cluster   *cluster.Cluster
	State     state.Dir
	Artifacts *artifacts.Source

	mu     sync.Mutex
	shared map[string]any
}

// Role is a role prepared for one run.
type Role interface {
	Tasks() []runner.Task
}

// New prepares a role.
type New func(*Env) (Role, error)

// Shared returns the run's value for key, made once by mk: what several phases of one run
// must agree on (the join token the control plane makes and the workers use).
func (e *Env) Shared(key string, mk func() any) any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shared == nil {
		e.shared = map[string]any{}
	}
	v, ok := e.shared[key]
	if !ok {
		v = mk()
		e.shared[key] = v
	}
	return v
}

// Source returns the artifacts source, an empty one (pinned downloads) when none was given.
func (e *Env) Source() *artifacts.Source {
	if e.Artifacts == nil {
		e.Artifacts = &artifacts.Source{}
	}
	return e.Artifacts
}

// Tasks is a fixed list of tasks as a Role.
type Tasks []runner.Task

// Tasks returns the list.
func (t Tasks) Tasks() []runner.Task { return t }
