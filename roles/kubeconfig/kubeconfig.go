// Package kubeconfig writes the admin kubeconfig on the taskbox (0600, issued from the cluster
// CA kinstall keeps, talking to the load balancer) and checks the cluster through it: the API
// answers through the endpoint and every node is Ready.
package kubeconfig

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/verify"
)

// Tasks run once (on the first master's slot of the run; they act on the taskbox).
func Tasks(c *cluster.Cluster, stateDir string) []runner.Task {
	path := kube.AdminKubeconfigPath(stateDir)
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
			return "", WaitNodesReady(ctx, cl, c, 3*time.Minute)
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

// NodeStatus is what WaitNodesReady needs of a Node.
type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Status struct {
			Conditions []struct {
				Type, Status, Message string
			} `json:"conditions"`
		} `json:"status"`
	} `json:"items"`
}

// NotReady lists the inventory's nodes that are missing or not Ready.
func NotReady(ctx context.Context, cl *kube.Client, c *cluster.Cluster) ([]string, error) {
	var nl nodeList
	if err := cl.Get(ctx, "/api/v1/nodes", &nl); err != nil {
		return nil, err
	}
	ready := map[string]string{}
	for _, n := range nl.Items {
		ready[n.Metadata.Name] = "not Ready"
		for _, cd := range n.Status.Conditions {
			if cd.Type == "Ready" {
				if cd.Status == "True" {
					ready[n.Metadata.Name] = ""
				} else if cd.Message != "" {
					ready[n.Metadata.Name] = "not Ready: " + cd.Message
				}
			}
		}
	}
	var out []string
	for _, h := range c.KubeNodes() {
		st, ok := ready[h.Name]
		switch {
		case !ok:
			out = append(out, h.Name+" (not registered)")
		case st != "":
			out = append(out, h.Name+" ("+st+")")
		}
	}
	sort.Strings(out)
	return out, nil
}

// WaitNodesReady waits until the API answers and every inventory node is Ready.
func WaitNodesReady(ctx context.Context, cl *kube.Client, c *cluster.Cluster, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		bad, err := NotReady(ctx, cl, c)
		if err == nil && len(bad) == 0 {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("nodes not ready: %s", strings.Join(bad, ", "))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
