package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// runFunc runs a command on a host (both Conn kinds).
type runFunc func(ctx context.Context, c Cmd) (Result, error)

// Quote quotes s for /bin/sh.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// wantedOwner is the owner a file should have, or "" when any owner will do.
func wantedOwner(spec FileSpec) string {
	if spec.Owner == "" && spec.Sudo {
		return "root:root"
	}
	return spec.Owner
}

// FileChange says how the file on the host differs from content with this sha256 (hex) and
// spec's mode and owner: "" when it doesn't, else e.g. "create", "update content",
// "mode 644 -> 600". Dry runs show it; writes are skipped when it is "".
func FileChange(ctx context.Context, c Conn, sha string, spec FileSpec) (string, error) {
	return fileChange(ctx, c.Run, sha, spec)
}

func fileChange(ctx context.Context, run runFunc, sum string, spec FileSpec) (string, error) {
	p := Quote(spec.Path)
	res, err := run(ctx, Cmd{Command: "if [ -f " + p + " ]; then sha256sum < " + p + " | cut -d' ' -f1; stat -c '%a %U:%G' " + p + "; fi", Sudo: spec.Sudo})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("stat %s: %s", spec.Path, strings.TrimSpace(string(res.Stderr)))
	}
	f := strings.Fields(string(res.Stdout))
	mode := fmt.Sprintf("%o", spec.Mode.Perm())
	owner := wantedOwner(spec)
	switch {
	case len(f) < 3:
		return "create", nil
	case f[0] != sum:
		return "update content", nil
	case f[1] != mode:
		return fmt.Sprintf("mode %s -> %s", f[1], mode), nil
	case owner != "" && f[2] != owner:
		return fmt.Sprintf("owner %s -> %s", f[2], owner), nil
	}
	return "", nil
}

// installScript writes a file atomically: a temp file beside the target (same file system,
// so the rename is atomic), mode and owner set, then renamed over the target. A failure or a
// kill leaves the target untouched and the temp file removed.
func installScript(spec FileSpec, source string) string {
	p := Quote(spec.Path)
	var b strings.Builder
	fmt.Fprintf(&b, "set -e\nmkdir -p \"$(dirname %s)\"\nt=$(mktemp %s)\ntrap 'rm -f \"$t\"' EXIT\n", p, Quote(spec.Path+".kinstall-XXXXXX"))
	fmt.Fprintf(&b, "cat %s > \"$t\"\nchmod %o \"$t\"\n", source, spec.Mode.Perm())
	if owner := wantedOwner(spec); owner != "" {
		fmt.Fprintf(&b, "chown %s \"$t\"\n", Quote(owner))
	}
	fmt.Fprintf(&b, "mv -f \"$t\" %s\ntrap - EXIT\n", p)
	return b.String()
}

func checkSpec(spec FileSpec) error {
	if !strings.HasPrefix(spec.Path, "/") {
		return fmt.Errorf("file path %q must be absolute", spec.Path)
	}
	return nil
}

// writeData is WriteFile for any host: the data travels in the command's stdin.
func writeData(ctx context.Context, run runFunc, data []byte, spec FileSpec) (bool, error) {
	if err := checkSpec(spec); err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	if change, err := fileChange(ctx, run, hex.EncodeToString(sum[:]), spec); err != nil || change == "" {
		return false, err
	}
	res, err := run(ctx, Cmd{Command: installScript(spec, "-"), Stdin: data, Sudo: spec.Sudo})
	if err != nil {
		return false, err
	}
	if res.ExitCode != 0 {
		return false, fmt.Errorf("write %s: %s", spec.Path, strings.TrimSpace(string(res.Stderr)))
	}
	return true, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// uploadFrom installs a file already on the host at src (then removes src).
func uploadFrom(ctx context.Context, run runFunc, src string, spec FileSpec, removeSrc bool) error {
	script := installScript(spec, Quote(src))
	if removeSrc {
		script += "rm -f " + Quote(src) + "\n"
	}
	res, err := run(ctx, Cmd{Command: script, Sudo: spec.Sudo})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("install %s: %s", spec.Path, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// WriteFile writes data to the host (see Conn).
func (c *sshConn) WriteFile(ctx context.Context, data []byte, spec FileSpec) (bool, error) {
	changed, err := writeData(ctx, c.Run, data, spec)
	if err != nil {
		return false, c.wrap(Cmd{Command: "write " + spec.Path}, err)
	}
	return changed, nil
}

// Upload streams a local file over SFTP into a private directory of the login user, then
// installs it in place (through sudo when asked).
func (c *sshConn) Upload(ctx context.Context, local string, spec FileSpec) (bool, error) {
	changed, err := c.upload(ctx, local, spec)
	if err != nil {
		return false, c.wrap(Cmd{Command: "upload " + spec.Path}, err)
	}
	return changed, nil
}

func (c *sshConn) upload(ctx context.Context, local string, spec FileSpec) (bool, error) {
	return installLocalFile(ctx, c.Run, local, spec, func() (string, bool, error) {
		res, err := c.Run(ctx, Cmd{Command: `mktemp "${TMPDIR:-/tmp}/.kinstall-up.XXXXXX"`})
		if err != nil {
			return "", false, err
		}
		tmp := strings.TrimSpace(string(res.Stdout))
		if res.ExitCode != 0 || tmp == "" {
			return "", false, fmt.Errorf("remote temp file: %s", res.Stderr)
		}
		if err := c.sftpPut(ctx, local, tmp); err != nil {
			_, _ = c.Run(context.Background(), Cmd{Command: "rm -f " + Quote(tmp)})
			return "", false, err
		}
		return tmp, true, nil
	})
}

// installLocalFile installs a local file on a host unless the host already has it: put brings
// the file onto the host and says where (and whether that copy is to be removed after).
func installLocalFile(ctx context.Context, run runFunc, local string, spec FileSpec, put func() (src string, temporary bool, err error)) (bool, error) {
	if err := checkSpec(spec); err != nil {
		return false, err
	}
	sum, err := fileSHA256(local)
	if err != nil {
		return false, err
	}
	if change, err := fileChange(ctx, run, sum, spec); err != nil || change == "" {
		return false, err
	}
	src, temporary, err := put()
	if err != nil {
		return false, err
	}
	if err := uploadFrom(ctx, run, src, spec, temporary); err != nil {
		if temporary {
			_, _ = run(context.Background(), Cmd{Command: "rm -f " + Quote(src)})
		}
		return false, err
	}
	return true, nil
}

func (c *sshConn) sftpPut(ctx context.Context, local, remote string) error {
	c.mu.Lock()
	if c.sftp == nil {
		s, err := c.client.NewSftp()
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("sftp: %w", err)
		}
		c.sessions.Add(1)
		c.sftp = s
	}
	s := c.sftp
	c.mu.Unlock()
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := s.Create(remote)
	if err != nil {
		return fmt.Errorf("sftp create %s: %w", remote, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := dst.ReadFrom(src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = dst.Close()
		return ctx.Err()
	}
}
