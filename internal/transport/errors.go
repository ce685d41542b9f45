package transport

import "strings"

// RunError is a command that could not run on a host (connection, sudo, timeout). A command
// that ran and exited non-zero is not an error here: see Result.ExitCode.
type RunError struct {
	Host    string
	Command string
	Err     error
}

func (e *RunError) Error() string {
	return e.Host + ": " + e.Command + ": " + e.Err.Error()
}

func (e *RunError) Unwrap() error { return e.Err }

const maskText = "********"

// Mask replaces every secret in s.
func Mask(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, maskText)
		}
	}
	return s
}

// maskErr keeps the error chain (errors.Is still works) but hides secrets in the message.
func maskErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if masked := Mask(msg, secrets); masked != msg {
		return &maskedError{msg: masked, err: err}
	}
	return err
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// FirstLine is a command's first line, for messages.
func FirstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
