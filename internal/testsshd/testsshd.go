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
	Addr           string // 127.0.0.1 (or the address asked for)
	Port           int
	KnownHostsFile string // has this server's host key
	UserKeyFile    string // private key authorized for every user
	Dir            string
	cmd            *exec.Cmd
}

var usersOnce sync.Once
var usersErr error

// Skip ends the test when sshd cannot run here, saying what to install.
func skipUnlessPossible(t testing.TB) {
	t.Helper()
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
	usersOnce.Do(func() { usersErr = ensureUsers() })
	if usersErr != nil {
		t.Fatalf("test users: %v", usersErr)
	}
	dir := t.TempDir()
	s := &Server{Addr: addr, Dir: dir, UserKeyFile: filepath.Join(dir, "id_ed25519")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519")))
	must(run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", s.UserKeyFile))
	pub, err := os.ReadFile(s.UserKeyFile + ".pub")
	must(err)
	keysDir := filepath.Join(dir, "keys")
	must(os.MkdirAll(keysDir, 0o755))
	// sshd reads authorized keys as the user: every directory on the way must be searchable.
	must(os.Chmod(dir, 0o755))
	must(os.Chmod(filepath.Dir(dir), 0o755))
	for _, u := range []string{"root", UserNoPw, UserPw, UserNoSudo} {
		must(os.WriteFile(filepath.Join(keysDir, u), pub, 0o644))
	}
	port, err := freePort(addr)
	must(err)
	s.Port = port
	cfg := filepath.Join(dir, "sshd_config")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
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
`, port, addr, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "sshd.pid"), keysDir)), 0o644))
	must(os.MkdirAll("/run/sshd", 0o755))
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_ed25519.pub"))
	must(err)
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	must(os.WriteFile(s.KnownHostsFile, []byte(fmt.Sprintf("[%s]:%d %s", addr, port, hostPub)), 0o600))

	s.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	must(err)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	must(s.cmd.Start())
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("sshd did not start: %s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
