package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/testsshd"
	"github.com/kinstall/kinstall/internal/transport"
)

type config struct {
	reps, ansibleReps   int
	ansible             bool
	commands            int
	ansibleRoleMaxHosts int // 0: no limit
}

// bed is N hosts: one sshd on N loopback addresses, an inventory both tools read.
type bed struct {
	dir, inventory string
	srv            *testsshd.Server
	cluster        *cluster.Cluster
}

func newBed(n int) (*bed, error) {
	dir, err := os.MkdirTemp("", "kinstall-bench-")
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i := 1; i <= n; i++ {
		addrs = append(addrs, fmt.Sprintf("127.0.%d.%d", 3+i/250, i%250+1))
	}
	srv, err := testsshd.Launch(dir, addrs...)
	if err != nil {
		return nil, err
	}
	var inv strings.Builder
	inv.WriteString("[all]\n")
	for i, a := range addrs {
		fmt.Fprintf(&inv, "h%d ansible_host=%s\n", i+1, a)
	}
	fmt.Fprintf(&inv, "[kube-master]\nh1\n[etcd]\nh1\n[all:vars]\nansible_port=%d\nansible_user=root\nansible_ssh_private_key_file=%s\n", srv.Port, srv.UserKeyFile)
	fmt.Fprintf(&inv, "ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'\n", srv.KnownHostsFile)
	b := &bed{dir: dir, srv: srv, inventory: filepath.Join(dir, "hosts.ini")}
	if err := os.WriteFile(b.inventory, []byte(inv.String()), 0o600); err != nil {
		return nil, err
	}
	empty := filepath.Join(dir, "common.yaml")
	_ = os.WriteFile(empty, nil, 0o600)
	b.cluster, err = cluster.Load(b.inventory, empty)
	return b, err
}

func (b *bed) close() {
	b.srv.Stop()
	os.RemoveAll(b.dir)
}

func median(reps int, fn func() (time.Duration, error)) (float64, error) {
	var ds []float64
	for i := 0; i < reps; i++ {
		d, err := fn()
		if err != nil {
			return 0, err
		}
		ds = append(ds, d.Seconds())
	}
	sort.Float64s(ds)
	return ds[len(ds)/2], nil
}

func runHosts(ctx context.Context, cfg config, n int, push bool) ([]Row, error) {
	b, err := newBed(n)
	if err != nil {
		return nil, err
	}
	defer b.close()
	fan := Row{Workload: fmt.Sprintf("fan-out %d commands", cfg.commands), Hosts: n}
	if fan.Kinstall, err = median(cfg.reps, func() (time.Duration, error) { return b.kinstallCommands(ctx, cfg.commands) }); err != nil {
		return nil, fmt.Errorf("kinstall fan-out: %w", err)
	}
	if fan.RefPerCmd, err = median(cfg.reps, func() (time.Duration, error) { return b.reference(cfg.commands, false) }); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	if fan.RefOne, err = median(cfg.reps, func() (time.Duration, error) { return b.reference(cfg.commands, true) }); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	rows := []Row{fan}
	rerun := Row{Workload: fmt.Sprintf("role of %d files, first run", cfg.commands), Hosts: n}
	again := Row{Workload: fmt.Sprintf("role of %d files, re-run", cfg.commands), Hosts: n}
	// Median of first runs: each one starts from a clean directory.
	var firsts, reruns []float64
	for i := 0; i < cfg.reps; i++ {
		os.RemoveAll("/tmp/kinstall-bench-files")
		d1, err := b.kinstallFiles(ctx, cfg.commands)
		if err != nil {
			return nil, err
		}
		d2, err := b.kinstallFiles(ctx, cfg.commands)
		if err != nil {
			return nil, err
		}
		firsts, reruns = append(firsts, d1.Seconds()), append(reruns, d2.Seconds())
	}
	sort.Float64s(firsts)
	sort.Float64s(reruns)
	rerun.Kinstall, again.Kinstall = firsts[len(firsts)/2], reruns[len(reruns)/2]
	var pushRow, pushAgain Row
	var big string
	if push {
		big = filepath.Join(b.dir, "big.bin")
		data := make([]byte, 50<<20)
		_, _ = rand.Read(data)
		if err := os.WriteFile(big, data, 0o644); err != nil {
			return nil, err
		}
		pushRow = Row{Workload: "push 50 MiB", Hosts: n}
		pushAgain = Row{Workload: "push 50 MiB again (unchanged)", Hosts: n}
		os.RemoveAll("/tmp/kinstall-bench-push")
		d, err := b.kinstallUpload(ctx, big)
		if err != nil {
			return nil, err
		}
		pushRow.Kinstall = d.Seconds()
		if pushAgain.Kinstall, err = median(cfg.reps, func() (time.Duration, error) { return b.kinstallUpload(ctx, big) }); err != nil {
			return nil, err
		}
		os.RemoveAll("/tmp/kinstall-bench-push")
	}
	if cfg.ansible {
		if fan.Ansible, err = median(cfg.ansibleReps, func() (time.Duration, error) { return b.ansible(commandsPlaybook(cfg.commands), 0) }); err != nil {
			return nil, err
		}
		if fan.AnsibleN, err = median(cfg.ansibleReps, func() (time.Duration, error) { return b.ansible(commandsPlaybook(cfg.commands), n) }); err != nil {
			return nil, err
		}
		rows[0] = fan
		if cfg.ansibleRoleMaxHosts == 0 || n <= cfg.ansibleRoleMaxHosts {
			os.RemoveAll("/tmp/ansible-bench-files")
			if rerun.Ansible, err = median(1, func() (time.Duration, error) { return b.ansible(filesPlaybook(cfg.commands), 0) }); err != nil {
				return nil, err
			}
			if again.Ansible, err = median(cfg.ansibleReps, func() (time.Duration, error) { return b.ansible(filesPlaybook(cfg.commands), 0) }); err != nil {
				return nil, err
			}
			os.RemoveAll("/tmp/ansible-bench-files")
		}
		if push {
			os.RemoveAll("/tmp/ansible-bench-push")
			if pushRow.Ansible, err = median(1, func() (time.Duration, error) { return b.ansible(pushPlaybook(big), 0) }); err != nil {
				return nil, err
			}
			if pushAgain.Ansible, err = median(cfg.ansibleReps, func() (time.Duration, error) { return b.ansible(pushPlaybook(big), 0) }); err != nil {
				return nil, err
			}
			os.RemoveAll("/tmp/ansible-bench-push")
		}
	}
	rows = append(rows, rerun, again)
	if push {
		rows = append(rows, pushRow, pushAgain)
	}
	return rows, nil
}

// runPhase runs tasks on every host through kinstall's runner and transport, connections
// included, as `kinstall install` would.
func (b *bed) runPhase(ctx context.Context, tasks []runner.Task) (time.Duration, error) {
	start := time.Now()
	pool := transport.NewPool(transport.Options{KnownHostsFile: b.srv.KnownHostsFile})
	defer pool.CloseAll()
	r := runner.New(pool, runner.Options{})
	defer r.Close()
	err := r.Run(ctx, []runner.Phase{{Name: "bench", Hosts: b.cluster.Hosts, Tasks: tasks}})
	return time.Since(start), err
}

func (b *bed) kinstallCommands(ctx context.Context, n int) (time.Duration, error) {
	var tasks []runner.Task
	for i := 0; i < n; i++ {
		cmd := fmt.Sprintf("echo %d", i)
		tasks = append(tasks, runner.Task{Name: cmd, Apply: func(ctx context.Context, h *runner.Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: cmd})
			return err
		}})
	}
	return b.runPhase(ctx, tasks)
}

// kinstallFiles: a role of n small config files per host (paths per host: every "host" is
// this machine).
func (b *bed) kinstallFiles(ctx context.Context, n int) (time.Duration, error) {
	var tasks []runner.Task
	for i := 0; i < n; i++ {
		i := i
		tasks = append(tasks, runner.EnsureFileAt(fmt.Sprintf("file %d", i),
			func(h *runner.Host) string { return fmt.Sprintf("/tmp/kinstall-bench-files/%s/f%d.conf", h.Name, i) }, 0o644,
			func(h *runner.Host) ([]byte, error) { return []byte(fmt.Sprintf("host=%s file=%d\n", h.Name, i)), nil }))
	}
	return b.runPhase(ctx, tasks)
}

func (b *bed) kinstallUpload(ctx context.Context, local string) (time.Duration, error) {
	task := runner.Task{Name: "push", Apply: func(ctx context.Context, h *runner.Host) error {
		_, err := h.Conn.Upload(ctx, local, transport.FileSpec{Path: "/tmp/kinstall-bench-push/" + h.Name + "/big.bin", Mode: 0o644, Sudo: true})
		return err
	}}
	return b.runPhase(ctx, []runner.Task{task})
}

// reference is a minimal Go SSH client: one connection per host, and either one session per
// command or one session running all commands.
func (b *bed) reference(n int, oneSession bool) (time.Duration, error) {
	key, err := os.ReadFile(b.srv.UserKeyFile)
	if err != nil {
		return 0, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return 0, err
	}
	hk, err := knownhosts.New(b.srv.KnownHostsFile)
	if err != nil {
		return 0, err
	}
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}, Timeout: 10 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(b.srv.Addrs))
	for _, a := range b.srv.Addrs {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			c, err := ssh.Dial("tcp", fmt.Sprintf("%s:%d", addr, b.srv.Port), cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var cmds []string
			for i := 0; i < n; i++ {
				cmds = append(cmds, fmt.Sprintf("echo %d", i))
			}
			if oneSession {
				cmds = []string{strings.Join(cmds, "; ")}
			}
			for _, cmd := range cmds {
				s, err := c.NewSession()
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Output(cmd); err != nil {
					errs <- err
				}
				s.Close()
			}
		}(a)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	return time.Since(start), nil
}

func commandsPlaybook(n int) string {
	var b strings.Builder
	b.WriteString("- hosts: all\n  gather_facts: false\n  tasks:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - command: echo %d\n", i)
	}
	return b.String()
}

func filesPlaybook(n int) string {
	var b strings.Builder
	b.WriteString("- hosts: all\n  gather_facts: false\n  tasks:\n    - file: {path: '/tmp/ansible-bench-files/{{ inventory_hostname }}', state: directory}\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - copy: {dest: '/tmp/ansible-bench-files/{{ inventory_hostname }}/f%d.conf', content: 'host={{ inventory_hostname }} file=%d\n', mode: '0644'}\n", i, i)
	}
	return b.String()
}

func pushPlaybook(src string) string {
	return fmt.Sprintf("- hosts: all\n  gather_facts: false\n  tasks:\n    - file: {path: '/tmp/ansible-bench-push/{{ inventory_hostname }}', state: directory}\n    - copy: {src: '%s', dest: '/tmp/ansible-bench-push/{{ inventory_hostname }}/big.bin', mode: '0644'}\n", src)
}

// ansible runs a playbook on the same inventory; forks 0 means Ansible's default (5).
func (b *bed) ansible(playbook string, forks int) (time.Duration, error) {
	pb := filepath.Join(b.dir, "playbook.yml")
	if err := os.WriteFile(pb, []byte(playbook), 0o644); err != nil {
		return 0, err
	}
	args := []string{"-i", b.inventory, pb}
	if forks > 0 {
		args = append(args, "--forks", fmt.Sprint(forks))
	}
	cmd := exec.Command("ansible-playbook", args...)
	cmd.Env = append(os.Environ(), "ANSIBLE_PIPELINING=True", "ANSIBLE_HOST_KEY_CHECKING=True", "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3", "ANSIBLE_INVENTORY_ENABLED=ini")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ansible-playbook: %v\n%s", err, tail(string(out)))
	}
	return time.Since(start), nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
