// Package testsshd starts a real OpenSSH server on loopback for tests: generated host and
// user keys, root plus non-root users with and without sudo passwords.
package testsshd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test users, created once per machine.
const (
	UserNoPw   = "kitest-nopw"   // key; sudo without password
	UserPw     = "kitest-pw"     // key or password; sudo asks for the password
	UserNoSudo = "kitest-nosudo" // key; no sudo
	// Password is UserPw's login and sudo password.
	Password = "kitest-Pw-7421"
)

// Server is a running sshd.
type Server struct {
	Addr           string // the first address
	Addrs          []string
	Port           int
	KnownHostsFile string // has this server's host key
	UserKeyFile    string // private key authorized for every user
	Dir            string
	cmds           []*exec.Cmd
	logf           *os.File
}

// maxListen is how many addresses one sshd may listen on (its MAX_LISTEN_SOCKS).
const maxListen = 16

var usersOnce sync.Once
var usersErr error

// Skip ends the test when sshd cannot run here, saying what to install.
func skipUnlessPossible(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no sshd")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("no /usr/sbin/sshd: apt-get install openssh-server (CI installs it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the sshd tests create users and need root")
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("no sudo: apt-get install sudo")
	}
}

// Start runs an sshd on 127.0.0.1 and a free port until the test ends.
func Start(t testing.TB) *Server { return StartOn(t, "127.0.0.1") }

// StartOn runs an sshd on the given loopback address (127.0.0.0/8 needs no set-up on Linux).
func StartOn(t testing.TB, addr string) *Server {
	t.Helper()
	skipUnlessPossible(t)
	s, err := Launch(t.TempDir(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts an sshd in dir listening on every given address, on one free port, for
// programs (the benchmark) as well as tests. Stop it with Stop.
func Launch(dir string, addrs ...string) (*Server, error) {
	usersOnce.Do(func() { usersErr = ensureUsers() })
	if usersErr != nil {
		return nil, fmt.Errorf("test users: %w", usersErr)
	}
	s := &Server{Addr: addrs[0], Addrs: addrs, Dir: dir, UserKeyFile: filepath.Join(dir, "id_ed25519")}
	if err := s.launch(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	dir := s.Dir
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519")); err != nil {
		return err
	}
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", s.UserKeyFile); err != nil {
		return err
	}
	pub, err := os.ReadFile(s.UserKeyFile + ".pub")
	if err != nil {
		return err
	}
	keysDir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keysDir, 0o755); err != nil {
		return err
	}
	// sshd reads authorized keys as the user: every directory on the way must be searchable.
	for d := dir; d != "/" && d != "/tmp"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	for _, u := range []string{"root", UserNoPw, UserPw, UserNoSudo} {
		if err := os.WriteFile(filepath.Join(keysDir, u), pub, 0o644); err != nil {
			return err
		}
	}
	port, err := freePort(s.Addrs)
	if err != nil {
		return err
	}
	s.Port = port
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_ed25519.pub"))
	if err != nil {
		return err
	}
	var known strings.Builder
	for _, a := range s.Addrs {
		fmt.Fprintf(&known, "[%s]:%d %s", a, port, hostPub)
	}
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(s.KnownHostsFile, []byte(known.String()), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		return err
	}
	s.logf = logf
	for i := 0; i < len(s.Addrs); i += maxListen {
		chunk := s.Addrs[i:min(i+maxListen, len(s.Addrs))]
		cfg := filepath.Join(dir, fmt.Sprintf("sshd_config.%d", i/maxListen))
		if err := os.WriteFile(cfg, []byte(sshdConfig(port, chunk, dir, keysDir, i/maxListen)), 0o644); err != nil {
			return err
		}
		cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		s.cmds = append(s.cmds, cmd)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, a := range s.Addrs {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(a, strconv.Itoa(port)), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
				return fmt.Errorf("sshd did not start: %s", log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func sshdConfig(port int, addrs []string, dir, keysDir string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Port %d\n", port)
	for _, a := range addrs {
		fmt.Fprintf(&b, "ListenAddress %s\n", a)
	}
	fmt.Fprintf(&b, `HostKey %s
PidFile %s
AuthorizedKeysFile %s/%%u
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin yes
MaxSessions 200
MaxStartups 500:30:1000
Subsystem sftp internal-sftp
LogLevel ERROR
`, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, fmt.Sprintf("sshd.%d.pid", n)), keysDir)
	return b.String()
}

// Stop ends the sshd processes.
func (s *Server) Stop() {
	for _, cmd := range s.cmds {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	}
	if s.logf != nil {
		s.logf.Close()
	}
}

// freePort finds a port free on every address.
func freePort(addrs []string) (int, error) {
	for try := 0; try < 20; try++ {
		l, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		free := true
		for _, a := range addrs[1:] {
			if l2, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port))); err != nil {
				free = false
				break
			} else {
				l2.Close()
			}
		}
		if free {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on all of %v", addrs)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// ensureUsers creates the test users and their sudo rules if missing.
func ensureUsers() error {
	for _, u := range []string{UserNoPw, UserPw, UserNoSudo} {
		if exec.Command("id", u).Run() != nil {
			if err := run("useradd", "-m", "-s", "/bin/sh", u); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(UserPw + ":" + Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chpasswd: %v: %s", err, out)
	}
	// Unlocked accounts (sshd refuses key logins for locked ones with UsePAM no).
	for _, u := range []string{UserNoPw, UserNoSudo} {
		_ = run("usermod", "-p", "*", u)
	}
	rules := fmt.Sprintf("%s ALL=(ALL) NOPASSWD:ALL\n%s ALL=(ALL) ALL\n", UserNoPw, UserPw)
	return os.WriteFile("/etc/sudoers.d/kinstall-test", []byte(rules), 0o440)
}
