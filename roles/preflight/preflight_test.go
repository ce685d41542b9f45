package preflight

import (
	"context"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
)

func hostWith(facts map[string]string) *runner.Host {
	h := &runner.Host{Host: &cluster.Host{Name: "m1", Master: true}}
	for k, v := range facts {
		h.SetFact(k, v)
	}
	return h
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name  string
		check func(context.Context, *runner.Host) (string, error)
		facts map[string]string
		want  string // "" = passes
	}{
		{"small skew", checkSkew, map[string]string{FactSkew: "-1.2"}, ""},
		{"large skew", checkSkew, map[string]string{FactSkew: "45.0"}, "sync time with NTP"},
		{"no clock", checkSkew, nil, "no clock reading"},
		{"enough", checkResources, map[string]string{FactCPUs: "2", FactMemMiB: "2048"}, ""},
		{"one cpu", checkResources, map[string]string{FactCPUs: "1", FactMemMiB: "4096"}, "needs 2 CPUs"},
		{"little memory", checkResources, map[string]string{FactCPUs: "4", FactMemMiB: "1024"}, "needs 1700 MiB"},
	}
	for _, tt := range tests {
		_, err := tt.check(context.Background(), hostWith(tt.facts))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}
