package inventory

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestGoldenAgainstAnsible compares List and Graph with what the real ansible-inventory
// printed for the same file (testdata/golden/regen.sh made them; ORACLE names its version).
func TestGoldenAgainstAnsible(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.ini")
	if len(files) < 20 {
		t.Fatalf("golden suite has %d inventories, want at least 20", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(f, ".ini")
		t.Run(filepath.Base(name), func(t *testing.T) {
			inv, err := ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := inv.List()
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			// Byte for byte, and as data (a clearer message when it differs).
			if string(got)+"\n" != string(want) {
				var g, w any
				_ = json.Unmarshal(got, &g)
				_ = json.Unmarshal(want, &w)
				if !reflect.DeepEqual(g, w) {
					t.Errorf("--list differs from ansible-inventory:\ngot:\n%s\nwant:\n%s", got, want)
				} else {
					t.Errorf("--list has the same data as ansible-inventory but other formatting:\ngot:\n%s\nwant:\n%s", got, want)
				}
			}
			wantGraph, err := os.ReadFile(name + ".graph")
			if err != nil {
				t.Fatal(err)
			}
			if inv.Graph() != string(wantGraph) {
				t.Errorf("--graph differs:\ngot:\n%s\nwant:\n%s", inv.Graph(), wantGraph)
			}
		})
	}
}

func TestHostVarsAndGroups(t *testing.T) {
	inv, err := ParseFile("testdata/golden/precedence.ini")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want map[string]any
	}{
		// host var beats child beats parent beats all
		{"h1", map[string]any{"v": "host", "a": "all", "p": "parent", "c": "child"}},
		// child (depth 2) beats other (depth 1) beats all
		{"h2", map[string]any{"v": "child", "a": "all", "p": "parent", "c": "child", "o": "other"}},
	}
	for _, tt := range tests {
		if got := inv.HostVars(tt.host); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("HostVars(%s) = %v, want %v", tt.host, got, tt.want)
		}
	}
	if got := inv.GroupHosts("parent"); !reflect.DeepEqual(got, []string{"h1", "h2"}) {
		t.Errorf("GroupHosts(parent) = %v", got)
	}
	if inv.GroupHosts("nope") != nil {
		t.Error("GroupHosts of a missing group should be nil")
	}
	if file, line := inv.Position("h2"); file != "testdata/golden/precedence.ini" || line != 14 {
		t.Errorf("Position(h2) = %s:%d", file, line)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line       int
		msg        string
	}{
		{"range end before begin", "[g]\nnode[3:1]\n", 2, "begin must not be after end"},
		{"range without end", "[g]\nnode[1:]\n", 2, "has no end value"},
		{"range mixed letters and numbers", "[g]\nnode[a:3]\n", 2, "use numbers"},
		{"range padded widths differ", "[g]\nnode[01:100]\n", 2, "same width"},
		{"range bad step", "[g]\nnode[1:5:0]\n", 2, "step must be a positive"},
		{"range not closed", "[g]\nnode[1:3\n", 2, "no closing ']'"},
		{"unterminated double quote", "[g]\nh1 a=\"open\n", 2, "no closing quotation"},
		{"unterminated single quote", "\n\n[g]\nh1 a='open\n", 4, "no closing quotation"},
		{"unknown section suffix", "[g:hostvars]\n", 1, "unknown type"},
		{"vars line without =", "[g]\nh1\n[g:vars]\njustakey\n", 4, "expected key=value"},
		{"host var without =", "[g]\nh1 novalue\n", 2, "expected key=value"},
		{"broken section header", "[bad group]\n", 1, "invalid section"},
		{"vars for undefined group", "[ghost:vars]\nk=v\n", 1, "never defined"},
		{"children names undefined group", "[p:children]\nmissing\n", 2, "never defined"},
		{"children line not a group name", "[p:children]\na b\n", 2, "expected a group name"},
		{"host ending in colon", "[g]\nhost:\n", 2, "ends in ':'"},
		{"huge range", "[g]\nn[1:99999999]\n", 2, "more than 10000"},
		{"bad group priority", "[g]\nh\n[g:vars]\nansible_group_priority=high\n", 4, "whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.ini", []byte(tt.text))
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("want *Error, got %v", err)
			}
			if ie.File != "bad.ini" || ie.Line != tt.line || !strings.Contains(ie.Msg, tt.msg) {
				t.Errorf("got %q, want bad.ini:%d containing %q", err, tt.line, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "bad.ini:") {
				t.Errorf("error should start with file:line: %q", err)
			}
		})
	}
}

func TestCycleRejected(t *testing.T) {
	_, err := Parse("c.ini", []byte("[a:children]\nb\n[b:children]\na\n"))
	if err == nil || !strings.Contains(err.Error(), "its own ancestor") {
		t.Fatalf("want a cycle error, got %v", err)
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"1", int64(1)}, {"-5", int64(-5)}, {"--5", "--5"}, {"0x1F", int64(31)}, {"1_000", int64(1000)},
		{"010", "010"}, {"00", int64(0)}, {"1.5", 1.5}, {"1e3", 1000.0}, {"True", true}, {"false", "false"},
		{"None", nil}, {"yes", "yes"}, {"'q'", "q"}, {`"a" 'b'`, "ab"}, {"[1, 'a']", []any{int64(1), "a"}},
		{"(1,)", []any{int64(1)}}, {"{'a': [1]}", map[string]any{"a": []any{int64(1)}}}, {"{1, 2}", "{1, 2}"},
		{"1 # c", int64(1)}, {"x # c", "x # c"}, {"", ""}, {`'\x41\n'`, "A\n"}, {`r'\n'`, `\n`}, {"b'x'", "x"},
		{"1j", "1j"}, {"1+2", "1+2"}, {"-True", "-True"}, {"'''t'''", "t"}, {"{1: 'a'}", map[string]any{"1": "a"}},
	}
	for _, tt := range tests {
		if got := parseValue(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseValue(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{1000: "1000.0", 1.5: "1.5", 1e20: "1e+20", 1.5e-5: "1.5e-05", 1e16: "1e+16", 1e15: "1000000000000000.0", 0.0001: "0.0001"} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

// FuzzParse: the parser never panics, and what it accepts it can print as valid JSON.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.ini")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte("[g]\nh[1:3]:22 a=\"x y\" b=[1,{'k':(2,)}]\n[g:vars]\nv=1e5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.ini", data)
		if err != nil {
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("error is not an *Error: %v", err)
			}
			return
		}
		out, err := inv.List()
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("List produced invalid JSON:\n%s", out)
		}
		_ = inv.Graph()
	})
}
