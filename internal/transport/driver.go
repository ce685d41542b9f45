package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// driverScript is the remote half of a shell: it reads framed requests on stdin and writes
// framed replies on stdout, so every command of a host goes through one SSH session.
//
// Request:  "<id> <timeout-seconds> <command-bytes> <stdin-bytes>\n" then the raw bytes.
// Reply:    "KINSTALL-END <id> <exit> <stdout-bytes> <stderr-bytes>\n" then the raw bytes.
// dd with iflag=fullblock reads exactly the announced bytes, never the next request. timeout(1)
// kills the command's whole process group when it runs too long (exit 124).
// It must not contain single quotes: it travels inside sh -c '...'.
const driverScript = `umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/.kinstall.XXXXXX") || exit 1
trap "rm -rf $d" EXIT
echo KINSTALL-READY
while read -r id secs clen ilen; do
  : > "$d/cmd"; : > "$d/in"
  [ "$clen" -gt 0 ] && dd of="$d/cmd" bs="$clen" count=1 iflag=fullblock 2>/dev/null
  [ "$ilen" -gt 0 ] && dd of="$d/in" bs="$ilen" count=1 iflag=fullblock 2>/dev/null
  timeout -k 5 "$secs" /bin/sh "$d/cmd" < "$d/in" > "$d/out" 2> "$d/err"
  rc=$?
  echo "KINSTALL-END $id $rc $(wc -c < "$d/out") $(wc -c < "$d/err")"
  cat "$d/out" "$d/err"
done`

const readyLine = "KINSTALL-READY"

// timeoutExit is timeout(1)'s exit code when it had to stop the command.
const timeoutExit = 124

// shell talks to one running driver. A shell whose stream got out of step (a cancelled
// command, a dead session) is broken and must be replaced.
type shell struct {
	mu     sync.Mutex
	stdin  io.WriteCloser
	stdout *bufio.Reader
	close  func() error
	broken error
	nextID int
}

func newShell(stdin io.WriteCloser, stdout io.Reader, closeFn func() error) *shell {
	return &shell{stdin: stdin, stdout: bufio.NewReaderSize(stdout, 64<<10), close: closeFn}
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
			if strings.TrimSpace(line) == readyLine {
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

// run sends one command and reads its reply.
func (s *shell) run(ctx context.Context, c Cmd, timeout time.Duration) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return Result{}, s.broken
	}
	s.nextID++
	id := s.nextID
	secs := int(timeout.Seconds())
	if secs < 1 {
		secs = 1
	}
	start := time.Now()
	var req bytes.Buffer
	fmt.Fprintf(&req, "%d %d %d %d\n", id, secs, len(c.Command), len(c.Stdin))
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
	// The driver enforces the timeout itself; this one only guards against a dead peer.
	guard := time.NewTimer(timeout + 15*time.Second)
	defer guard.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			s.broken = r.err
			_ = s.close()
			return Result{}, r.err
		}
		r.res.Duration = time.Since(start)
		if r.res.ExitCode == timeoutExit && r.res.Duration >= timeout {
			return r.res, fmt.Errorf("command timed out after %s and was killed: %w", timeout, context.DeadlineExceeded)
		}
		return r.res, nil
	case <-guard.C:
		s.broken = fmt.Errorf("host stopped answering: %w", context.DeadlineExceeded)
	case <-ctx.Done():
		s.broken = fmt.Errorf("shell abandoned: %w", ctx.Err())
	}
	_ = s.close()
	return Result{}, s.broken
}

func (s *shell) readReply(id int) (Result, error) {
	header, err := s.stdout.ReadString('\n')
	if err != nil {
		return Result{}, fmt.Errorf("connection lost: %w", err)
	}
	f := strings.Fields(header)
	if len(f) != 5 || f[0] != "KINSTALL-END" || f[1] != strconv.Itoa(id) {
		return Result{}, fmt.Errorf("shell out of step: unexpected %q", hexIfBinary(header))
	}
	rc, err1 := strconv.Atoi(f[2])
	no, err2 := strconv.Atoi(f[3])
	ne, err3 := strconv.Atoi(f[4])
	if err1 != nil || err2 != nil || err3 != nil || no < 0 || ne < 0 {
		return Result{}, fmt.Errorf("shell out of step: bad reply %q", header)
	}
	body := make([]byte, no+ne)
	if _, err := io.ReadFull(s.stdout, body); err != nil {
		return Result{}, fmt.Errorf("connection lost: %w", err)
	}
	return Result{Stdout: body[:no], Stderr: body[no:], ExitCode: rc}, nil
}

func hexIfBinary(s string) string {
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' {
			return hex.EncodeToString([]byte(s))
		}
	}
	return s
}
