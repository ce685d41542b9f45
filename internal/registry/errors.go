package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// explain turns a registry error into what the operator must fix. The message is built from
// status codes, error codes and network causes only, never from a request or response text,
// so no credential can reach it (clean is the second guard).
func explain(ref, host string, reg Registry, err error) error {
	// TLS first: against a loopback or RFC 1918 host the library also tries plain http,
	// whose "400 HTTP request to an HTTPS server" would hide the certificate problem.
	if cause, hint, ok := tlsCause(err); ok {
		return fmt.Errorf("image %s: registry %s: TLS: %s%s", ref, host, cause, hint)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return statusError(ref, host, reg.Auth, te)
	}
	if cause, ok := netCause(err); ok {
		return fmt.Errorf("image %s: registry %s unreachable: %s", ref, host, cause)
	}
	return fmt.Errorf("image %s: registry %s: %v", ref, host, err)
}

func statusError(ref, host string, auth Auth, te *transport.Error) error {
	switch {
	case te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode,
		transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode):
		return fmt.Errorf("image %s: not found in registry %s", ref, host)
	case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
		hasCode(te, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
		return authError(ref, host, auth)
	}
	codes := ""
	for _, d := range te.Errors {
		codes += " " + string(d.Code)
	}
	return fmt.Errorf("image %s: registry %s answered HTTP %d%s", ref, host, te.StatusCode, codes)
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// authError names the user (never the password) so that a typo in the username shows.
func authError(ref, host string, auth Auth) error {
	switch {
	case auth.Username != "":
		return fmt.Errorf("image %s: registry %s refused the credentials (user %s)", ref, host, auth.Username)
	case auth.Token != "":
		return fmt.Errorf("image %s: registry %s refused the credentials (token)", ref, host)
	case auth.Password != "":
		return fmt.Errorf("image %s: registry %s refused the credentials (password without username)", ref, host)
	}
	return fmt.Errorf("image %s: registry %s needs credentials (set containerd_registry_auth)", ref, host)
}

// tlsCause finds a certificate problem in err: its cause without the "x509: " prefix, and
// the hint for the operator.
func tlsCause(err error) (cause, hint string, ok bool) {
	const caHint = " (set the registry's ca_file)"
	var (
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
		sys x509.SystemRootsError
		cv  *tls.CertificateVerificationError
		rh  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &ua):
		return strip(ua.Error()), caHint, true
	case errors.As(err, &hn):
		return strip(hn.Error()), "", true // the right CA does not fix a wrong name
	case errors.As(err, &inv):
		return strip(inv.Error()), caHint, true
	case errors.As(err, &sys):
		return strip(sys.Error()), caHint, true
	case errors.As(err, &cv):
		return strip(cv.Err.Error()), caHint, true
	case errors.As(err, &rh):
		return "the registry does not speak TLS (plain HTTP?)", "", true
	}
	return "", "", false
}

func strip(s string) string {
	return strings.TrimPrefix(strings.TrimPrefix(s, "tls: "), "x509: ")
}

// netCause is the short cause of a network failure ("connection refused", "timeout",
// "lookup HOST: no such host"), without the URL and addresses the library wraps it in.
func netCause(err error) (string, bool) {
	var dns *net.DNSError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &dns):
		return "lookup " + dns.Name + ": " + dns.Err, true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed by the registry", true
	case errors.As(err, &op):
		return last(op.Err.Error()), true
	}
	return "", false
}

// last keeps the innermost part of a wrapped message ("connect: connection refused").
func last(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// clean is the second guard on secrets: whatever an error says, no password or token of
// this client's registries (nor a basic-auth header value) leaves the package.
func (c *Client) clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, r := range c.Registries {
		for _, s := range secrets(r.Auth) {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
		}
	}
	if msg == err.Error() {
		return err // keep the chain for errors.Is (context.Canceled)
	}
	return errors.New(msg)
}

func secrets(a Auth) []string {
	var s []string
	if a.Password != "" {
		s = append(s, a.Password, base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)))
	}
	if a.Token != "" {
		s = append(s, a.Token)
	}
	return s
}
