// Package verify proves a cluster works: nodes Ready, control-plane components healthy on every
// master, etcd quorum, pod-to-pod traffic across nodes and Service DNS, and the API reachable
// through the load balancer from every node. Drill (drill.go) adds the disruptive HA proof.
package verify

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
)

// EtcdHealth reports etcd's quorum: healthy voters, members, and whether writes can proceed.
type EtcdHealth func(ctx context.Context) (healthy, members int, quorum bool)

// Verifier runs the checks.
type Verifier struct {
	Cluster *cluster.Cluster
	API     *kube.Client
	Hosts   runner.Hosts
	Etcd    EtcdHealth
	Image   string // the probe image (imported on every node)
	Timeout time.Duration
}

// Check is one line of the report.
type Check struct {
	Name   string
	OK     bool
	Detail string
	Took   time.Duration
}

// Namespace holds verify's test workloads; it is deleted afterwards.
const Namespace = "kinstall-verify"

// Run runs every check and returns them in order; it stops early only when the API is down.
func (v *Verifier) Run(ctx context.Context) []Check {
	var out []Check
	add := func(name string, fn func() (string, error)) bool {
		start := time.Now()
		detail, err := fn()
		c := Check{Name: name, OK: err == nil, Detail: detail, Took: time.Since(start)}
		if err != nil {
			c.Detail = err.Error()
		}
		out = append(out, c)
		return c.OK
	}
	if !add("API answers (taskbox → "+v.API.Server+")", func() (string, error) { return v.readyz(ctx) }) {
		return out
	}
	add("every node Ready", func() (string, error) { return v.nodesReady(ctx) })
	add("control plane healthy on every master", func() (string, error) { return v.controlPlane(ctx) })
	add("etcd quorum and member health", func() (string, error) { return v.etcd(ctx) })
	add("API through "+kube.Endpoint(v.Cluster)+" from every node", func() (string, error) { return v.endpointFromNodes(ctx) })
	add("CoreDNS and kube-proxy ready", func() (string, error) { return WaitAddons(ctx, v.API, time.Minute) })
	add("pod network: pod to pod across nodes, Service by DNS name", func() (string, error) { return v.podNetwork(ctx) })
	return out
}

// OK reports whether every check passed.
func OK(checks []Check) bool {
	for _, c := range checks {
		if !c.OK {
			return false
		}
	}
	return len(checks) > 0
}

// Print writes the checks as a table.
func Print(w io.Writer, checks []Check) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tTIME\tDETAIL")
	for _, c := range checks {
		res := "ok"
		if !c.OK {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, res, c.Took.Round(10*time.Millisecond), c.Detail)
	}
	_ = tw.Flush()
}

func (v *Verifier) readyz(ctx context.Context) (string, error) {
	var body []byte
	if err := v.API.Get(ctx, "/readyz", &body); err != nil {
		return "", err
	}
	var ver struct {
		GitVersion string `json:"gitVersion"`
	}
	_ = v.API.Get(ctx, "/version", &ver)
	return "readyz " + strings.TrimSpace(string(body)) + ", " + ver.GitVersion, nil
}

type condition struct {
	Type, Status, Message string
}

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Status struct {
			Conditions []condition `json:"conditions"`
		} `json:"status"`
	} `json:"items"`
}

func (v *Verifier) nodesReady(ctx context.Context) (string, error) {
	return NodesReady(ctx, v.API, v.Cluster)
}

// NodesReady reports whether every inventory node is registered and Ready.
func NodesReady(ctx context.Context, api *kube.Client, c *cluster.Cluster) (string, error) {
	var nl nodeList
	if err := api.Get(ctx, "/api/v1/nodes", &nl); err != nil {
		return "", err
	}
	ready := map[string]bool{}
	for _, n := range nl.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready[n.Metadata.Name] = true
			}
		}
	}
	var bad []string
	for _, h := range c.KubeNodes() {
		if !ready[h.Name] {
			bad = append(bad, h.Name)
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("not Ready: %s", strings.Join(bad, ", "))
	}
	return fmt.Sprintf("%d/%d Ready", len(ready), len(c.KubeNodes())), nil
}

type pod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase             string      `json:"phase"`
		PodIP             string      `json:"podIP"`
		Conditions        []condition `json:"conditions"`
		ContainerStatuses []struct {
			Name  string `json:"name"`
			State struct {
				Terminated *struct {
					ExitCode int    `json:"exitCode"`
					Reason   string `json:"reason"`
				} `json:"terminated"`
				Waiting *struct {
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"waiting"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p pod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

type podList struct {
	Items []pod `json:"items"`
}

// ControlPlaneComponents are the static pods of every master.
var ControlPlaneComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

func (v *Verifier) controlPlane(ctx context.Context) (string, error) {
	return ControlPlaneReady(ctx, v.API, v.Cluster)
}

// ControlPlaneReady reports whether every control-plane component's pod is ready on every master.
func ControlPlaneReady(ctx context.Context, api *kube.Client, c *cluster.Cluster) (string, error) {
	var pl podList
	if err := api.Get(ctx, "/api/v1/namespaces/kube-system/pods?labelSelector="+url.QueryEscape("tier=control-plane"), &pl); err != nil {
		return "", err
	}
	ready := map[string]bool{}
	for _, p := range pl.Items {
		ready[p.Metadata.Name] = p.ready()
	}
	var bad []string
	for _, m := range c.Masters {
		for _, comp := range ControlPlaneComponents {
			if !ready[comp+"-"+m.Name] {
				bad = append(bad, comp+" on "+m.Name)
			}
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("not ready: %s", strings.Join(bad, ", "))
	}
	return fmt.Sprintf("%d components x %d masters ready", len(ControlPlaneComponents), len(c.Masters)), nil
}

func (v *Verifier) etcd(ctx context.Context) (string, error) {
	healthy, members, quorum := v.Etcd(ctx)
	detail := fmt.Sprintf("%d/%d members healthy", healthy, members)
	if !quorum {
		return "", fmt.Errorf("no quorum: %s", detail)
	}
	if healthy < members {
		return "", fmt.Errorf("quorum, but %s", detail)
	}
	return detail, nil
}

// endpointFromNodes: every node reaches the API by the load balancer's name (anonymous
// /readyz, allowed by Kubernetes' default RBAC).
func (v *Verifier) endpointFromNodes(ctx context.Context) (string, error) {
	nodes := v.Cluster.KubeNodes()
	errs := make([]string, len(nodes))
	done := make(chan int, len(nodes))
	for i, h := range nodes {
		go func(i int, h *cluster.Host) {
			out, err := v.Hosts.Sudo(ctx, h, "curl -sk --max-time 5 https://"+kube.Endpoint(v.Cluster)+"/readyz")
			if err != nil || strings.TrimSpace(out) != "ok" {
				errs[i] = fmt.Sprintf("%s: %v %s", h.Name, err, strings.TrimSpace(out))
			}
			done <- i
		}(i, h)
	}
	for range nodes {
		<-done
	}
	var bad []string
	for _, e := range errs {
		if e != "" {
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%d nodes", len(nodes)), nil
}

func (v *Verifier) podNetwork(ctx context.Context) (string, error) {
	if err := v.resetNamespace(ctx); err != nil {
		return "", err
	}
	nodes := v.Cluster.KubeNodes()
	for _, h := range nodes {
		if err := v.API.Do(ctx, "POST", "/api/v1/namespaces/"+Namespace+"/pods", serverPod(v.Image, h.Name), nil); err != nil {
			return "", fmt.Errorf("create a test pod on %s: %w", h.Name, err)
		}
	}
	if err := v.API.Do(ctx, "POST", "/api/v1/namespaces/"+Namespace+"/services", service(), nil); err != nil {
		return "", fmt.Errorf("create the test Service: %w", err)
	}
	servers, err := v.waitPods(ctx, Namespace, "role=server", len(nodes), func(p pod) bool { return p.Status.Phase == "Running" && p.Status.PodIP != "" })
	if err != nil {
		return "", fmt.Errorf("test servers: %w", err)
	}
	ipOn := map[string]string{}
	for _, p := range servers {
		ipOn[p.Spec.NodeName] = p.Status.PodIP
	}
	clients := v.Cluster.Workers
	if len(clients) == 0 {
		clients = nodes
	}
	svcURL := "http://web." + Namespace + ".svc." + v.Cluster.Config.DNSDomain + ":8080/"
	for i, h := range clients {
		other := nodes[(indexOf(nodes, h)+1)%len(nodes)]
		if len(nodes) == 1 {
			other = h
		}
		target := "http://" + hostPortString(ipOn[other.Name], "8080") + "/"
		if err := v.API.Do(ctx, "POST", "/api/v1/namespaces/"+Namespace+"/pods", clientPod(v.Image, fmt.Sprintf("client-%d", i), h.Name, target, svcURL), nil); err != nil {
			return "", fmt.Errorf("create a client pod on %s: %w", h.Name, err)
		}
	}
	done, err := v.waitPods(ctx, Namespace, "role=client", len(clients), func(p pod) bool { return p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed" })
	if err != nil {
		return "", fmt.Errorf("client pods: %w", err)
	}
	// Cleanup only after the logs of a failure were read.
	defer v.API.Do(context.Background(), "DELETE", "/api/v1/namespaces/"+Namespace, nil, nil) //nolint:errcheck // best effort
	var bad []string
	for _, p := range done {
		if p.Status.Phase != "Succeeded" {
			var why []string
			for _, cs := range p.Status.ContainerStatuses {
				if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
					why = append(why, cs.Name+" failed: "+v.lastLog(ctx, p.Metadata.Name, cs.Name))
				}
			}
			bad = append(bad, p.Spec.NodeName+": "+strings.Join(why, ", "))
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%d clients reached a pod on another node and %s", len(done), svcURL), nil
}

func indexOf(hs []*cluster.Host, h *cluster.Host) int {
	for i, x := range hs {
		if x == h {
			return i
		}
	}
	return 0
}

func hostPortString(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}

// resetNamespace deletes what an earlier verify left and makes the namespace anew.
func (v *Verifier) resetNamespace(ctx context.Context) error {
	err := v.API.Do(ctx, "DELETE", "/api/v1/namespaces/"+Namespace, nil, nil)
	if err != nil && !kube.IsNotFound(err) {
		return err
	}
	return v.createNamespace(ctx, Namespace)
}

// createNamespace creates ns, waiting while an older one of that name is still being deleted.
func (v *Verifier) createNamespace(ctx context.Context, ns string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := v.API.Do(ctx, "POST", "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": ns}}, nil)
		if err == nil {
			return nil
		}
		if !kube.IsConflict(err) || time.Now().After(deadline) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

func (v *Verifier) waitPods(ctx context.Context, ns, selector string, n int, done func(pod) bool) ([]pod, error) {
	timeout := v.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		var pl podList
		if err := v.API.Get(ctx, "/api/v1/namespaces/"+ns+"/pods?labelSelector="+url.QueryEscape(selector), &pl); err != nil {
			return nil, err
		}
		var finished []pod
		var waiting []string
		for _, p := range pl.Items {
			if done(p) {
				finished = append(finished, p)
				continue
			}
			why := p.Status.Phase
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil {
					why = w.Reason + " " + w.Message
				}
			}
			waiting = append(waiting, p.Metadata.Name+" on "+p.Spec.NodeName+": "+why)
		}
		if len(finished) >= n {
			return finished, nil
		}
		if time.Now().After(deadline) {
			sort.Strings(waiting)
			return nil, fmt.Errorf("after %s, %d of %d done; waiting: %s", timeout, len(finished), n, strings.Join(waiting, "; "))
		}
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// tolerateAll lets the test pods run on masters too (their control-plane taint).
var tolerateAll = []map[string]any{{"operator": "Exists"}}

func serverPod(image, node string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": "server-" + node, "labels": map[string]string{"app": "web", "role": "server"}},
		"spec": map[string]any{
			"nodeName":                      node,
			"tolerations":                   tolerateAll,
			"terminationGracePeriodSeconds": 1,
			"containers": []map[string]any{{
				"name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
				"args":  []string{"serve", "-listen", ":8080"},
				"ports": []map[string]any{{"containerPort": 8080}},
			}},
		},
	}
}

func clientPod(image, name, node, podURL, svcURL string) map[string]any {
	get := func(cname, u string) map[string]any {
		return map[string]any{"name": cname, "image": image, "imagePullPolicy": "IfNotPresent",
			"args": []string{"get", "-timeout", "5s", "-retries", "20", u}}
	}
	return map[string]any{
		"metadata": map[string]any{"name": name, "labels": map[string]string{"role": "client"}},
		"spec": map[string]any{
			"nodeName":      node,
			"tolerations":   tolerateAll,
			"restartPolicy": "Never",
			"containers":    []map[string]any{get("pod-on-other-node", podURL), get("service-by-dns", svcURL)},
		},
	}
}

func service() map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"selector": map[string]string{"app": "web"},
			"ports":    []map[string]any{{"port": 8080, "targetPort": 8080}},
		},
	}
}

// AddonsReady reports whether CoreDNS's Deployment has rolled out and every kube-proxy runs.
func AddonsReady(ctx context.Context, api *kube.Client) (string, error) {
	var dep struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
		Status struct {
			ObservedGeneration int64 `json:"observedGeneration"`
			Replicas           int   `json:"replicas"`
			UpdatedReplicas    int   `json:"updatedReplicas"`
			AvailableReplicas  int   `json:"availableReplicas"`
		} `json:"status"`
	}
	if err := api.Get(ctx, "/apis/apps/v1/namespaces/kube-system/deployments/coredns", &dep); err != nil {
		return "", err
	}
	st := dep.Status
	if st.ObservedGeneration < dep.Metadata.Generation || st.UpdatedReplicas != dep.Spec.Replicas || st.AvailableReplicas != dep.Spec.Replicas || st.Replicas != dep.Spec.Replicas {
		return "", fmt.Errorf("CoreDNS: %d/%d updated, %d available", st.UpdatedReplicas, dep.Spec.Replicas, st.AvailableReplicas)
	}
	var ds struct {
		Status struct {
			Desired int `json:"desiredNumberScheduled"`
			Ready   int `json:"numberReady"`
		} `json:"status"`
	}
	if err := api.Get(ctx, "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", &ds); err != nil {
		return "", err
	}
	if ds.Status.Ready != ds.Status.Desired || ds.Status.Desired == 0 {
		return "", fmt.Errorf("kube-proxy: %d/%d ready", ds.Status.Ready, ds.Status.Desired)
	}
	return fmt.Sprintf("CoreDNS %d/%d, kube-proxy %d/%d", st.AvailableReplicas, dep.Spec.Replicas, ds.Status.Ready, ds.Status.Desired), nil
}

// WaitAddons waits until AddonsReady.
func WaitAddons(ctx context.Context, api *kube.Client, timeout time.Duration) (string, error) {
	return waitFor(ctx, timeout, func() (string, error) { return AddonsReady(ctx, api) })
}

// WaitNodesReady waits until NodesReady.
func WaitNodesReady(ctx context.Context, api *kube.Client, c *cluster.Cluster, timeout time.Duration) (string, error) {
	return waitFor(ctx, timeout, func() (string, error) { return NodesReady(ctx, api, c) })
}

// WaitControlPlane waits until ControlPlaneReady.
func WaitControlPlane(ctx context.Context, api *kube.Client, c *cluster.Cluster, timeout time.Duration) (string, error) {
	return waitFor(ctx, timeout, func() (string, error) { return ControlPlaneReady(ctx, api, c) })
}

func waitFor(ctx context.Context, timeout time.Duration, check func() (string, error)) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		detail, err := check()
		if err == nil || time.Now().After(deadline) {
			return detail, err
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return "", err
		}
	}
}

// lastLog is the last line a test container printed (why it failed).
func (v *Verifier) lastLog(ctx context.Context, pod, container string) string {
	var b []byte
	if err := v.API.Get(ctx, "/api/v1/namespaces/"+Namespace+"/pods/"+pod+"/log?container="+container+"&tailLines=1", &b); err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
