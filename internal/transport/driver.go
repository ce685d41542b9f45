package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// driverScript is the remote half of a shell (run by bash): it reads framed requests on stdin
// and runs each command with its stdout and stderr going straight into the session's two
// streams, then writes an end marker with the exit code on both. Every command of a host goes
// through one SSH session and costs one fork: the command runs in a bash subshell (sourced, no
// exec; job control off inside, so all of it stays in the subshell's process group, and the
// driver's variables unset). An exec of /bin/sh per command cost 2x the reference client's time
// at 50 hosts on 2 cores. The driver's bash starts with --norc: bash run by sshd otherwise
// sources ~/.bashrc, which on some hosts (pyenv, conda, ...) costs ~100 ms of CPU per shell.
// The command is written to a private file, not put on a command line other users can see.
//
// Request: "<id> <command-bytes> <stdin-bytes>\n" then the raw bytes.
// stderr:  "<nonce> <id> pid <pid>\n" first (the command's process group, for a kill on
//
//	timeout), then the command's stderr, then "\n<nonce> <id>\n".
//
// stdout:  the command's stdout, then "\n<nonce> <id> <exit>\n".
// The nonce is random per shell, so no command output can fake a marker by accident.
// bash's read -N takes exactly the command's bytes (C locale) without a process; dd with
// iflag=fullblock takes exactly the stdin bytes, never the next request. set -m gives each
// command its own process group, so a timeout kills all of it: its id is in <dir>/pid, and the
// ready line names <dir> (and the uid, so no extra command is needed to learn it). bash's own stderr goes to
// /dev/null (job-control notices would corrupt the stream); commands and markers use fd 3.
// It must not contain single quotes: it travels inside bash -c '...'.
const driverScript = `export LC_ALL=C
umask 077
set -m
exec 3>&2 2>/dev/null
d=$(mktemp -d "${TMPDIR:-/tmp}/.kinstall.XXXXXX") || exit 1
trap "rm -rf $d" EXIT
echo "KINSTALL-READY $d $EUID"
while read -r id clen ilen; do
  IFS= read -r -N "$clen" cmd
  in=/dev/null
  if [ "$ilen" -gt 0 ]; then dd of="$d/in" bs="$ilen" count=1 iflag=fullblock 2>/dev/null; in="$d/in"; fi
  printf "%s" "$cmd" > "$d/cmd"
  ( set +m; echo $BASHPID > "$d/pid"; kinstall_cmd=$d/cmd; unset -v N d id clen ilen cmd in rc
    . "$kinstall_cmd" 2>&3 3>&- ) < "$in" &
  wait $!
  rc=$?
  printf "\n%s %s %s\n" "$N" "$id" "$rc"
  printf "\n%s %s\n" "$N" "$id" >&3
done`

// driverCommand starts the driver with its marker nonce; prefix is "" or a sudo invocation
// ending in "--".
func driverCommand(prefix, nonce string) string {
	if prefix == "" {
		prefix = "exec"
	}
	return prefix + " /bin/bash --norc --noprofile -c 'N=" + nonce + "; " + driverScript + "'"
}

const readyLine = "KINSTALL-READY"

// shell talks to one running driver. A shell whose stream got out of step (a cancelled
// command, a dead session) is broken and must be replaced.
type shell struct {
	mu     sync.Mutex
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *bufio.Reader // nil until the shell is ready (the handshake reads stderr itself)
	nonce  string
	close  func() error
	dir    string                 // the driver's private directory (from its ready line)
	euid   string                 // the driver's effective uid (from its ready line)
	kill   func(dir string) error // stops the running command's process group from outside the shell
	broken error
	nextID int
}

func newShell(stdin io.WriteCloser, stdout io.Reader, nonce string, closeFn func() error) *shell {
	return &shell{stdin: stdin, stdout: bufio.NewReaderSize(stdout, 64<<10), nonce: nonce, close: closeFn}
}

// newNonce returns a random marker for one shell.
func newNonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "KINSTALL-" + hex.EncodeToString(b)
}

// waitReady reads lines until the driver says it is ready.
func (s *shell) waitReady(ctx context.Context, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		for {
			line, err := s.stdout.ReadString('\n')
			if err != nil {
				done <- fmt.Errorf("shell did not start: %w", err)
				return
			}
			if f := strings.Fields(line); len(f) == 3 && f[0] == readyLine {
				s.dir, s.euid = f[1], f[2]
				done <- nil
				return
			}
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		_ = s.close()
		return errors.New("shell did not start in time")
	case <-ctx.Done():
		_ = s.close()
		return ctx.Err()
	}
}

// run sends one command and reads its reply. On timeout the command's process group is
// killed (through another session: this one is busy), its reply is read, and the shell goes
// on; a shell whose reply never comes is broken.
func (s *shell) run(ctx context.Context, c Cmd, timeout time.Duration) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return Result{}, s.broken
	}
	s.nextID++
	id := s.nextID
	start := time.Now()
	var req bytes.Buffer
	fmt.Fprintf(&req, "%d %d %d\n", id, len(c.Command), len(c.Stdin))
	req.WriteString(c.Command)
	req.Write(c.Stdin)

	type reply struct {
		res Result
		err error
	}
	done := make(chan reply, 1)
	go func() {
		if _, err := s.stdin.Write(req.Bytes()); err != nil {
			done <- reply{err: fmt.Errorf("send command: %w", err)}
			return
		}
		res, err := s.readReply(id)
		done <- reply{res, err}
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	timedOut := false
	var cancelled error
	for {
		select {
		case r := <-done:
			if r.err != nil {
				s.broken = r.err
				_ = s.close()
				return Result{}, r.err
			}
			r.res.Duration = time.Since(start)
			if timedOut {
				return r.res, fmt.Errorf("command timed out after %s and was killed: %w", timeout, context.DeadlineExceeded)
			}
			if cancelled != nil {
				return r.res, cancelled
			}
			return r.res, nil
		case <-deadline.C:
			if timedOut || cancelled != nil {
				// Killed, and still no reply: the host stopped answering.
				s.broken = fmt.Errorf("host stopped answering: %w", context.DeadlineExceeded)
				_ = s.close()
				return Result{}, s.broken
			}
			timedOut = true
			go s.stop() // a dead host must not block the wait below
			deadline.Reset(killGrace)
		case <-ctx.Done():
			if cancelled == nil && !timedOut {
				cancelled = ctx.Err()
				go s.stop()
				deadline.Reset(killGrace)
			}
			ctx = context.Background() // wait for the reply, bounded by killGrace
		}
	}
}

// killGrace is how long a killed command's reply may take.
const killGrace = 10 * time.Second

func (s *shell) stop() {
	if s.dir == "" || s.kill == nil || s.kill(s.dir) != nil {
		// Nothing to kill with: give up on this shell.
		_ = s.close()
	}
}

func (s *shell) readReply(id int) (Result, error) {
	type part struct {
		data, marker []byte
		err          error
	}
	errc := make(chan part, 1)
	go func() {
		data, marker, err := readUntilMarker(s.stderr, []byte(fmt.Sprintf("\n%s %d", s.nonce, id)))
		errc <- part{data, marker, err}
	}()
	out, marker, err := readUntilMarker(s.stdout, []byte(fmt.Sprintf("\n%s %d ", s.nonce, id)))
	e := <-errc
	if err != nil {
		return Result{}, fmt.Errorf("connection lost: %w", err)
	}
	if e.err != nil {
		return Result{}, fmt.Errorf("connection lost: %w", e.err)
	}
	rc, err := strconv.Atoi(strings.TrimSpace(string(marker)))
	if err != nil {
		return Result{}, fmt.Errorf("shell out of step: bad exit code %q", hexIfBinary(string(marker)))
	}
	return Result{Stdout: out, Stderr: e.data, ExitCode: rc}, nil
}

// readUntilMarker returns what comes before marker and the rest of the marker's line.
func readUntilMarker(r *bufio.Reader, marker []byte) (data, rest []byte, err error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err != nil && err != bufio.ErrBufferFull {
			return nil, nil, err
		}
		// The marker starts with "\n": look in what was read, from just before this chunk.
		from := len(buf) - len(chunk) - len(marker)
		if from < 0 {
			from = 0
		}
		if i := bytes.Index(buf[from:], marker); i >= 0 {
			i += from
			line := buf[i+len(marker):]
			if !bytes.HasSuffix(line, []byte("\n")) {
				more, err := r.ReadBytes('\n')
				if err != nil {
					return nil, nil, err
				}
				line = append(line, more...)
			}
			return buf[:i], line, nil
		}
	}
}

func hexIfBinary(s string) string {
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' {
			return hex.EncodeToString([]byte(s))
		}
	}
	return s
}
