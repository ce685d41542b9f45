// Package runner runs role tasks on many hosts at once and reports, per host, what each task did.
//
// A task is small and idempotent: Check looks at the host and says what would change, Apply
// changes it. The same task code serves install, re-run and dry run (--check runs Check only).
package runner

import (
	"context"
	"fmt"
	"sync"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/transport"
)

// Status is what a task did on one host.
type Status int

const (
	StatusOK      Status = iota // already in the wanted state
	StatusChanged               // changed (or, in a dry run, would change)
	StatusSkipped               // not for this host
	StatusFailed
)

func (s Status) String() string {
	return [...]string{"ok", "changed", "skipped", "failed"}[s]
}

// Task is one step of a role.
type Task struct {
	Name string
	// When, if set, selects the hosts the task is for; the others report skipped.
	When func(h *Host) bool
	// Check inspects the host and returns a short description of what Apply would change,
	// or "" when the host is already as wanted. A nil Check means "always apply".
	Check func(ctx context.Context, h *Host) (change string, err error)
	// Apply makes the change. It is not called in a dry run. A nil Apply makes the task
	// read-only (facts, health checks): it reports ok when Check succeeds.
	Apply func(ctx context.Context, h *Host) error
}

// Phase is a role's tasks on a set of hosts: one step of the plan.
type Phase struct {
	Name     string
	Hosts    []*cluster.Host
	Tasks    []Task
	Serial   int  // 0: every host at once (up to --forks); N: N hosts at a time (rolling)
	Lockstep bool // each task on every host before the next task (e.g. members that must start together)
	Critical bool // quorum-critical: any failure stops the whole run
}

// Host is a cluster host during a run: its connection and what tasks learned about it.
type Host struct {
	*cluster.Host
	Conn   transport.Conn
	DryRun bool

	// peer connects to another host of the run (same connection pool, same logs).
	peer func(ctx context.Context, h *cluster.Host) (*Host, error)

	mu    sync.Mutex
	facts map[string]string
}

// Peer returns another host of the cluster, connected through the run's pool, for a task that
// must act elsewhere too (e.g. the first master creates the token a joining node uses).
func (h *Host) Peer(ctx context.Context, other *cluster.Host) (*Host, error) {
	if h.peer == nil {
		return nil, fmt.Errorf("%s: no connection to %s: not in a run", h.Name, other.Name)
	}
	return h.peer(ctx, other)
}

// SetFact records something a task learned, for later tasks.
func (h *Host) SetFact(key, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.facts == nil {
		h.facts = map[string]string{}
	}
	h.facts[key] = value
}

// Fact returns a recorded fact, or "".
func (h *Host) Fact(key string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.facts[key]
}

// Run runs a command and turns a non-zero exit into an error naming host, command and stderr.
func (h *Host) Run(ctx context.Context, c transport.Cmd) (string, error) {
	res, err := h.Conn.Run(ctx, c)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), &CommandError{Host: h.Name, Command: c.Command, ExitCode: res.ExitCode, Stderr: tail(string(res.Stderr), 5)}
	}
	return string(res.Stdout), nil
}

// Sudo runs a command as the become user (root).
func (h *Host) Sudo(ctx context.Context, command string) (string, error) {
	return h.Run(ctx, transport.Cmd{Command: command, Sudo: true})
}

// CommandError is a command that ran and exited non-zero.
type CommandError struct {
	Host     string
	Command  string
	ExitCode int
	Stderr   string // last lines
}

func (e *CommandError) Error() string {
	cmd := transport.FirstLine(e.Command)
	if len(cmd) > 160 {
		cmd = cmd[:160] + "..." // the full command is in the host's run log
	}
	msg := fmt.Sprintf("command %q exited %d", cmd, e.ExitCode)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Facts returns a copy of what tasks recorded on a host.
func (h *Host) Facts() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]string, len(h.facts))
	for k, v := range h.facts {
		out[k] = v
	}
	return out
}
