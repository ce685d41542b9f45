// Package artifacts is the role that puts each host's binaries in place for the roles after it:
// every file is resolved and verified once on the taskbox (internal/artifacts) and pushed to
// the hosts that need it, skipped where the host already has the same bytes.
package artifacts

import (
	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/roles/etcd"
)

// Tasks returns the artifacts tasks; each one selects its own hosts by role.
func Tasks(c *cluster.Cluster, src *artifacts.Source) []runner.Task {
	// Kubernetes binaries and images are staged by the kubelet phase, flannel by the cni phase:
	// a phase run on its own (--only etcd) needs nothing of theirs.
	return []runner.Task{etcd.StageTask(src, c.Config.EtcdVersion)}
}
