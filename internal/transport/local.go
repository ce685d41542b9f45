package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// localConn runs commands on the taskbox itself (ansible_connection=local): no SSH.
type localConn struct {
	t       Target
	o       Options
	isRoot  bool
	secrets []string
}

func newLocal(t Target, o Options) *localConn {
	return &localConn{t: t, o: o, isRoot: os.Geteuid() == 0, secrets: secretList(t)}
}

func (c *localConn) Name() string { return c.t.Name }

func (c *localConn) Run(ctx context.Context, cmd Cmd) (Result, error) {
	res, err := c.run(ctx, cmd)
	if err != nil {
		secrets := append(append([]string{}, c.secrets...), cmd.Secrets...)
		return res, &RunError{Host: c.t.Name, Command: Mask(FirstLine(cmd.Command), secrets), Err: maskErr(err, secrets)}
	}
	return res, nil
}

func (c *localConn) run(ctx context.Context, cmd Cmd) (Result, error) {
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = c.o.CommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"/bin/sh", "-c", cmd.Command}
	stdin := cmd.Stdin
	if cmd.Sudo && !c.isRoot {
		if !c.t.Become {
			return Result{}, fmt.Errorf("this step needs root: set ansible_become=true for %s", c.t.Name)
		}
		user := c.t.BecomeUser
		if user == "" {
			user = "root"
		}
		if c.t.BecomePassword != "" {
			// -k: always ask, so the password line is never left over for the command.
			args = append([]string{"sudo", "-k", "-S", "-p", "", "-u", user, "--"}, args...)
			stdin = append([]byte(c.t.BecomePassword+"\n"), stdin...)
		} else {
			args = append([]string{"sudo", "-n", "-u", user, "--"}, args...)
		}
	}
	x := exec.CommandContext(ctx, args[0], args[1:]...)
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
	x.WaitDelay = 5 * time.Second
	x.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	x.Stdout, x.Stderr = &out, &errb
	start := time.Now()
	err := x.Run()
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), Duration: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("command timed out after %s and was killed: %w", timeout, context.DeadlineExceeded)
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		if cmd.Sudo && !c.isRoot && strings.Contains(errb.String(), "incorrect password") {
			return res, fmt.Errorf("sudo: wrong become password for %s", c.t.Name)
		}
		return res, nil
	case err != nil:
		return res, err
	}
	return res, nil
}

func (c *localConn) WriteFile(ctx context.Context, data []byte, spec FileSpec) (bool, error) {
	return writeData(ctx, c.Run, data, spec)
}

func (c *localConn) Upload(ctx context.Context, local string, spec FileSpec) (bool, error) {
	return installLocalFile(ctx, c.Run, local, spec, func() (string, bool, error) { return local, false, nil })
}

func (c *localConn) Close() error { return nil }
