// Package roles maps each phase of the plan to the tasks of the role that implements it.
package roles

import (
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/bootstrap"
	"github.com/kinstall/kinstall/roles/preflight"
)

// Tasks returns the tasks for a plan phase, and false when no role implements it yet.
func Tasks(phase string, c *cluster.Cluster) ([]runner.Task, bool) {
	switch phase {
	case "preflight":
		return preflight.Tasks(c), true
	case "bootstrap":
		return bootstrap.Tasks(c), true
	}
	return nil, false
}
