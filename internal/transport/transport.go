// Package transport runs commands and copies files on one host, over SSH or locally.
//
// A Conn keeps one SSH connection per host for the whole run, and streams every command of that
// host through one long-lived remote shell (one for the login user, one for the become user), so a
// task costs a round trip, not a new SSH session: sshd spends ~50 ms of CPU per session.
package transport

import (
	"context"
	"os"
	"time"
)

// Target says how to reach one host. It is filled from inventory variables by the caller.
type Target struct {
	Name    string // inventory hostname, used in messages
	Address string // ansible_host (or the name)
	Port    int    // ansible_port, default 22
	User    string // ansible_user, default: current user

	Password      string // ansible_password / ansible_ssh_pass
	KeyFile       string // ansible_ssh_private_key_file
	KeyPassphrase string // passphrase for KeyFile (from a prompt or env), never logged

	Local bool // ansible_connection=local: run on this machine without SSH

	Become         bool   // ansible_become: run Sudo commands through sudo
	BecomeUser     string // ansible_become_user, default root
	BecomePassword string // ansible_become_pass / ansible_sudo_pass
}

// Options apply to every connection of a run.
type Options struct {
	KnownHostsFile    string        // default ~/.ssh/known_hosts
	AcceptNewHostKeys bool          // trust on first use: record unknown keys; changed keys are always refused
	ConnectTimeout    time.Duration // default 10s
	CommandTimeout    time.Duration // default for Cmd.Timeout, default 10m
	KeepAlive         time.Duration // SSH keep-alive interval, default 15s
}

// Cmd is one shell command.
type Cmd struct {
	Command string        // run by /bin/sh -c
	Sudo    bool          // run as the become user (root); a no-op when already that user
	Stdin   []byte        // fed to the command's stdin
	Timeout time.Duration // 0: Options.CommandTimeout
	Secrets []string      // extra strings to mask in errors and logs
}

// Result of a command that ran (whatever its exit code).
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// FileSpec is a file to write on the host.
type FileSpec struct {
	Path  string      // absolute remote path
	Mode  os.FileMode // e.g. 0644
	Owner string      // "user:group"; empty means root:root when Sudo, else the login user
	Sudo  bool        // write as the become user
}

// Conn is a live connection to one host. Methods are safe for concurrent use; commands on one
// host are serialized.
type Conn interface {
	Name() string
	// Run runs a command. err is non-nil only when the command could not be run or timed out;
	// a non-zero exit is reported in Result.ExitCode (use (*ExitError) via Check for convenience).
	Run(ctx context.Context, c Cmd) (Result, error)
	// WriteFile writes data to spec.Path atomically (temp file + rename) with owner and mode.
	// It returns changed=false, without writing, when the remote sha256, mode and owner already match.
	WriteFile(ctx context.Context, data []byte, spec FileSpec) (changed bool, err error)
	// Upload does the same for a local file (streamed, for large files: SFTP over SSH).
	Upload(ctx context.Context, localPath string, spec FileSpec) (changed bool, err error)
	Close() error
}
