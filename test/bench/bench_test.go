package main

import (
	"context"
	"os/exec"
	"testing"
)

// TestSmoke keeps the benchmark from rotting: 2 hosts, 2 commands, every workload once.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	_, err := exec.LookPath("ansible-playbook")
	rows, err2 := runHosts(context.Background(), config{reps: 1, ansibleReps: 1, ansible: err == nil, commands: 2}, 2, true)
	if err2 != nil {
		t.Fatal(err2)
	}
	if len(rows) != 5 {
		t.Fatalf("rows: %+v", rows)
	}
	for _, r := range rows {
		if r.Kinstall <= 0 {
			t.Errorf("%s: no kinstall time", r.Workload)
		}
	}
	t.Logf("%+v", rows)
}
