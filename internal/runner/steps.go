package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/kinstall/kinstall/internal/transport"
)

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
			sum := sha256.Sum256(data)
			c, err := transport.FileChange(ctx, h.Conn, hex.EncodeToString(sum[:]), transport.FileSpec{Path: path, Mode: mode, Owner: owner, Sudo: true})
			if err != nil || c == "" {
				return "", err
			}
			return path + ": " + c, nil
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
			return transport.FirstLine(apply), nil
		}
	}
	return t
}
