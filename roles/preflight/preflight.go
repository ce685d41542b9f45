// Package preflight learns each host's facts and checks it can carry its roles, before anything
// on the host is changed.
package preflight

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
	"github.com/kinstall/kinstall/roles/role"
)

// Fact names recorded on each host.
const (
	FactOS       = "os"
	FactArch     = "arch"
	FactKernel   = "kernel"
	FactCPUs     = "cpus"
	FactMemMiB   = "mem_mib"
	FactHostname = "hostname"
	FactSkew     = "time_skew" // remote clock minus local clock, seconds (float)
	FactUser     = "user"
	FactSudo     = "sudo" // "yes" when become works
)

// MaxTimeSkew is the clock difference above which a host is refused: etcd and TLS validity both
// go wrong with clocks far apart.
const MaxTimeSkew = 30 * time.Second

// Minimums kubeadm also enforces for control-plane nodes.
const (
	minMasterCPUs   = 2
	minMasterMemMiB = 1700
)

// factsScript prints key=value lines; one round trip gathers everything.
const factsScript = `. /etc/os-release 2>/dev/null
echo "os=${PRETTY_NAME:-unknown}"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "mem_kib=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "hostname=$(hostname)"
echo "user=$(id -un)"
echo "now=$(date +%s.%N)"`

// Role is the checks before anything changes.
type Role struct{ c *cluster.Cluster }

// New prepares the role.
func New(e *role.Env) (*Role, error) { return &Role{c: e.Cluster}, nil }

// Tasks returns preflight's tasks.
func (r *Role) Tasks() []runner.Task {
	return []runner.Task{
		{Name: "gather facts", Check: gatherFacts},
		{Name: "become root", Check: checkSudo},
		{Name: "clock skew", Check: checkSkew},
		{Name: "resources", When: func(h *runner.Host) bool { return h.Master }, Check: checkResources},
	}
}

// GatherFacts exposes the facts task for `kinstall ping`.
func GatherFacts() []runner.Task {
	return []runner.Task{{Name: "gather facts", Check: gatherFacts}, {Name: "become root", Check: checkSudo}}
}

func gatherFacts(ctx context.Context, h *runner.Host) (string, error) {
	before := time.Now()
	out, err := h.Run(ctx, transport.Cmd{Command: factsScript})
	if err != nil {
		return "", err
	}
	after := time.Now()
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "mem_kib":
			kib, _ := strconv.ParseInt(v, 10, 64)
			h.SetFact(FactMemMiB, strconv.FormatInt(kib/1024, 10))
		case "now":
			remote, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return "", fmt.Errorf("facts: bad clock reading %q", v)
			}
			// The remote clock was read somewhere between before and after: compare with the midpoint.
			mid := float64(before.UnixNano()+after.UnixNano()) / 2 / 1e9
			h.SetFact(FactSkew, strconv.FormatFloat(remote-mid, 'f', 3, 64))
		default:
			h.SetFact(k, v)
		}
	}
	return "", nil
}

func checkSudo(ctx context.Context, h *runner.Host) (string, error) {
	out, err := h.Sudo(ctx, "id -u")
	if err != nil {
		return "", fmt.Errorf("cannot become root (set ansible_become=true and, if sudo asks for one, ansible_become_pass): %w", err)
	}
	if strings.TrimSpace(out) != "0" {
		return "", fmt.Errorf("become gave uid %s, want 0 (root)", strings.TrimSpace(out))
	}
	h.SetFact(FactSudo, "yes")
	return "", nil
}

func checkSkew(_ context.Context, h *runner.Host) (string, error) {
	skew, err := strconv.ParseFloat(h.Fact(FactSkew), 64)
	if err != nil {
		return "", fmt.Errorf("no clock reading (gather facts failed?)")
	}
	if math.Abs(skew) > MaxTimeSkew.Seconds() {
		return "", fmt.Errorf("clock is %.1fs off the taskbox's (max %s): sync time with NTP/chrony first", skew, MaxTimeSkew)
	}
	return "", nil
}

func checkResources(_ context.Context, h *runner.Host) (string, error) {
	cpus, _ := strconv.Atoi(h.Fact(FactCPUs))
	mem, _ := strconv.Atoi(h.Fact(FactMemMiB))
	if cpus < minMasterCPUs {
		return "", fmt.Errorf("control plane needs %d CPUs, host has %d", minMasterCPUs, cpus)
	}
	if mem < minMasterMemMiB {
		return "", fmt.Errorf("control plane needs %d MiB of memory, host has %d", minMasterMemMiB, mem)
	}
	return "", nil
}
