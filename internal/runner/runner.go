package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/transport"
)

// Dialer opens connections; *transport.Pool satisfies it, tests may pass their own.
type Dialer interface {
	Get(ctx context.Context, t transport.Target) (transport.Conn, error)
}

// Options control a run.
type Options struct {
	Forks    int       // hosts worked on at once; default 100
	DryRun   bool      // run Check only; change nothing
	Limit    []string  // only these host names (empty: all)
	RunDir   string    // per-host command logs (0600); empty: no logs
	Report   Reporter  // progress output; default: plain lines to io.Discard
	Commands io.Writer // if set (-v), every command's first line, secrets masked
}

// Runner runs phases over connections from a Dialer.
type Runner struct {
	opts   Options
	dialer Dialer

	mu     sync.Mutex
	hosts  map[string]*Host // connected hosts, by name
	down   map[string]error // hosts that failed: skipped for the rest of the run
	recap  map[string]*HostRecap
	logs   map[string]*hostLog
	errors *multierror.Error

	execSlots chan struct{} // bounds Sudo calls to --forks
}

// New returns a Runner. Close it to close the per-host logs (connections belong to the Dialer).
func New(d Dialer, o Options) *Runner {
	if o.Forks <= 0 {
		o.Forks = 100
	}
	if o.Report == nil {
		o.Report = NewLineReporter(io.Discard, false)
	}
	return &Runner{opts: o, dialer: d, hosts: map[string]*Host{}, down: map[string]error{},
		recap: map[string]*HostRecap{}, logs: map[string]*hostLog{}, execSlots: make(chan struct{}, o.Forks)}
}

// TaskError is a task that failed on a host.
type TaskError struct {
	Host, Phase, Task string
	Err               error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("%s: %s / %s: %v", e.Host, e.Phase, e.Task, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// ErrStopped is returned (wrapped) when a failure in a critical phase stopped the run.
var ErrStopped = errors.New("run stopped")

// Run runs the phases in order and returns every host failure, aggregated.
func (r *Runner) Run(ctx context.Context, phases []Phase) error {
	for _, p := range phases {
		if err := ctx.Err(); err != nil {
			r.addError(&TaskError{Host: "-", Phase: p.Name, Task: "-", Err: err})
			break
		}
		hosts := r.selectHosts(p.Hosts)
		r.opts.Report.PhaseStart(p.Name, len(hosts), len(p.Tasks))
		start := time.Now()
		failed := r.runPhase(ctx, p, hosts)
		r.opts.Report.PhaseEnd(p.Name, time.Since(start))
		if failed && p.Critical {
			r.addError(fmt.Errorf("phase %s is quorum-critical and failed on a host: %w before the next phase", p.Name, ErrStopped))
			break
		}
	}
	if r.errors != nil {
		// Hosts finish in any order; report them in a stable one.
		sort.SliceStable(r.errors.Errors, func(i, j int) bool {
			a, aok := r.errors.Errors[i].(*TaskError)
			b, bok := r.errors.Errors[j].(*TaskError)
			return aok && bok && a.Phase == b.Phase && a.Host < b.Host
		})
	}
	return r.errors.ErrorOrNil()
}

// Recap returns per-host counts, sorted by host name.
func (r *Runner) Recap() []HostRecap {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]HostRecap, 0, len(r.recap))
	for _, h := range r.recap {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// Close closes the per-host logs.
func (r *Runner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs *multierror.Error
	for _, l := range r.logs {
		errs = multierror.Append(errs, l.close())
	}
	return errs.ErrorOrNil()
}

func (r *Runner) selectHosts(hosts []*cluster.Host) []*cluster.Host {
	if len(r.opts.Limit) == 0 {
		return hosts
	}
	var out []*cluster.Host
	for _, h := range hosts {
		for _, name := range r.opts.Limit {
			if h.Name == name {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// runPhase reports whether any host failed.
func (r *Runner) runPhase(ctx context.Context, p Phase, hosts []*cluster.Host) bool {
	switch {
	case p.Serial > 0:
		return r.runPerHost(ctx, p, hosts, p.Serial)
	case p.Lockstep:
		return r.runLockstep(ctx, p, hosts)
	}
	// Each host runs the phase's tasks as fast as it can, up to --forks hosts at once: no host
	// waits for the slowest one at every task.
	return r.runPerHost(ctx, p, hosts, r.opts.Forks)
}

// runLockstep runs each task on every host before the next task, so e.g. all etcd members
// start together; a host that fails drops out of the rest of the phase.
func (r *Runner) runLockstep(ctx context.Context, p Phase, hosts []*cluster.Host) bool {
	active := hosts
	anyFailed := false
	for _, t := range p.Tasks {
		var mu sync.Mutex
		var next []*cluster.Host
		r.forEach(ctx, active, func(ch *cluster.Host) {
			ok := r.runTask(ctx, p, t, ch)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				next = append(next, ch)
			} else {
				anyFailed = true
			}
		})
		active = keepOrder(hosts, next)
		if anyFailed && p.Critical {
			break
		}
	}
	return anyFailed
}

// runPerHost runs all of a phase's tasks on up to slots hosts at a time. With Serial 1 in a
// critical phase the first failure stops it, so a rolling change never takes down more than
// one host.
func (r *Runner) runPerHost(ctx context.Context, p Phase, hosts []*cluster.Host, slots int) bool {
	sem := make(chan struct{}, slots)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for _, ch := range hosts {
		// Take the slot first: with Serial 1 that waits for the previous host to finish, so
		// its failure is known before the next host starts.
		sem <- struct{}{}
		mu.Lock()
		stop := failed && p.Critical
		mu.Unlock()
		if stop || ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func(ch *cluster.Host) {
			defer func() { <-sem; wg.Done() }()
			for _, t := range p.Tasks {
				if !r.runTask(ctx, p, t, ch) {
					mu.Lock()
					failed = true
					mu.Unlock()
					return
				}
			}
		}(ch)
	}
	wg.Wait()
	return failed
}

func (r *Runner) forEach(ctx context.Context, hosts []*cluster.Host, fn func(*cluster.Host)) {
	sem := make(chan struct{}, r.opts.Forks)
	var wg sync.WaitGroup
	for _, ch := range hosts {
		sem <- struct{}{}
		wg.Add(1)
		go func(ch *cluster.Host) {
			defer func() { <-sem; wg.Done() }()
			fn(ch)
		}(ch)
	}
	wg.Wait()
}

// runTask runs one task on one host and reports whether the host may go on.
func (r *Runner) runTask(ctx context.Context, p Phase, t Task, ch *cluster.Host) bool {
	start := time.Now()
	h, err := r.host(ctx, ch)
	if err != nil {
		r.record(p.Name, t.Name, ch.Name, StatusFailed, "", err, time.Since(start))
		return false
	}
	if t.When != nil && !t.When(h) {
		r.record(p.Name, t.Name, ch.Name, StatusSkipped, "", nil, time.Since(start))
		return true
	}
	r.logFor(ch.Name).task(p.Name, t.Name)
	status, change, err := r.execute(ctx, t, h)
	r.record(p.Name, t.Name, ch.Name, status, change, err, time.Since(start))
	return status != StatusFailed
}

func (r *Runner) execute(ctx context.Context, t Task, h *Host) (Status, string, error) {
	change := "run"
	if t.Check != nil {
		c, err := t.Check(ctx, h)
		if err != nil {
			return StatusFailed, "", err
		}
		if c == "" {
			return StatusOK, "", nil
		}
		change = c
	}
	if t.Apply == nil {
		return StatusOK, "", nil
	}
	if h.DryRun {
		return StatusChanged, "would " + change, nil
	}
	if err := t.Apply(ctx, h); err != nil {
		return StatusFailed, change, err
	}
	return StatusChanged, change, nil
}

// host connects to a host once per run; a host that failed stays failed.
func (r *Runner) host(ctx context.Context, ch *cluster.Host) (*Host, error) {
	r.mu.Lock()
	if err, ok := r.down[ch.Name]; ok {
		r.mu.Unlock()
		return nil, fmt.Errorf("skipped: host failed earlier: %w", err)
	}
	if h, ok := r.hosts[ch.Name]; ok {
		r.mu.Unlock()
		return h, nil
	}
	r.mu.Unlock()
	return r.connect(ctx, ch)
}

// connect returns the run's connection to a host, opening it (and its log) on first use.
func (r *Runner) connect(ctx context.Context, ch *cluster.Host) (*Host, error) {
	r.mu.Lock()
	if h, ok := r.hosts[ch.Name]; ok {
		r.mu.Unlock()
		return h, nil
	}
	r.mu.Unlock()
	log, err := r.openLog(ch)
	if err != nil {
		return nil, err
	}
	conn, err := r.dialer.Get(ctx, ch.Target)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	h := &Host{Host: ch, Conn: &loggedConn{Conn: conn, log: log, echo: r.echo(ch.Name)}, DryRun: r.opts.DryRun, peer: r.host}
	r.mu.Lock()
	defer r.mu.Unlock()
	if existing, ok := r.hosts[ch.Name]; ok {
		return existing, nil
	}
	r.hosts[ch.Name] = h
	return h, nil
}

func (r *Runner) record(phase, task, host string, s Status, change string, err error, d time.Duration) {
	r.mu.Lock()
	rc, ok := r.recap[host]
	if !ok {
		rc = &HostRecap{Host: host}
		r.recap[host] = rc
	}
	rc.Elapsed += d
	switch s {
	case StatusOK:
		rc.OK++
	case StatusChanged:
		rc.Changed++
	case StatusSkipped:
		rc.Skipped++
	case StatusFailed:
		rc.Failed++
		if _, ok := r.down[host]; !ok {
			r.down[host] = err
		}
	}
	l := r.logs[host]
	r.mu.Unlock()
	if s == StatusFailed {
		r.addError(&TaskError{Host: host, Phase: phase, Task: task, Err: err})
	}
	if l != nil {
		l.result(s, change, err)
	}
	r.opts.Report.TaskDone(Event{Phase: phase, Task: task, Host: host, Status: s, Change: change, Err: err, Elapsed: d})
}

func (r *Runner) logFor(host string) *hostLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs[host]
}

func (r *Runner) addError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = multierror.Append(r.errors, err)
	r.errors.ErrorFormat = formatErrors
}

// formatErrors prints one failure a line, so a report over many hosts stays readable.
func formatErrors(errs []error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d failure(s):", len(errs))
	for _, e := range errs {
		b.WriteString("\n  - ")
		b.WriteString(strings.ReplaceAll(e.Error(), "\n", "\n    "))
	}
	return b.String()
}

// HostRecap counts what the run did on one host, like Ansible's PLAY RECAP.
type HostRecap struct {
	Host                         string
	OK, Changed, Skipped, Failed int
	Elapsed                      time.Duration
}

func keepOrder(all, subset []*cluster.Host) []*cluster.Host {
	in := make(map[*cluster.Host]bool, len(subset))
	for _, h := range subset {
		in[h] = true
	}
	out := make([]*cluster.Host, 0, len(subset))
	for _, h := range all {
		if in[h] {
			out = append(out, h)
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// echo returns a function that prints a host's commands for -v, or nil.
func (r *Runner) echo(host string) func(string) {
	if r.opts.Commands == nil {
		return nil
	}
	return func(line string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		fmt.Fprintf(r.opts.Commands, "%s [%s] $ %s\n", time.Now().Format("15:04:05"), host, line)
	}
}

// Host returns a host the run connected to, or nil.
func (r *Runner) Host(name string) *Host {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hosts[name]
}

// Hosts runs one command on a cluster host as root, outside any phase: what verify and certs
// read from the hosts. *Runner implements it, so those commands go through the run's
// connections, logs, -v, secret masking and --forks like every task's.
type Hosts interface {
	Sudo(ctx context.Context, h *cluster.Host, command string) (string, error)
}

// Sudo runs command as root on h through the run's logged connection, at most --forks at once
// across the run's callers; a non-zero exit is a *CommandError.
func (r *Runner) Sudo(ctx context.Context, ch *cluster.Host, command string) (string, error) {
	select {
	case r.execSlots <- struct{}{}:
		defer func() { <-r.execSlots }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	h, err := r.connect(ctx, ch)
	if err != nil {
		return "", err
	}
	out, err := h.Sudo(ctx, command)
	if err != nil {
		return out, fmt.Errorf("%s: %w", ch.Name, err)
	}
	return out, nil
}
