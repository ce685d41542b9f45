package playbook

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/preflight"
)

// HostFacts is one host as `kinstall ping` shows it; Reached is false when it could not be
// reached.
type HostFacts struct {
	Name, Address                            string
	Reached                                  bool
	User, Root, OS, Arch, CPUs, MemMiB, Skew string
}

// Ping reaches every host, checks root access and gathers what each host is.
func (s *Session) Ping(ctx context.Context) ([]HostFacts, error) {
	runErr := s.Runner.Run(ctx, []runner.Phase{{Name: "ping", Hosts: s.Cluster.Hosts, Tasks: preflight.GatherFacts()}})
	var out []HostFacts
	for _, ch := range s.Cluster.Hosts {
		f := HostFacts{Name: ch.Name, Address: ch.Target.Address}
		if ch.Target.Local {
			f.Address = "local"
		}
		if h := s.Runner.Host(ch.Name); h != nil {
			fc := h.Facts()
			f.Reached = true
			f.User, f.Root, f.OS, f.Arch = fc[preflight.FactUser], fc[preflight.FactSudo], fc[preflight.FactOS], fc[preflight.FactArch]
			f.CPUs, f.MemMiB, f.Skew = fc[preflight.FactCPUs], fc[preflight.FactMemMiB], fc[preflight.FactSkew]
			if f.Root == "" {
				f.Root = "NO"
			}
		}
		out = append(out, f)
	}
	return out, runErr
}

// Exec runs one shell command on every (--limit) host, as root with become, and returns each
// host's "rc=N" line and output, by host name.
func (s *Session) Exec(ctx context.Context, command string, become bool) (map[string]string, error) {
	var mu sync.Mutex
	outputs := map[string]string{}
	task := runner.Task{Name: "exec", Apply: func(ctx context.Context, h *runner.Host) error {
		res, err := h.Conn.Run(ctx, transport.Cmd{Command: command, Sudo: become})
		if err != nil {
			return err
		}
		mu.Lock()
		outputs[h.Name] = fmt.Sprintf("rc=%d\n%s%s", res.ExitCode, res.Stdout, res.Stderr)
		mu.Unlock()
		if res.ExitCode != 0 {
			return fmt.Errorf("exit code %d", res.ExitCode)
		}
		return nil
	}}
	err := s.Runner.Run(ctx, []runner.Phase{{Name: "exec", Hosts: s.Cluster.Hosts, Tasks: []runner.Task{task}}})
	for n, o := range outputs {
		outputs[n] = strings.TrimRight(o, "\n")
	}
	return outputs, err
}
