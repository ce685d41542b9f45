package runner

import (
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Event is one task's result on one host.
type Event struct {
	Phase, Task, Host string
	Status            Status
	Change            string
	Err               error
	Elapsed           time.Duration
}

// Reporter shows progress to the operator.
type Reporter interface {
	PhaseStart(phase string, hosts, tasks int)
	TaskDone(e Event)
	PhaseEnd(phase string, elapsed time.Duration)
}

// LineReporter prints plain timestamped lines: for CI, pipes and logs.
type LineReporter struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool // also print ok and skipped results
}

// NewLineReporter prints changed and failed results (all results when verbose).
func NewLineReporter(w io.Writer, verbose bool) *LineReporter {
	return &LineReporter{w: w, verbose: verbose}
}

func (l *LineReporter) PhaseStart(phase string, hosts, tasks int) {
	l.printf("PHASE [%s] %d host(s), %d task(s)", phase, hosts, tasks)
}

func (l *LineReporter) TaskDone(e Event) {
	if !l.verbose && (e.Status == StatusOK || e.Status == StatusSkipped) {
		return
	}
	msg := fmt.Sprintf("[%s] %s / %s: %s", e.Host, e.Phase, e.Task, e.Status)
	if e.Change != "" {
		msg += " (" + e.Change + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	l.printf("%s", msg)
}

func (l *LineReporter) PhaseEnd(phase string, elapsed time.Duration) {
	l.printf("PHASE [%s] done in %s", phase, elapsed.Round(time.Millisecond))
}

func (l *LineReporter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// BarReporter draws one progress bar per phase (hosts x tasks done) on a terminal, and prints
// failures and changes above it.
type BarReporter struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar
}

func NewBarReporter(w io.Writer) *BarReporter { return &BarReporter{w: w} }

func (b *BarReporter) PhaseStart(phase string, hosts, tasks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar = progressbar.NewOptions(hosts*tasks,
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-20s", phase)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
	)
}

func (b *BarReporter) TaskDone(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.Status == StatusFailed {
		_ = b.bar.Clear()
		fmt.Fprintf(b.w, "FAILED [%s] %s / %s: %v\n", e.Host, e.Phase, e.Task, e.Err)
	}
	_ = b.bar.Add(1)
}

func (b *BarReporter) PhaseEnd(phase string, elapsed time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Finish()
	fmt.Fprintf(b.w, "%-20s done in %s\n", phase, elapsed.Round(time.Millisecond))
}

// PrintRecap prints the per-host table at the end of a run.
func PrintRecap(w io.Writer, recap []HostRecap) {
	fmt.Fprintln(w, "RECAP")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tOK\tCHANGED\tSKIPPED\tFAILED\tTIME")
	for _, r := range recap {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", r.Host, r.OK, r.Changed, r.Skipped, r.Failed, r.Elapsed.Round(time.Millisecond))
	}
	_ = tw.Flush()
}
