package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/transport"
)

// hostLog is the run directory's record of everything done on one host: each task, command,
// exit code and output. Secrets are masked before anything is written.
type hostLog struct {
	mu      sync.Mutex
	f       *os.File
	secrets []string
}

func (r *Runner) openLog(ch *cluster.Host) (*hostLog, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.logs[ch.Name]; ok {
		return l, nil
	}
	l := &hostLog{secrets: secretsOf(ch.Target)}
	if r.opts.RunDir != "" {
		if err := os.MkdirAll(r.opts.RunDir, 0o700); err != nil {
			return nil, fmt.Errorf("run log: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(r.opts.RunDir, ch.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("run log: %w", err)
		}
		l.f = f
	}
	r.logs[ch.Name] = l
	return l, nil
}

func secretsOf(t transport.Target) []string {
	var s []string
	for _, v := range []string{t.Password, t.BecomePassword, t.KeyPassphrase} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

func (l *hostLog) printf(format string, args ...any) {
	if l == nil || l.f == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := transport.Mask(fmt.Sprintf(format, args...), l.secrets)
	fmt.Fprintf(l.f, "%s %s\n", time.Now().Format("15:04:05.000"), msg)
}

func (l *hostLog) task(phase, task string) { l.printf("TASK [%s / %s]", phase, task) }

func (l *hostLog) result(s Status, change string, err error) {
	switch {
	case err != nil:
		l.printf("=> %s: %v", s, err)
	case change != "":
		l.printf("=> %s: %s", s, change)
	default:
		l.printf("=> %s", s)
	}
}

func (l *hostLog) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}

func (l *hostLog) with(extra []string) *hostLog {
	if len(extra) == 0 {
		return l
	}
	return &hostLog{f: l.f, secrets: append(append([]string{}, l.secrets...), extra...)}
}

// loggedConn writes every command and file write of a host to its log.
type loggedConn struct {
	transport.Conn
	log  *hostLog
	echo func(string) // -v: show the command to the operator
}

func (c *loggedConn) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	l := c.log.with(cmd.Secrets)
	sudo := ""
	if cmd.Sudo {
		sudo = " (sudo)"
	}
	l.printf("$%s %s", sudo, cmd.Command)
	if c.echo != nil {
		c.echo(transport.Mask(transport.FirstLine(cmd.Command), l.secrets) + sudo)
	}
	res, err := c.Conn.Run(ctx, cmd)
	if err != nil {
		l.printf("  error: %v", err)
		return res, err
	}
	l.printf("  exit %d in %s", res.ExitCode, res.Duration.Round(time.Millisecond))
	if len(res.Stdout) > 0 {
		l.printf("  stdout:\n%s", indent(res.Stdout))
	}
	if len(res.Stderr) > 0 {
		l.printf("  stderr:\n%s", indent(res.Stderr))
	}
	return res, nil
}

func (c *loggedConn) WriteFile(ctx context.Context, data []byte, spec transport.FileSpec) (bool, error) {
	changed, err := c.Conn.WriteFile(ctx, data, spec)
	c.log.printf("write %s mode %o (%d bytes): changed=%v err=%v", spec.Path, spec.Mode, len(data), changed, err)
	return changed, err
}

func (c *loggedConn) Upload(ctx context.Context, local string, spec transport.FileSpec) (bool, error) {
	changed, err := c.Conn.Upload(ctx, local, spec)
	c.log.printf("upload %s -> %s mode %o: changed=%v err=%v", local, spec.Path, spec.Mode, changed, err)
	return changed, err
}

const maxLogged = 64 << 10

func indent(b []byte) string {
	s := string(b)
	if len(s) > maxLogged {
		s = s[:maxLogged] + "\n… (truncated)"
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
