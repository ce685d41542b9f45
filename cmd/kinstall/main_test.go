package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (string, error) {
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ini")
	os.WriteFile(bad, []byte("[kube-master]\nm[3:1]\n"), 0o644)
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("kube_version: v1.34.4\nloadbalancer_apiserver_mod: vip\n"), 0o644)
	tests := []struct {
		args    []string
		wantErr string
		wantOut string
	}{
		{[]string{"version"}, "", "kinstall dev"},
		{[]string{"check", "-i", "../../conf/hosts.ini", "-c", "../../conf/common.yaml"}, "", "quorum 2, tolerates 1 failure(s)"},
		{[]string{"check", "-i", bad, "-c", "../../conf/common.yaml"}, bad + ":2: host \"m[3:1]\"", ""},
		{[]string{"check", "-i", "../../conf/hosts.ini", "-c", badYAML}, badYAML + ":2: unknown key loadbalancer_apiserver_mod", ""},
		{[]string{"plan", "-o", "json", "-i", "../../conf/hosts.ini", "-c", "../../conf/common.yaml"}, "", `"name": "control-plane/join"`},
		{[]string{"inventory", "--graph", "-i", "../../conf/hosts.ini"}, "", "  |--@k8s-cluster:\n  |  |--@kube-master:"},
		{[]string{"inventory", "--host", "node1", "-i", "../../conf/hosts.ini"}, "", `"ansible_become": "true"`},
		{[]string{"install", "--check", "--only", "nosuch", "-i", "../../conf/hosts.ini", "-c", "../../conf/common.yaml"}, "no phase \"nosuch\"", ""},
		{[]string{"ping", "--limit", "nosuch", "-i", "../../conf/hosts.ini", "-c", "../../conf/common.yaml"}, "--limit nosuch: no such host or group", ""},
	}
	for _, tt := range tests {
		out, err := runCLI(tt.args...)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !strings.Contains(out, tt.wantOut) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", tt.args, err, tt.wantOut, out)
		}
	}
}
