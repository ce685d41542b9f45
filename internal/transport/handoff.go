package transport

import (
	"io"
	"strings"
	"sync"
	"time"
)

// stderrPump is the only reader of a session's stderr. Until the driver is ready, what comes
// is sudo's (its prompt and errors): it is kept for error messages and the prompt is
// signalled. After that it is the commands' stderr, passed on through a pipe to the shell.
type stderrPump struct {
	mu       sync.Mutex
	ready    bool
	early    strings.Builder
	prompted chan struct{}
	pr       *io.PipeReader
	pw       *io.PipeWriter
	done     chan struct{} // closed when the stream ends
}

func startStderrPump(r io.Reader) *stderrPump {
	p := &stderrPump{prompted: make(chan struct{}, 1), done: make(chan struct{})}
	p.pr, p.pw = io.Pipe()
	go p.run(r)
	return p
}

func (p *stderrPump) run(r io.Reader) {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.mu.Lock()
			ready := p.ready
			if !ready && p.early.Len() < 64<<10 {
				p.early.Write(buf[:n])
			}
			p.mu.Unlock()
			switch {
			case ready:
				if _, werr := p.pw.Write(buf[:n]); werr != nil {
					return
				}
			case strings.Contains(string(buf[:n]), sudoPrompt):
				select {
				case p.prompted <- struct{}{}:
				default:
				}
			}
		}
		if err != nil {
			p.pw.CloseWithError(err)
			return
		}
	}
}

// finalString is String once the stream has ended (bounded wait): a failing sudo's message
// may arrive just after its stdout closed.
func (p *stderrPump) finalString() string {
	select {
	case <-p.done:
	case <-time.After(time.Second):
	}
	return p.String()
}

// String is what arrived before the driver was ready.
func (p *stderrPump) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.early.String()
}

// takeOver switches the stream to the shell. No command has been sent yet, so nothing of a
// command's stderr can have been taken for sudo's.
func (p *stderrPump) takeOver() io.Reader {
	p.mu.Lock()
	p.ready = true
	p.mu.Unlock()
	return p.pr
}
