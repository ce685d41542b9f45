// Package workers joins the worker nodes with `kubeadm join`, in parallel, and gives each the
// labels the inventory asks for.
package workers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
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
		LabelsTask(c),
	}
}

// LabelsTask sets the node's labels (its roles and node_labels) from the first master.
func LabelsTask(c *cluster.Cluster) runner.Task {
	args := func(h *runner.Host) []string {
		labels := controlplane.KnownLabels(h.Host)
		var kv []string
		for k, v := range labels {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		return kv
	}
	return runner.Task{
		Name: "labels",
		When: func(h *runner.Host) bool { return len(controlplane.KnownLabels(h.Host)) > 0 },
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			m, err := h.Peer(ctx, c.Masters[0])
			if err != nil {
				return "", err
			}
			res, err := m.Conn.Run(ctx, transport.Cmd{Sudo: true, Command: "kubectl --kubeconfig /etc/kubernetes/admin.conf get node " + transport.Quote(h.Name) + " -o go-template='{{range $k, $v := .metadata.labels}}{{$k}}={{$v}}{{\"\\n\"}}{{end}}'"})
			if err != nil {
				return "", err
			}
			if res.ExitCode != 0 {
				return "label the node " + strings.Join(args(h), " "), nil
			}
			have := map[string]bool{}
			for _, l := range strings.Split(string(res.Stdout), "\n") {
				have[l] = true
			}
			var missing []string
			for _, kv := range args(h) {
				if !have[kv] {
					missing = append(missing, kv)
				}
			}
			if len(missing) == 0 {
				return "", nil
			}
			return "label " + strings.Join(missing, " "), nil
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			m, err := h.Peer(ctx, c.Masters[0])
			if err != nil {
				return err
			}
			var q []string
			for _, kv := range args(h) {
				q = append(q, transport.Quote(kv))
			}
			// The Node object appears once the kubelet has registered, shortly after the join.
			_, err = m.Sudo(ctx, fmt.Sprintf(`k="kubectl --kubeconfig /etc/kubernetes/admin.conf"
for i in $(seq 60); do $k get node %[1]s >/dev/null 2>&1 && break; sleep 1; done
$k label node %[1]s --overwrite %[2]s >/dev/null`, transport.Quote(h.Name), strings.Join(q, " ")))
			return err
		},
	}
}
