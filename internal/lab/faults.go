package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

func (l *Lab) host(name string) (Host, error) {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("lab %s has no host %q", l.Name, name)
}

// Stop shuts a host down cleanly (systemd stops its services).
func (l *Lab) Stop(ctx context.Context, name string) error {
	_, err := l.dockerOn(ctx, "stop", name)
	return err
}

// Kill crashes a host.
func (l *Lab) Kill(ctx context.Context, name string) error {
	_, err := l.dockerOn(ctx, "kill", name)
	return err
}

// Start boots a stopped host and waits for sshd.
func (l *Lab) Start(ctx context.Context, name string) error {
	h, err := l.dockerOn(ctx, "start", name)
	if err != nil {
		return err
	}
	return waitSSH(ctx, h.IP, 60*time.Second)
}

// dockerOn runs a docker verb (stop, kill, start) on a host's container.
func (l *Lab) dockerOn(ctx context.Context, verb, name string) (Host, error) {
	h, err := l.host(name)
	if err != nil {
		return h, err
	}
	_, err = docker(ctx, verb, h.Container)
	return h, err
}

// Exec runs a command in a host as root, for test assertions, without SSH.
func (l *Lab) Exec(ctx context.Context, name, cmd string) (string, error) {
	h, err := l.host(name)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "docker", "exec", h.Container, "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %v: %s", name, cmd, err, out)
	}
	return string(out), nil
}

// The partition rules live in the taskbox's iptables, not in the lab host: an installer that
// flushes a host's iptables (kube-proxy, a firewall role) cannot heal a partition by accident.
// Host-to-host traffic crosses FORWARD (bridge-nf-call-iptables), hence DOCKER-USER;
// taskbox-to-host traffic crosses INPUT and OUTPUT. Packets are dropped, like a dead link.
var hooks = []string{"DOCKER-USER", "INPUT", "OUTPUT"}

// PartitionRules returns the iptables commands that cut a host off (from peers only, if given).
func (l *Lab) PartitionRules(ip string, peerIPs ...string) [][]string {
	comment := []string{"-m", "comment", "--comment", "kinstall-lab " + l.Name}
	var rules [][]string
	if len(peerIPs) == 0 {
		rules = append(rules, append([]string{"-I", l.chain(), "-s", ip}, append(comment, "-j", "DROP")...))
		rules = append(rules, append([]string{"-I", l.chain(), "-d", ip}, append(comment, "-j", "DROP")...))
	}
	for _, p := range peerIPs {
		rules = append(rules, append([]string{"-I", l.chain(), "-s", ip, "-d", p}, append(comment, "-j", "DROP")...))
		rules = append(rules, append([]string{"-I", l.chain(), "-s", p, "-d", ip}, append(comment, "-j", "DROP")...))
	}
	return rules
}

func iptables(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (l *Lab) ensureChain(ctx context.Context) error {
	_ = iptables(ctx, "-N", l.chain())
	for _, hook := range hooks {
		if iptables(ctx, "-C", hook, "-j", l.chain()) != nil {
			if err := iptables(ctx, "-I", hook, "-j", l.chain()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Partition drops all traffic of a host, or only between it and the given peers.
func (l *Lab) Partition(ctx context.Context, name string, peers ...string) error {
	ip, err := l.IP(name)
	if err != nil {
		return err
	}
	var peerIPs []string
	for _, p := range peers {
		pip, err := l.IP(p)
		if err != nil {
			return err
		}
		peerIPs = append(peerIPs, pip)
	}
	if err := l.ensureChain(ctx); err != nil {
		return err
	}
	for _, r := range l.PartitionRules(ip, peerIPs...) {
		if err := iptables(ctx, r...); err != nil {
			return err
		}
	}
	return nil
}

// Heal removes every partition rule that names the host.
func (l *Lab) Heal(ctx context.Context, name string) error {
	ip, err := l.IP(name)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-S", l.chain()).Output()
	if err != nil {
		return nil // no chain: nothing partitioned
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "-A ") || !(strings.Contains(line, " "+ip+"/32 ")) {
			continue
		}
		f := strings.Fields(line)
		f[0] = "-D"
		// Unquote the comment: iptables -S prints it quoted.
		args := strings.Fields(strings.ReplaceAll(strings.Join(f, " "), `"`, ""))
		for i, a := range args {
			if a == "--comment" && i+2 < len(args) {
				args = append(args[:i+1], append([]string{args[i+1] + " " + args[i+2]}, args[i+3:]...)...)
				break
			}
		}
		if err := iptables(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Down removes the hosts, their volumes, the network and the partition rules.
func (l *Lab) Down(ctx context.Context) error {
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label="+labelLab(l.Name))
	if err != nil {
		return err
	}
	if ids != "" {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			return err
		}
	}
	_, _ = docker(ctx, "network", "rm", l.network())
	if iptables(ctx, "-F", l.chain()) == nil {
		for _, hook := range hooks {
			_ = iptables(ctx, "-D", hook, "-j", l.chain())
		}
		_ = iptables(ctx, "-X", l.chain())
	}
	return nil
}

// HostStatus is one host's state.
type HostStatus struct {
	Host  Host
	State string // docker's: running, exited, ...
	SSH   bool
	Rules int // partition rules naming it
}

// Status reports each host.
func (l *Lab) Status(ctx context.Context) ([]HostStatus, error) {
	rules, _ := exec.CommandContext(ctx, "iptables", "-w", "-S", l.chain()).Output()
	var out []HostStatus
	for _, h := range l.Hosts {
		state, err := docker(ctx, "inspect", "-f", "{{.State.Status}}", h.Container)
		if err != nil {
			state = "missing"
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		ssh := waitSSH(sctx, h.IP, 500*time.Millisecond) == nil
		cancel()
		out = append(out, HostStatus{Host: h, State: state, SSH: ssh, Rules: strings.Count(string(rules), " "+h.IP+"/32 ")})
	}
	return out, nil
}
