package controlplane

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
)

// LabelsTask sets the node's labels (its roles and node_labels) from the first master.
func LabelsTask(c *cluster.Cluster) runner.Task {
	args := func(h *runner.Host) []string {
		labels := KnownLabels(h.Host)
		var kv []string
		for k, v := range labels {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		return kv
	}
	return runner.Task{
		Name: "labels",
		When: func(h *runner.Host) bool { return len(KnownLabels(h.Host)) > 0 },
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

// KnownLabels returns the labels a node gets from kinstall: its roles, and node_labels from the
// inventory (a dict, or "k=v,k2=v2").
func KnownLabels(h *cluster.Host) map[string]string {
	out := map[string]string{}
	if h.Worker {
		out["node-role.kubernetes.io/worker"] = ""
	}
	switch v := h.Vars["node_labels"].(type) {
	case map[string]any:
		for k, val := range v {
			out[k] = fmt.Sprint(val)
		}
	case string:
		for _, kv := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k != "" {
				out[k] = val
			}
		}
	}
	return out
}
