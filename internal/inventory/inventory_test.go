package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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
		// A cycle is reported at the :children entry that closes it.
		{"cycle of two", "[a:children]\nb\n[b:children]\na\n", 4, `[b:children] names "a", which is already an ancestor of "b"`},
		{"cycle of three, children named first", "[a:children]\nb\n[b:children]\nc\n[c:children]\na\n", 6, `group "a" would be its own ancestor`},
		{"cycle of three, groups defined first", "[a]\n[b]\n[c]\n[a:children]\nb\n[b:children]\nc\n\n[c:children]\n# x\na\n", 11, `[c:children] names "a"`},
		{"cycle in a diamond", "[top:children]\nl\nr\n[l:children]\nbot\n[r:children]\nbot\n[bot:children]\ntop\n", 9, `[bot:children] names "top"`},
		{"group its own child", "[g]\n[g:children]\ng\n", 3, `names "g" itself`},
		{"all its own child", "[all:children]\nall\n", 2, `names "all" itself`},
		{"ungrouped above all", "[ungrouped:children]\nall\n", 2, `group "all" would be its own ancestor`},
		{"all under a group", "[x]\nh\n[x:children]\nall\n", 4, "names group all"},
		// Ansible finds all under a group only after parsing, so other errors come first.
		{"all under a group, then a later error", "[x:children]\nall\n[g]\nh novalue\n", 4, "expected key=value"},
		{"all under a group, then an undefined group", "[x:children]\nall\nmissing\n", 3, "never defined"},
		{"empty host name", "[g]\n'' a=1\n", 2, "empty host name"},
		{"empty host name after vars check", "[g]\n\"\" novalue\n", 2, "expected key=value"},
		{"yaml document start", "[g]\nh1\n---\n", 3, "YAML"},
		// Lines are counted where Python's splitlines breaks them, as Ansible counts.
		{"CRLF lines", "[g]\r\nh1\r\n[g:vars]\r\nnovalue\r\n", 4, "expected key=value"},
		{"CR lines", "[g]\rh1\r[g:vars]\rnovalue\r", 4, "expected key=value"},
		{"form feed and U+2028 break lines", "[g]\fh1\u2028h2 novalue\n", 3, "expected key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.ini", []byte(tt.text))
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("want *Error, got %v", err)
			}
			if ie.Line < 1 || ie.Line > len(splitLines(tt.text)) {
				t.Errorf("line %d is not a line of the file: %q", ie.Line, err)
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
		// Tuples, with or without parentheses, are lists (checked against ansible-inventory).
		{"1,2", []any{int64(1), int64(2)}}, {"(1,2)", []any{int64(1), int64(2)}}, {"1,", []any{int64(1)}},
		{`"a",3`, []any{"a", int64(3)}}, {" 1 , 2 ", []any{int64(1), int64(2)}}, {"1,2,", []any{int64(1), int64(2)}},
		{"1,(2,3),[4,5]", []any{int64(1), []any{int64(2), int64(3)}, []any{int64(4), int64(5)}}},
		{"((),)", []any{[]any{}}}, {"[1,2],", []any{[]any{int64(1), int64(2)}}}, {"-1,-2.5", []any{int64(-1), -2.5}},
		{"1,2 # c", []any{int64(1), int64(2)}}, {"1, # c", []any{int64(1)}}, {"'a' 'b', None", []any{"ab", nil}},
		{"{'k': (1, 2)}", map[string]any{"k": []any{int64(1), int64(2)}}}, {"(1)", int64(1)}, {"-(1)", int64(-1)},
		{"1,,2", "1,,2"}, {",1", ",1"}, {"1 2", "1 2"}, {"1,)", "1,)"}, {"-(1,2)", "-(1,2)"}, {"a,3", "a,3"}, {"1,2j", "1,2j"},
		// Python's limits: 200 nested brackets, and no NUL byte in source.
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), nest(200)},
		{strings.Repeat("[", 201) + strings.Repeat("]", 201), strings.Repeat("[", 201) + strings.Repeat("]", 201)},
		{"'a\x00'", "'a\x00'"},
	}
	for _, tt := range tests {
		if got := parseValue(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseValue(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

// nest returns n nested empty lists, as [[...]] parses.
func nest(n int) any {
	v := []any{}
	for i := 1; i < n; i++ {
		v = []any{v}
	}
	return v
}

// TestPortOnlyWhenHostIsNew: Ansible takes host:port only from the line that creates the host
// (Host(name, port)), and port 0 sets nothing; ansible_port= still sets it at any time.
func TestPortOnlyWhenHostIsNew(t *testing.T) {
	tests := []struct {
		name, text string
		want       any // ansible_port of web1; nil: not set
	}{
		{"port on a later line", "[a]\nweb1\n[b]\nweb1:2222\n", nil},
		{"port on the first line", "[a]\nweb1:2222\n[b]\nweb1\n", int64(2222)},
		{"two ports", "[a]\nweb1:1111\n[b]\nweb1:2222\n", int64(1111)},
		{"two ports in one group", "[a]\nweb1:1\nweb1:2\n", int64(1)},
		{"ungrouped first", "web1\n[b]\nweb1:5\n", nil},
		{"port zero", "[a]\nweb1:0\n", nil},
		{"port zero, then a port", "[a]\nweb1:0\n[b]\nweb1:5\n", nil},
		{"leading zeros", "[a]\nweb1:007\n", int64(7)},
		{"ansible_port beats the port", "[a]\nweb1:22 ansible_port=33\n", int64(33)},
		{"ansible_port, then a later port", "[a]\nweb1 ansible_port=5\n[b]\nweb1:2222\n", int64(5)},
		{"later ansible_port wins", "[a]\nweb1:2222\n[b]\nweb1:0 ansible_port=7\n[c]\nweb1:9\n", int64(7)},
		{"range: only the new host", "[a]\nweb[1:2]\n[b]\nweb[0:1]:2222\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse("p.ini", []byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if got := inv.HostVars("web1")["ansible_port"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ansible_port = %#v, want %#v", got, tt.want)
			}
		})
	}
	inv, _ := Parse("p.ini", []byte("[a]\nweb[1:2]\n[b]\nweb[0:1]:2222\n"))
	if got := inv.HostVars("web0")["ansible_port"]; got != int64(2222) {
		t.Errorf("web0 is new on the range line: ansible_port = %#v, want 2222", got)
	}
}

func TestSplitLinesLikePython(t *testing.T) {
	tests := map[string][]string{
		"":                       nil,
		"a":                      {"a"},
		"a\n":                    {"a"},
		"a\n\nb":                 {"a", "", "b"},
		"a\r\nb\rc\n":            {"a", "b", "c"},
		"a\r\rb":                 {"a", "", "b"},
		"a\vb\fc\x1cd\x1de\x1ef": {"a", "b", "c", "d", "e", "f"},
		"a\u0085b\u2028c\u2029d": {"a", "b", "c", "d"},
		"a\tb\x1fc":              {"a\tb\x1fc"},
	}
	for in, want := range tests {
		if got := splitLines(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitLines(%q) = %q, want %q", in, got, want)
		}
	}
	if got := pyStrip("\x1f\u00a0 a b\u3000\v"); got != "a b" {
		t.Errorf("pyStrip = %q", got)
	}
}

// TestUngroupedUnderAnotherGroup: when ungrouped is put under a group, Ansible takes its hosts
// out of it and out of all; a host also in a real group loses the vars of ungrouped and of
// any ancestor of it that none of its other groups descends from.
func TestUngroupedUnderAnotherGroup(t *testing.T) {
	inv, err := Parse("u.ini", []byte("solo\nboth\n[x]\nboth\ninx\n[x:vars]\nv=x\n[ungrouped:vars]\nu=1\n[x:children]\nungrouped\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Hosts(); !reflect.DeepEqual(got, []string{"both", "inx"}) {
		t.Errorf("Hosts() = %v, want [both inx]", got)
	}
	if !inv.HasHost("solo") {
		t.Error("solo is still a known host")
	}
	if got := inv.HostVars("both"); len(got) != 0 {
		t.Errorf("HostVars(both) = %v, want none (it lost ungrouped and x)", got)
	}
	if got := inv.HostVars("inx"); !reflect.DeepEqual(got, map[string]any{"v": "x"}) {
		t.Errorf("HostVars(inx) = %v", got)
	}
}

// diamondINI makes levels of :children groups in which every group is a child of two
// parents (g0 > a1,b1 > a2,b2 > ...), with hosts at the bottom: 2^levels paths from g0
// down, but only 4 edges a level. bottomUp writes the deepest sections first, so every
// child already exists when it is named.
func diamondINI(levels int, bottomUp bool) string {
	name := func(side string, k int) string {
		if k == 0 {
			return "g0"
		}
		return fmt.Sprintf("%s%d", side, k)
	}
	var sections []string
	for k := 0; k < levels; k++ {
		for _, side := range []string{"a", "b"} {
			if k == 0 && side == "b" {
				continue
			}
			sections = append(sections, fmt.Sprintf("[%s:children]\na%d\nb%d\n[%s:vars]\nlevel=%d\n",
				name(side, k), k+1, k+1, name(side, k), k))
		}
	}
	sections = append(sections, fmt.Sprintf("[a%d]\nha ansible_port=1,2\n[b%d]\nhb\n[b%d:vars]\nlevel=%d\n", levels, levels, levels, levels))
	if bottomUp {
		for i, j := 0, len(sections)-1; i < j; i, j = i+1, j-1 {
			sections[i], sections[j] = sections[j], sections[i]
		}
	}
	return strings.Join(sections, "")
}

// TestDeepDiamond: ancestry and depth are computed once per group, so a 30-level diamond
// (2^30 paths) parses and lists at once.
func TestDeepDiamond(t *testing.T) {
	for _, bottomUp := range []bool{false, true} {
		text := diamondINI(30, bottomUp)
		start := time.Now()
		inv, err := Parse("diamond.ini", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		out, err := inv.List()
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("bottomUp=%v: Parse and List took %v", bottomUp, d)
		}
		if !json.Valid(out) {
			t.Fatal("List is not JSON")
		}
		if g := inv.groups["b30"]; g.depth != 31 {
			t.Errorf("depth of b30 = %d, want 31 (all > g0 > ... > b30)", g.depth)
		}
		// The deepest group's vars win.
		if got := inv.HostVars("hb")["level"]; got != int64(30) {
			t.Errorf("hb level = %v, want 30", got)
		}
		if got := inv.HostVars("ha")["level"]; got != int64(29) {
			t.Errorf("ha level = %v, want 29", got)
		}
		if got := inv.GroupHosts("g0"); !reflect.DeepEqual(got, []string{"ha", "hb"}) && !reflect.DeepEqual(got, []string{"hb", "ha"}) {
			t.Errorf("GroupHosts(g0) = %v", got)
		}
	}
}

func BenchmarkDeepDiamond(b *testing.B) {
	data := []byte(diamondINI(30, false))
	for i := 0; i < b.N; i++ {
		inv, err := Parse("diamond.ini", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inv.List(); err != nil {
			b.Fatal(err)
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

// FuzzParse reads every input twice: as INI text, and as a recipe for a graph of groups,
// :children edges, hosts and vars rendered to INI (renderGraph). Either way the parser never
// panics, names a line of the file in any error, and can print what it accepts as valid
// JSON (but for Python's Infinity); the graph is parsed in bounded time and any cycle in it is refused.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.ini")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte("[g]\nh[1:3]:22 a=\"x y\" b=[1,{'k':(2,)}]\n[g:vars]\nv=1e5\n"))
	f.Add([]byte("[a:children]\nb\n[b:children]\na\n"))
	f.Add([]byte(diamondINI(6, true)))
	f.Add([]byte{9, 0, 5, 1, 2, 5, 2, 3, 5, 3, 1, 5, 1, 0, 7, 3, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
		checkGraph(t, data)
	})
}
