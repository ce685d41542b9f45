// Package stage pushes a component's verified files from the taskbox to a host's staging
// directory, /opt/kinstall/artifacts/<component>-<version>-linux-<arch>/, skipping files whose
// bytes the host already has. Roles install from there; hosts never download anything.
package stage

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/kinstall/kinstall/internal/artifacts"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
)

// Root is where artifacts are pushed on the hosts.
const Root = "/opt/kinstall/artifacts"

// Dir is the staging directory of one component.
func Dir(component, version, arch string) string {
	return Root + "/" + component + "-" + version + "-linux-" + arch
}

// Arch returns the host's Go arch, from preflight's facts or by asking.
func Arch(ctx context.Context, h *runner.Host) (string, error) {
	m := h.Fact("arch")
	if m == "" {
		out, err := h.Run(ctx, transport.Cmd{Command: "uname -m"})
		if err != nil {
			return "", err
		}
		m = strings.TrimSpace(out)
		h.SetFact("arch", m)
	}
	return artifacts.GoArch(m)
}

// HostDir is Dir for the host's arch.
func HostDir(ctx context.Context, h *runner.Host, component, version string) (string, error) {
	arch, err := Arch(ctx, h)
	if err != nil {
		return "", err
	}
	return Dir(component, version, arch), nil
}

// Task pushes files of component at version to the hosts selected by when (hash-checked:
// unchanged files are not sent again). mode is applied to every file.
func Task(src *artifacts.Source, component, version string, files []string, mode os.FileMode, when func(h *runner.Host) bool) runner.Task {
	set := func(ctx context.Context, h *runner.Host) (*artifacts.Set, error) {
		arch, err := Arch(ctx, h)
		if err != nil {
			return nil, err
		}
		return src.Resolve(ctx, component, version, arch)
	}
	spec := func(s *artifacts.Set, f string) transport.FileSpec {
		return transport.FileSpec{Path: Dir(component, version, s.Arch) + "/" + f, Mode: mode, Sudo: true}
	}
	return runner.Task{
		Name: component + " " + version + " staged",
		When: when,
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			s, err := set(ctx, h)
			if err != nil {
				return "", err
			}
			dir := Dir(component, version, s.Arch)
			fresh, err := stamped(ctx, h, dir, files, s.SHA256)
			if err != nil {
				return "", err
			}
			var missing, verified []string
			for _, f := range files {
				if fresh[f] {
					continue
				}
				c, err := transport.FileChange(ctx, h.Conn, s.SHA256[f], spec(s, f))
				if err != nil {
					return "", err
				}
				if c != "" {
					missing = append(missing, f)
				} else {
					verified = append(verified, f)
				}
			}
			if len(verified) > 0 && !h.DryRun {
				if err := stamp(ctx, h, dir, verified, s.SHA256); err != nil {
					return "", err
				}
			}
			if len(missing) == 0 {
				return "", nil
			}
			return "push " + strings.Join(missing, ", ") + " to " + dir, nil
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			s, err := set(ctx, h)
			if err != nil {
				return err
			}
			for _, f := range files {
				if _, err := h.Conn.Upload(ctx, s.Files[f], spec(s, f)); err != nil {
					return err
				}
			}
			return stamp(ctx, h, Dir(component, version, s.Arch), files, s.SHA256)
		},
	}
}

// A stamp beside each staged file (.NAME.stamp: sha256, size, mtime, mode as verified) lets a
// re-run skip hashing hundreds of MiB per host: a file whose size, mtime and mode still match
// its stamp is the verified one. Anything else is hashed again.

func stampPath(dir, f string) string { return dir + "/." + f + ".stamp" }

// stamped reports, per file, whether its stamp says it has the wanted sha256.
func stamped(ctx context.Context, h *runner.Host, dir string, files []string, sums map[string]string) (map[string]bool, error) {
	var b strings.Builder
	for _, f := range files {
		p, st := transport.Quote(dir+"/"+f), transport.Quote(stampPath(dir, f))
		fmt.Fprintf(&b, "[ -f %s ] && [ -f %s ] && echo %s $(cat %s) $(stat -c '%%s %%Y %%a' %s)\n", p, st, transport.Quote(f), st, p)
	}
	b.WriteString("true")
	out, err := h.Run(ctx, transport.Cmd{Command: b.String(), Sudo: true})
	if err != nil {
		return nil, err
	}
	fresh := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		// name sha size mtime mode (stamp) size mtime mode (now)
		f := strings.Fields(line)
		if len(f) == 8 && f[1] == sums[f[0]] && f[2] == f[5] && f[3] == f[6] && f[4] == f[7] {
			fresh[f[0]] = true
		}
	}
	return fresh, nil
}

// stamp records files as verified with their sha256.
func stamp(ctx context.Context, h *runner.Host, dir string, files []string, sums map[string]string) error {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "echo %s $(stat -c '%%s %%Y %%a' %s) > %s\n", sums[f], transport.Quote(dir+"/"+f), transport.Quote(stampPath(dir, f)))
	}
	_, err := h.Run(ctx, transport.Cmd{Command: b.String(), Sudo: true})
	return err
}

// InstallTask installs staged binaries into dir (0755), each replaced by a rename so a running
// program keeps its old file; changed records the fact "changed:binary:<component>".
func InstallTask(component, version string, binaries []string, dir string, when func(h *runner.Host) bool) runner.Task {
	cmds := func(ctx context.Context, h *runner.Host, verb string) (string, error) {
		src, err := HostDir(ctx, h, component, version)
		if err != nil {
			return "", err
		}
		var cs []string
		for _, b := range binaries {
			if verb == "cmp" {
				cs = append(cs, "cmp -s "+transport.Quote(src+"/"+b)+" "+transport.Quote(dir+"/"+b))
			} else {
				cs = append(cs, "install -m 0755 "+transport.Quote(src+"/"+b)+" "+transport.Quote(dir+"/"+b))
			}
		}
		return strings.Join(cs, " && "), nil
	}
	return runner.Task{
		Name: component + " " + version + " installed",
		When: when,
		Check: func(ctx context.Context, h *runner.Host) (string, error) {
			c, err := cmds(ctx, h, "cmp")
			if err != nil {
				return "", err
			}
			res, err := h.Conn.Run(ctx, transport.Cmd{Command: c, Sudo: true})
			if err != nil || res.ExitCode == 0 {
				return "", err
			}
			return "install " + strings.Join(binaries, ", ") + " " + version + " into " + dir, nil
		},
		Apply: func(ctx context.Context, h *runner.Host) error {
			c, err := cmds(ctx, h, "install")
			if err != nil {
				return err
			}
			if _, err := h.Sudo(ctx, c); err != nil {
				return err
			}
			h.SetFact("changed:binary:"+component, "true")
			return nil
		},
	}
}
