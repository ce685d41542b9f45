package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/config"
	"github.com/kinstall/kinstall/internal/kube"
)

// Drill is the HA proof: stop one master (the VIP holder in vip mode), measure the API outage
// through the load balancer, check that the leader leases move, etcd keeps quorum and a new
// Deployment schedules, then bring the master back and wait for full health.
type Drill struct {
	*Verifier
	Log io.Writer // progress lines
}

// DrillResult holds the figures of one drill.
type DrillResult struct {
	Victim, VictimWhy        string
	Probes, Failed           int
	LongestOutage            time.Duration
	Leases                   map[string][2]string // lease -> before, after
	EtcdHealthy, EtcdMembers int
	EtcdQuorum               bool
	DeploymentScheduled      time.Duration
	DeploymentErr            error
	Recovered                time.Duration
	RecoverErr               error
}

// Leases whose holders must move off a stopped master.
var Leases = []string{"kube-controller-manager", "kube-scheduler"}

// Precheck refuses a drill the cluster cannot survive, saying why.
func (d *Drill) Precheck(ctx context.Context) error {
	c := d.Cluster
	if len(c.Masters) < 2 {
		return fmt.Errorf("the drill stops a master: %d master(s) cannot tolerate that", len(c.Masters))
	}
	switch c.Config.Mode() {
	case config.LBNone:
		return fmt.Errorf("no load balancer: clients would lose the API with the first master")
	case config.LBLocalProxy:
		// The taskbox has no shared endpoint in this mode; probing from a node is not built yet.
		return fmt.Errorf("the drill measures the API through a shared endpoint (vip or external mode); local-proxy mode has none on the taskbox")
	}
	checks := d.Run(ctx)
	if !OK(checks) {
		for _, ch := range checks {
			if !ch.OK {
				return fmt.Errorf("the cluster is not healthy now (%s: %s): fix that first", ch.Name, ch.Detail)
			}
		}
	}
	return nil
}

// Victim picks the master to stop: the one leading kube-controller-manager (so the drill
// proves the leases move), which in vip mode also gets the VIP before the drill (Align).
func (d *Drill) Victim(ctx context.Context) (*cluster.Host, string, error) {
	c := d.Cluster
	holder := d.leaseHolder(ctx, "kube-controller-manager")
	victim := c.Masters[0]
	for _, m := range c.Masters {
		if m.Name == holder {
			victim = m
		}
	}
	var held []string
	for _, l := range Leases {
		if d.leaseHolder(ctx, l) == victim.Name {
			held = append(held, l)
		}
	}
	why := "leads " + strings.Join(held, " and ")
	if len(held) == 0 {
		why = "first master"
	}
	if c.Config.Mode() == config.LBVIP {
		why = "holds the VIP " + c.Config.LoadBalancerAPIServer.Address + ", " + why
	}
	return victim, why, nil
}

// vipHolder returns the master holding the VIP, or nil.
func (d *Drill) vipHolder(ctx context.Context) *cluster.Host {
	vip := d.Cluster.Config.LoadBalancerAPIServer.Address
	for _, m := range d.Cluster.Masters {
		out, err := d.Hosts.Sudo(ctx, m, "ip -o addr show")
		if err == nil && strings.Contains(out, " "+vip+"/") {
			return m
		}
	}
	return nil
}

// Align moves the VIP to the victim in vip mode (keepalived stopped for a moment on the other
// masters; with nopreempt it stays there when they come back), so one stop takes down the VIP
// holder and the leaders at once: the worst single failure.
func (d *Drill) Align(ctx context.Context, victim *cluster.Host) error {
	if d.Cluster.Config.Mode() != config.LBVIP {
		return nil
	}
	if h := d.vipHolder(ctx); h == victim {
		return nil
	}
	d.logf("moving the VIP to %s first", victim.Name)
	var others []*cluster.Host
	for _, m := range d.Cluster.Masters {
		if m != victim {
			others = append(others, m)
		}
	}
	for _, m := range others {
		if _, err := d.Hosts.Sudo(ctx, m, "systemctl stop keepalived"); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for d.vipHolder(ctx) != victim && time.Now().Before(deadline) {
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	for _, m := range others {
		if _, err := d.Hosts.Sudo(ctx, m, "systemctl start keepalived"); err != nil {
			return err
		}
	}
	if d.vipHolder(ctx) != victim {
		return fmt.Errorf("the VIP did not move to %s", victim.Name)
	}
	// Connections to the VIP's old holder are dead; wait until the endpoint answers again.
	d.API.CloseIdle()
	_, err := waitFor(ctx, 30*time.Second, func() (string, error) {
		var b []byte
		return "", d.API.WithTimeout(2*time.Second).Get(ctx, "/readyz", &b)
	})
	return err
}

func (d *Drill) leaseHolder(ctx context.Context, name string) string {
	var l struct {
		Spec struct {
			HolderIdentity string `json:"holderIdentity"`
		} `json:"spec"`
	}
	if err := d.API.Get(ctx, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+name, &l); err != nil {
		return ""
	}
	// Holder identities are "<node>_<uuid>".
	h, _, _ := strings.Cut(l.Spec.HolderIdentity, "_")
	return h
}

// StopCommand stops everything a master runs (as a power loss would, but recoverable).
const StopCommand = `systemctl stop kubelet
for p in kube-apiserver kube-controller kube-scheduler; do pkill -9 -x $p; done
systemctl stop keepalived haproxy etcd flanneld 2>/dev/null; true`

// StartCommand brings it back.
const StartCommand = `for s in etcd haproxy keepalived flanneld kubelet; do
  systemctl list-unit-files "$s.service" 2>/dev/null | grep -q "^$s.service.*enabled" && systemctl start $s
done; true`

// Run runs the drill; the master is brought back whatever happens in between.
func (d *Drill) Drill(ctx context.Context) (*DrillResult, error) {
	victim, why, err := d.Victim(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.Align(ctx, victim); err != nil {
		return nil, err
	}
	ns := fmt.Sprintf("kinstall-ha-drill-%d", time.Now().Unix())
	if err := d.createNamespace(ctx, ns); err != nil {
		return nil, err
	}
	defer d.API.Do(context.Background(), "DELETE", "/api/v1/namespaces/"+ns, nil, nil) //nolint:errcheck // best effort
	res := &DrillResult{Victim: victim.Name, VictimWhy: why, Leases: map[string][2]string{}}
	for _, l := range Leases {
		res.Leases[l] = [2]string{d.leaseHolder(ctx, l), ""}
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.probe(probeCtx, res) }()
	time.Sleep(time.Second) // a baseline of good probes
	d.logf("stopping %s (%s)", victim.Name, why)
	stopped := time.Now()
	if _, err := d.Hosts.Sudo(ctx, victim, StopCommand); err != nil {
		stopProbe()
		wg.Wait()
		return res, fmt.Errorf("stop %s: %w", victim.Name, err)
	}
	defer func() {
		if res.Recovered == 0 && res.RecoverErr == nil {
			_, _ = d.Hosts.Sudo(context.Background(), victim, StartCommand)
		}
	}()
	// Leases: wait until every lease the victim held has moved (lease duration 15 s + retries).
	deadline := time.Now().Add(90 * time.Second)
	for {
		moved := true
		for _, l := range Leases {
			h := d.leaseHolder(ctx, l)
			res.Leases[l] = [2]string{res.Leases[l][0], h}
			if h == "" || h == victim.Name {
				moved = false
			}
		}
		if moved || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return res, err
		}
	}
	res.EtcdHealthy, res.EtcdMembers, res.EtcdQuorum = d.Etcd(ctx)
	d.logf("leases: %v; etcd %d/%d healthy, quorum %v", res.Leases, res.EtcdHealthy, res.EtcdMembers, res.EtcdQuorum)
	start := time.Now()
	res.DeploymentErr = d.deployment(ctx, ns, victim)
	res.DeploymentScheduled = time.Since(start)
	time.Sleep(2 * time.Second)
	stopProbe()
	wg.Wait()
	d.logf("outage over the drill: longest %s, %d of %d probes failed (%s since the stop)", res.LongestOutage.Round(10*time.Millisecond), res.Failed, res.Probes, time.Since(stopped).Round(time.Second))

	d.logf("starting %s again", victim.Name)
	start = time.Now()
	if _, err := d.Hosts.Sudo(ctx, victim, StartCommand); err != nil {
		res.RecoverErr = err
		return res, nil
	}
	deadline = time.Now().Add(4 * time.Minute)
	for {
		// The victim's own API answers and its kubelet has reported since the restart (until
		// then the API still shows its last, stale status); then every check passes.
		checks := append([]Check{d.back(ctx, victim, start)}, d.Basic(ctx)...)
		if OK(checks) {
			res.Recovered = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			for _, c := range checks {
				if !c.OK {
					res.RecoverErr = fmt.Errorf("%s: %s", c.Name, c.Detail)
				}
			}
			break
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return res, err
		}
	}
	return res, nil
}

// back checks that the restarted master serves again: its API server answers /readyz on its
// own address, and its Node has a Ready heartbeat newer than the restart.
func (d *Drill) back(ctx context.Context, victim *cluster.Host, since time.Time) Check {
	c := Check{Name: victim.Name + " back"}
	var body []byte
	own := d.API.WithServer("https://" + hostPortString(victim.IP, fmt.Sprint(d.Cluster.Config.APIServerPort))).WithTimeout(2 * time.Second)
	if err := own.Get(ctx, "/readyz", &body); err != nil {
		c.Detail = "its API server: " + err.Error()
		return c
	}
	var n struct {
		Status struct {
			Conditions []struct {
				Type              string    `json:"type"`
				Status            string    `json:"status"`
				LastHeartbeatTime time.Time `json:"lastHeartbeatTime"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := d.API.Get(ctx, "/api/v1/nodes/"+victim.Name, &n); err != nil {
		c.Detail = err.Error()
		return c
	}
	for _, cd := range n.Status.Conditions {
		// Heartbeats have a 1 s resolution.
		if cd.Type == "Ready" && cd.Status == "True" && !cd.LastHeartbeatTime.Before(since.Truncate(time.Second)) {
			c.OK = true
			return c
		}
	}
	c.Detail = "its kubelet has not reported Ready since the restart"
	return c
}

// Basic runs the checks that need no test workload: nodes, control plane, etcd.
func (v *Verifier) Basic(ctx context.Context) []Check {
	d := v
	var out []Check
	for _, f := range []struct {
		name string
		fn   func(context.Context) (string, error)
	}{{"nodes", d.nodesReady}, {"control plane", d.controlPlane}, {"etcd", d.etcd}} {
		detail, err := f.fn(ctx)
		c := Check{Name: f.name, OK: err == nil, Detail: detail}
		if err != nil {
			c.Detail = err.Error()
		}
		out = append(out, c)
	}
	return out
}

// probe GETs /readyz through the endpoint every 100 ms and records the longest time without
// a good answer.
func (d *Drill) probe(ctx context.Context, res *DrillResult) {
	cl := d.API.WithTimeout(time.Second)
	lastOK := time.Now()
	for {
		t := time.Now()
		var body []byte
		err := cl.Do(ctx, http.MethodGet, "/readyz", nil, &body)
		if ctx.Err() != nil {
			return
		}
		res.Probes++
		if err == nil {
			if gap := time.Since(lastOK); gap > res.LongestOutage {
				res.LongestOutage = gap
			}
			lastOK = time.Now()
		} else {
			res.Failed++
		}
		if wait := 100*time.Millisecond - time.Since(t); wait > 0 {
			if sleep(ctx, wait) != nil {
				return
			}
		}
	}
}

// deployment creates a Deployment while the master is down and waits until its pods run.
func (d *Drill) deployment(ctx context.Context, ns string, victim *cluster.Host) error {
	dep := map[string]any{
		"metadata": map[string]any{"name": "ha-drill"},
		"spec": map[string]any{
			"replicas": 2,
			"selector": map[string]any{"matchLabels": map[string]string{"app": "ha-drill"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]string{"app": "ha-drill", "role": "drill"}},
				"spec": map[string]any{
					"tolerations":                   tolerateAll,
					"terminationGracePeriodSeconds": 1,
					// Not on the stopped master: its kubelet is down.
					"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
						"nodeSelectorTerms": []map[string]any{{"matchExpressions": []map[string]any{{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": []string{victim.Name}}}}}}}},
					"containers": []map[string]any{{"name": "sleep", "image": d.Image, "imagePullPolicy": "IfNotPresent", "args": []string{"sleep"}}},
				},
			},
		},
	}
	if err := d.API.Do(ctx, "POST", "/apis/apps/v1/namespaces/"+ns+"/deployments", dep, nil); err != nil {
		return err
	}
	_, err := d.waitPods(ctx, ns, "role=drill", 2, func(p pod) bool { return p.Status.Phase == "Running" })
	return err
}

func (d *Drill) logf(format string, args ...any) {
	if d.Log != nil {
		fmt.Fprintf(d.Log, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

// OK reports whether the drill proved HA.
func (r *DrillResult) OK() bool {
	if !r.EtcdQuorum || r.DeploymentErr != nil || r.RecoverErr != nil || r.Recovered == 0 {
		return false
	}
	for _, l := range r.Leases {
		if l[1] == "" || l[1] == r.Victim {
			return false
		}
	}
	return true
}

// Print writes the drill's table.
func (r *DrillResult) Print(w io.Writer, endpoint string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	errText := func(err error, ok string) string {
		if err != nil {
			return "FAILED: " + err.Error()
		}
		return ok
	}
	row("stopped master", r.Victim+" ("+r.VictimWhy+")")
	row("longest API outage via "+endpoint, fmt.Sprintf("%.2f s (%d of %d probes every 100 ms failed)", r.LongestOutage.Seconds(), r.Failed, r.Probes))
	for _, l := range Leases {
		v := r.Leases[l]
		moved := "moved"
		switch {
		case v[1] == "" || v[1] == r.Victim:
			moved = "DID NOT MOVE"
		case v[0] != r.Victim:
			moved = "kept: was not on the stopped master"
		}
		row(l+" leader", fmt.Sprintf("%s -> %s (%s)", v[0], v[1], moved))
	}
	q := "kept"
	if !r.EtcdQuorum {
		q = "LOST"
	}
	row("etcd during the outage", fmt.Sprintf("%d/%d members healthy, quorum %s", r.EtcdHealthy, r.EtcdMembers, q))
	row("new Deployment scheduled and running", errText(r.DeploymentErr, fmt.Sprintf("yes, in %.1f s", r.DeploymentScheduled.Seconds())))
	row("master back, cluster fully healthy", errText(r.RecoverErr, fmt.Sprintf("in %.1f s", r.Recovered.Seconds())))
	verdict := "PASSED"
	if !r.OK() {
		verdict = "FAILED"
	}
	row("HA drill", verdict)
	_ = tw.Flush()
}

// EndpointLabel names the endpoint the probe used.
func EndpointLabel(c *cluster.Cluster) string { return kube.TaskboxServer(c) }
