package bootstrap

import (
	"os"
	"testing"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/runner"
)

func TestHostsBlockGolden(t *testing.T) {
	c, err := cluster.Load("../../conf/hosts.ini", "../../conf/common.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := hostsBlock(&runner.Host{Host: c.Host("node1")}, c)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile("testdata/hosts-block.golden", got, 0o644)
	}
	want, _ := os.ReadFile("testdata/hosts-block.golden")
	if string(got) != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	sysctl, _ := templates.Render("sysctl.conf.tmpl", nil)
	wantSysctl, _ := os.ReadFile("testdata/sysctl.conf.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile("testdata/sysctl.conf.golden", sysctl, 0o644)
	} else if string(sysctl) != string(wantSysctl) {
		t.Errorf("sysctl:\n%s", sysctl)
	}
}

func TestMergeHostsFile(t *testing.T) {
	block := []byte(BlockBegin + "\n1.1.1.1 a\n" + BlockEnd + "\n")
	tests := []struct{ name, in, want string }{
		{"append", "127.0.0.1 localhost\n", "127.0.0.1 localhost\n" + string(block)},
		{"append without final newline", "127.0.0.1 localhost", "127.0.0.1 localhost\n" + string(block)},
		{"replace old block, keep the rest", "x\n" + BlockBegin + "\n9.9.9.9 old\n" + BlockEnd + "\ny\n", "x\n" + string(block) + "y\n"},
		{"idempotent", "x\n" + string(block), "x\n" + string(block)},
	}
	for _, tt := range tests {
		if got := mergeHostsFile(tt.in, block); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
