package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/kinstall/kinstall/internal/transport"
)

// FileState is what a remote file looks like now.
type FileState struct {
	Exists bool
	SHA256 string
	Mode   os.FileMode
	Owner  string // user:group
}

// StatFile reads a remote file's hash, mode and owner (as root, so any file can be read).
func StatFile(ctx context.Context, h *Host, path string) (FileState, error) {
	q := ShellQuote(path)
	out, err := h.Sudo(ctx, "if [ -f "+q+" ]; then sha256sum < "+q+" | cut -d' ' -f1; stat -c '%a %U:%G' "+q+"; fi")
	if err != nil {
		return FileState{}, err
	}
	f := strings.Fields(out)
	if len(f) < 3 {
		return FileState{}, nil
	}
	var mode uint32
	if _, err := fmt.Sscanf(f[1], "%o", &mode); err != nil {
		return FileState{}, fmt.Errorf("stat %s: unexpected output %q", path, out)
	}
	return FileState{Exists: true, SHA256: f[0], Mode: os.FileMode(mode), Owner: f[2]}, nil
}

// FileChange describes how a remote file differs from what is wanted ("" when it doesn't).
func FileChange(st FileState, data []byte, mode os.FileMode, owner string) string {
	if owner == "" {
		owner = "root:root"
	}
	sum := sha256.Sum256(data)
	switch {
	case !st.Exists:
		return "create"
	case st.SHA256 != hex.EncodeToString(sum[:]):
		return "update content"
	case st.Mode.Perm() != mode.Perm():
		return fmt.Sprintf("mode %o -> %o", st.Mode.Perm(), mode.Perm())
	case st.Owner != owner:
		return fmt.Sprintf("owner %s -> %s", st.Owner, owner)
	}
	return ""
}

// EnsureFile is a task that makes path hold content(h), owned by root unless owner says
// otherwise. After a change it records the fact "changed:"+path for later tasks (restarts).
func EnsureFile(name, path string, mode os.FileMode, owner string, content func(h *Host) ([]byte, error)) Task {
	return ensureFile(name, func(*Host) string { return path }, mode, owner, content)
}

// EnsureFileAt is EnsureFile with a path that depends on the host, owned by root.
func EnsureFileAt(name string, path func(h *Host) string, mode os.FileMode, content func(h *Host) ([]byte, error)) Task {
	return ensureFile(name, path, mode, "", content)
}

func ensureFile(name string, pathOf func(h *Host) string, mode os.FileMode, owner string, content func(h *Host) ([]byte, error)) Task {
	rendered := func(h *Host) ([]byte, error) {
		b, err := content(h)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", pathOf(h), err)
		}
		return b, nil
	}
	return Task{
		Name: name,
		Check: func(ctx context.Context, h *Host) (string, error) {
			path := pathOf(h)
			data, err := rendered(h)
			if err != nil {
				return "", err
			}
			st, err := StatFile(ctx, h, path)
			if err != nil {
				return "", err
			}
			if c := FileChange(st, data, mode, owner); c != "" {
				return path + ": " + c, nil
			}
			return "", nil
		},
		Apply: func(ctx context.Context, h *Host) error {
			path := pathOf(h)
			data, err := rendered(h)
			if err != nil {
				return err
			}
			if _, err := h.Conn.WriteFile(ctx, data, transport.FileSpec{Path: path, Mode: mode, Owner: owner, Sudo: true}); err != nil {
				return err
			}
			h.SetFact("changed:"+path, "true")
			return nil
		},
	}
}

// Shell is a task that runs a command as root when check (a command, exit 0 = already done)
// fails. An empty check always runs.
func Shell(name, check, apply string) Task {
	t := Task{
		Name:  name,
		Apply: func(ctx context.Context, h *Host) error { _, err := h.Sudo(ctx, apply); return err },
	}
	if check != "" {
		t.Check = func(ctx context.Context, h *Host) (string, error) {
			res, err := h.Conn.Run(ctx, transport.Cmd{Command: check, Sudo: true})
			if err != nil {
				return "", err
			}
			if res.ExitCode == 0 {
				return "", nil
			}
			return firstLine(apply), nil
		}
	}
	return t
}

// ShellQuote quotes s for /bin/sh.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
