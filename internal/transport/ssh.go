package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/melbahja/goph"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// PassphraseEnv names the environment variable read for an encrypted private key's passphrase.
const PassphraseEnv = "KINSTALL_SSH_KEY_PASSPHRASE"

func (o Options) withDefaults() Options {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 10 * time.Minute
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.KnownHostsFile == "" {
		if home, err := os.UserHomeDir(); err == nil {
			o.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	return o
}

// sshConn is a Conn over one SSH connection, with one long-lived shell for the login user and,
// when needed, one for the become user.
type sshConn struct {
	t       Target
	o       Options
	client  *goph.Client
	secrets []string

	mu       sync.Mutex
	sftp     *sftp.Client
	user     *shell // login user's shell
	root     *shell // become user's shell
	isRoot   bool   // the login user is already the become user
	sessions atomic.Int32
	closed   chan struct{}
}

func dialSSH(ctx context.Context, t Target, o Options, keys *HostKeyStore) (*sshConn, error) {
	auth, err := authMethods(t)
	if err != nil {
		return nil, err
	}
	user := t.User
	if user == "" {
		user = currentUser()
	}
	addr := net.JoinHostPort(t.Address, strconv.Itoa(t.Port))
	cb, algos, err := keys.callback(addr)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           o.ConnectTimeout,
	}
	type result struct {
		c   *ssh.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		d := net.Dialer{Timeout: o.ConnectTimeout}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			done <- result{err: err}
			return
		}
		nc = withQuickAck(nc)
		// The handshake has its own deadline: a port that accepts but never speaks SSH must
		// not hang the run.
		_ = nc.SetDeadline(time.Now().Add(o.ConnectTimeout))
		c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
		if err != nil {
			nc.Close()
			done <- result{err: err}
			return
		}
		_ = nc.SetDeadline(time.Time{})
		done <- result{c: ssh.NewClient(c, chans, reqs)}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, explainDialError(t, user, addr, r.err)
	}
	c := &sshConn{t: t, o: o, client: &goph.Client{Client: r.c}, closed: make(chan struct{}),
		secrets: secretList(t)}
	go c.keepAlive()
	return c, nil
}

func secretList(t Target) []string {
	var s []string
	for _, v := range []string{t.Password, t.BecomePassword, t.KeyPassphrase} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

func explainDialError(t Target, user, addr string, err error) error {
	var ke *HostKeyError
	switch {
	case errors.As(err, &ke):
		return err
	case strings.Contains(err.Error(), "unable to authenticate"):
		how := "key"
		if t.Password != "" {
			how = "password"
		}
		return fmt.Errorf("ssh %s@%s: authentication failed (%s): check ansible_user and the %s", user, addr, how, how)
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("ssh %s: connect timed out (host down or port filtered?): %w", addr, context.DeadlineExceeded)
	}
	return fmt.Errorf("ssh %s: %w", addr, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// authMethods builds the auth methods Ansible would try: the named key (or the default keys
// and the agent), then the password.
func authMethods(t Target) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	var signers []ssh.Signer
	keyFiles := []string{t.KeyFile}
	if t.KeyFile == "" {
		keyFiles = nil
		if home, err := os.UserHomeDir(); err == nil {
			for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				if p := filepath.Join(home, ".ssh", n); fileExists(p) {
					keyFiles = append(keyFiles, p)
				}
			}
		}
	}
	pass := t.KeyPassphrase
	if pass == "" {
		pass = os.Getenv(PassphraseEnv)
	}
	for _, f := range keyFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("private key %s: %w", f, err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			if pass == "" {
				if t.KeyFile == "" {
					continue // a default key we cannot use; others may work
				}
				return nil, fmt.Errorf("private key %s is encrypted: set %s to its passphrase", f, PassphraseEnv)
			}
			s, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(pass))
			if err != nil {
				return nil, fmt.Errorf("private key %s: wrong passphrase in %s", f, PassphraseEnv)
			}
		} else if err != nil {
			return nil, fmt.Errorf("private key %s: %v", f, err)
		}
		signers = append(signers, s)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && t.KeyFile == "" {
		if nc, err := net.Dial("unix", sock); err == nil {
			if agentSigners, err := agent.NewClient(nc).Signers(); err == nil {
				signers = append(signers, agentSigners...)
			}
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if t.Password != "" {
		pw := t.Password
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
				ans := make([]string, len(qs))
				for i := range ans {
					ans[i] = pw
				}
				return ans, nil
			}))
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("host %s: no SSH key or password: set ansible_ssh_private_key_file or ansible_password", t.Name)
	}
	return methods, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// keepAlive detects a dead peer: when the server stops answering keep-alives the
// connection is closed, so every waiting command fails instead of hanging.
func (c *sshConn) keepAlive() {
	tick := time.NewTicker(c.o.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-tick.C:
			errc := make(chan error, 1)
			go func() {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				errc <- err
			}()
			select {
			case err := <-errc:
				if err != nil {
					_ = c.client.Close()
					return
				}
			case <-time.After(c.o.KeepAlive):
				_ = c.client.Close()
				return
			case <-c.closed:
				return
			}
		}
	}
}

func (c *sshConn) Name() string { return c.t.Name }

// Sessions is how many SSH sessions this connection opened (for tests and benchmarks).
func (c *sshConn) Sessions() int { return int(c.sessions.Load()) }

// startShell opens a session running the driver, as the login user or through sudo.
func (c *sshConn) startShell(ctx context.Context, sudo bool) (*shell, error) {
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	c.sessions.Add(1)
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := sess.StderrPipe()
	if err != nil {
		return nil, err
	}
	nonce := newNonce()
	cmd := driverCommand("", nonce)
	if sudo {
		cmd = driverCommand(sudoCommand(c.t), nonce)
	}
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start shell: %w", err)
	}
	sh := newShell(stdin, stdout, nonce, sess.Close)
	// Until the driver is ready, stderr is sudo's (prompt, errors); after, it is the commands'.
	pump := startStderrPump(stderr)
	if sudo {
		err = c.becomeHandshake(ctx, sh, stdin, pump)
	} else if err = sh.waitReady(ctx, c.shellStartTimeout()); err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(pump.finalString()))
	}
	if err != nil {
		sess.Close()
		return nil, err
	}
	sh.stderr = bufio.NewReaderSize(pump.takeOver(), 64<<10)
	sh.kill = func(dir string) error { return c.killGroup(dir, sudo) }
	return sh, nil
}

const sudoPrompt = "KINSTALL-SUDO-PROMPT:"

func sudoCommand(t Target) string {
	user := t.BecomeUser
	if user == "" {
		user = "root"
	}
	if t.BecomePassword != "" {
		// The password goes to sudo's stdin when it asks (prompt on stderr), never on a command line.
		return "exec sudo -S -p " + sudoPrompt + " -u " + user + " --"
	}
	return "exec sudo -n -u " + user + " --"
}

// becomeHandshake answers sudo's prompt with the become password (if sudo asks) and waits for
// the driver to say it is ready.
func (c *sshConn) becomeHandshake(ctx context.Context, sh *shell, stdin io.Writer, errBuf *stderrPump) error {
	ready := make(chan error, 1)
	go func() { ready <- sh.waitReady(ctx, c.shellStartTimeout()) }()
	sent := false
	for {
		select {
		case err := <-ready:
			if err != nil {
				return c.becomeError(errBuf.finalString(), err)
			}
			return nil
		case <-errBuf.prompted:
			if sent || c.t.BecomePassword == "" {
				// Asked twice: the password was wrong.
				return c.becomeError(errBuf.String(), errors.New("password rejected"))
			}
			sent = true
			if _, err := io.WriteString(stdin, c.t.BecomePassword+"\n"); err != nil {
				return c.becomeError(errBuf.String(), err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *sshConn) becomeError(stderr string, err error) error {
	user := c.t.BecomeUser
	if user == "" {
		user = "root"
	}
	stderr = strings.TrimSpace(strings.ReplaceAll(stderr, sudoPrompt, ""))
	switch {
	case strings.Contains(stderr, "Sorry, try again") || strings.Contains(stderr, "incorrect password") || strings.Contains(err.Error(), "password rejected"):
		return fmt.Errorf("sudo: wrong become password for %s on %s (ansible_become_pass)", user, c.t.Name)
	case strings.Contains(stderr, "a password is required"):
		return fmt.Errorf("sudo on %s asks for a password: set ansible_become_pass", c.t.Name)
	case strings.Contains(stderr, "not in the sudoers") || strings.Contains(stderr, "not allowed"):
		return fmt.Errorf("sudo: %s may not become %s on %s: %s", c.loginUser(), user, c.t.Name, Mask(stderr, c.secrets))
	}
	return fmt.Errorf("sudo on %s failed: %v: %s", c.t.Name, err, Mask(stderr, c.secrets))
}

func (c *sshConn) loginUser() string {
	if c.t.User != "" {
		return c.t.User
	}
	return currentUser()
}

// shellFor returns the right shell, starting it on first use.
func (c *sshConn) shellFor(ctx context.Context, sudo bool) (*shell, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.user == nil || c.user.broken != nil {
		sh, err := c.startShell(ctx, false)
		if err != nil {
			return nil, err
		}
		c.user = sh
		switch become := c.t.BecomeUser; become {
		case "", "root":
			c.isRoot = sh.euid == "0"
		default:
			res, err := sh.run(ctx, Cmd{Command: "id -un"}, c.o.ConnectTimeout)
			if err != nil {
				return nil, err
			}
			c.isRoot = strings.TrimSpace(string(res.Stdout)) == become
		}
	}
	if !sudo || c.isRoot {
		return c.user, nil
	}
	if !c.t.Become {
		return nil, fmt.Errorf("%s logs in as %s, and this step needs root: set ansible_become=true (and ansible_become_pass if sudo asks for a password)", c.t.Name, c.loginUser())
	}
	if c.root == nil || c.root.broken != nil {
		sh, err := c.startShell(ctx, true)
		if err != nil {
			return nil, err
		}
		c.root = sh
	}
	return c.root, nil
}

// killGroup stops a command's process group from a new session (its own shell is busy
// waiting for it): TERM, then KILL if it is still there after 2 s.
func (c *sshConn) killGroup(dir string, sudo bool) error {
	sess, err := c.client.NewSession()
	if err != nil {
		return err
	}
	c.sessions.Add(1)
	defer sess.Close()
	script := fmt.Sprintf(`p=$(cat %s/pid) || exit 0; kill -TERM -$p 2>/dev/null; for i in $(seq 20); do kill -0 -$p 2>/dev/null || exit 0; sleep 0.1; done; kill -KILL -$p 2>/dev/null; true`, dir)
	cmd := "sh -c '" + script + "'"
	if sudo && !c.isRoot {
		cmd = strings.TrimPrefix(sudoCommand(c.t), "exec ") + " " + cmd
		if c.t.BecomePassword != "" {
			sess.Stdin = strings.NewReader(c.t.BecomePassword + "\n")
		}
	}
	return sess.Run(cmd)
}

func (c *sshConn) Run(ctx context.Context, cmd Cmd) (Result, error) {
	sh, err := c.shellFor(ctx, cmd.Sudo)
	if err != nil {
		return Result{}, c.wrap(cmd, err)
	}
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = c.o.CommandTimeout
	}
	res, err := sh.run(ctx, cmd, timeout)
	if err != nil {
		return res, c.wrap(cmd, err)
	}
	return res, nil
}

func (c *sshConn) wrap(cmd Cmd, err error) error {
	secrets := append(append([]string{}, c.secrets...), cmd.Secrets...)
	return &RunError{Host: c.t.Name, Command: Mask(FirstLine(cmd.Command), secrets), Err: maskErr(err, secrets)}
}

func (c *sshConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return nil
	default:
		close(c.closed)
	}
	if c.sftp != nil {
		_ = c.sftp.Close()
	}
	for _, sh := range []*shell{c.user, c.root} {
		if sh != nil {
			_ = sh.stdin.Close()
			_ = sh.close()
		}
	}
	return c.client.Close()
}

// shellStartTimeout bounds starting a shell: a session costs sshd ~50-150 ms of CPU, so a
// hundred hosts behind one busy machine can take many seconds; a dead host is caught by the
// connect timeout and keep-alives before this.
func (c *sshConn) shellStartTimeout() time.Duration { return c.o.ConnectTimeout + 60*time.Second }
