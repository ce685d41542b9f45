package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"
)

// checkParse parses text and checks what must hold for any input: no panic; either an *Error
// naming a line of the text, or an inventory whose group depths are consistent and which
// lists as valid JSON.
func checkParse(t *testing.T, text []byte) (*Inventory, error) {
	t.Helper()
	inv, err := Parse("fuzz.ini", text)
	if err != nil {
		var ie *Error
		if !errors.As(err, &ie) {
			t.Fatalf("error is not an *Error: %v", err)
		}
		if n := len(splitLines(string(text))); ie.Line < 1 || ie.Line > n {
			t.Fatalf("error names line %d of a %d-line file: %v", ie.Line, n, err)
		}
		return nil, err
	}
	checkDepths(t, inv)
	out, err := inv.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !json.Valid(strictJSON(out)) {
		t.Fatalf("List produced invalid JSON:\n%s", out)
	}
	// Graph prints every path from all, as ansible-inventory --graph does, so it is
	// exponential in a deep diamond of groups by design; keep it to small graphs.
	if len(inv.groups) <= 16 {
		if g := inv.Graph(); !strings.HasPrefix(g, "@all:\n") {
			t.Fatalf("Graph does not start at all:\n%s", g)
		}
	}
	return inv, nil
}

// strictJSON turns Python's JSON into strict JSON: ansible-inventory prints a float too big
// for a double (1e700) as Infinity or -Infinity, as json.dumps does, and so does List.
func strictJSON(b []byte) []byte {
	var out []byte
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			out = append(out, c, b[i+1])
			i++
			continue
		case c == '"':
			inString = !inString
		case !inString && bytes.HasPrefix(b[i:], []byte("Infinity")):
			out = append(out, '0')
			i += len("Infinity") - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// checkDepths: all is the root at depth 0, no group is its own ancestor, and every other
// group is one below its deepest parent (Ansible's depth).
func checkDepths(t *testing.T, inv *Inventory) {
	t.Helper()
	for _, name := range inv.groupOrder {
		g := inv.groups[name]
		if inv.isAncestor(name, name) {
			t.Fatalf("group %s is its own ancestor", name)
		}
		want := 0
		for _, p := range g.parents {
			if d := inv.groups[p].depth + 1; d > want {
				want = d
			}
		}
		if g.depth != want || (name == "all") != (len(g.parents) == 0) {
			t.Fatalf("group %s: depth %d, parents %v (want depth %d, and parents unless all)", name, g.depth, g.parents, want)
		}
	}
}

// recipe reads fuzz bytes as a series of choices; past the end every choice is 0.
type recipe struct {
	b []byte
	i int
}

func (r *recipe) more() bool { return r.i < len(r.b) }

func (r *recipe) pick(n int) int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1]) % n
}

func (r *recipe) choose(options ...string) string { return options[r.pick(len(options))] }

// fuzzGraph is an INI inventory rendered from a recipe, with what was written into it.
type fuzzGraph struct {
	text  strings.Builder
	edges [][2]string // parent, child of every :children entry written
	hosts []string    // every host name written, ranges expanded
	state string      // kind of the section being written
	group string      // its group
	r     *recipe
	names []string
	eol   string
}

// Values as a host line writes them (shlex-quoted where needed) and as a :vars line does;
// tuples with and without parentheses, nested, and things that only look like them.
var (
	fuzzHostValues = []string{"1", "1,2", "(1,2)", "1,", `"a",3`, "'x y'", "[1,(2,3)]", `"{'k': (1,)}"`, "True", "-3", "2.5", "()", "'1, 2'", "1,,2"}
	fuzzVarValues  = []string{"1", "1,2", "(1,2)", "1,", `"a",3`, "x y", "[1,(2,3)]", "{'k': (1,)}", "True", "-3", "2.5", "()", "1,2 # c", "a,3"}
)

// renderGraph turns fuzz bytes into an inventory built as a group graph: 2 to 10 groups
// (plus all and ungrouped), :children edges that make diamonds, cycles and self-loops, hosts
// with ports and vars, :vars sections, children named before or after their definition,
// comments, and one of three line endings.
func renderGraph(data []byte) *fuzzGraph {
	r := &recipe{b: data}
	g := &fuzzGraph{r: r, state: "hosts", group: "ungrouped"}
	for i := 2 + r.pick(9); i > 0; i-- {
		g.names = append(g.names, fmt.Sprintf("g%d", len(g.names)))
	}
	g.eol = r.choose("\n", "\r\n", "\r")
	for ops := 0; r.more() && ops < 300; ops++ {
		g.step()
	}
	return g
}

// step writes one randomly chosen piece of inventory.
func (g *fuzzGraph) step() {
	switch g.r.pick(8) {
	case 0:
		g.header(g.anyGroup(), "")
	case 1:
		g.header(g.anyGroup(), ":children")
		for n := g.r.pick(4); n > 0; n-- {
			g.child()
		}
	case 2:
		g.header(g.anyGroup(), ":vars")
		g.varLine()
	case 3:
		g.inSection("hosts")
		g.hostLine()
	case 4:
		g.line(g.r.choose("", "# comment", "; comment", "   "))
	case 5: // one edge, the usual way to grow diamonds and cycles
		g.header(g.anyGroup(), ":children")
		g.child()
	case 6: // more of the current section
		switch g.state {
		case "children":
			g.child()
		case "vars":
			g.varLine()
		default:
			g.hostLine()
		}
	case 7: // define every group, so fewer inventories fail on an undefined one
		for _, n := range g.names {
			g.header(n, "")
		}
	}
}

// anyGroup is mostly an ordinary group, and now and then all or ungrouped.
func (g *fuzzGraph) anyGroup() string {
	switch k := g.r.pick(16); k {
	case 14:
		return "all"
	case 15:
		return "ungrouped"
	default:
		return g.names[k%len(g.names)]
	}
}

func (g *fuzzGraph) line(s string) { g.text.WriteString(s + g.eol) }

func (g *fuzzGraph) header(name, kind string) {
	g.line("[" + name + kind + "]" + g.r.choose("", "", " # c"))
	g.group, g.state = name, strings.TrimPrefix(kind, ":")
	if kind == "" {
		g.state = "hosts"
	}
}

func (g *fuzzGraph) inSection(state string) {
	if g.state != state {
		g.header(g.anyGroup(), "")
	}
}

func (g *fuzzGraph) child() {
	c := g.anyGroup()
	if c == g.group && g.r.pick(4) != 0 {
		c = g.anyGroup() // self-loops, mostly, would end every inventory at once
	}
	g.line(c + g.r.choose("", "", " # c"))
	g.edges = append(g.edges, [2]string{g.group, c})
}

func (g *fuzzGraph) varLine() {
	k := g.r.choose("v", "w", "ansible_port", "ansible_group_priority")
	v := g.r.choose(fuzzVarValues...)
	if k == "ansible_group_priority" {
		v = g.r.choose("1", "2", "5")
	}
	g.line(k + g.r.choose("=", " = ") + v)
}

func (g *fuzzGraph) hostLine() {
	name, names := "h"+g.r.choose("0", "1", "2", "3"), []string(nil)
	switch g.r.pick(4) {
	case 0:
		name, names = "h[1:3]", []string{"h1", "h2", "h3"}
	case 1:
		name, names = "h[a:b]", []string{"ha", "hb"}
	default:
		names = []string{name}
	}
	s := name + g.r.choose("", "", ":22", ":2222", ":0")
	for n := g.r.pick(3); n > 0; n-- {
		s += " " + g.r.choose("v", "w", "ansible_port") + "=" + g.r.choose(fuzzHostValues...)
	}
	g.line(s)
	g.hosts = append(g.hosts, names...)
}

// hasCycle reports whether the edges (with all > ungrouped, which Ansible starts with) make
// a group its own ancestor, or put all under a group: either way Ansible refuses the file.
func (g *fuzzGraph) hasCycle() bool {
	children := map[string][]string{"all": {"ungrouped"}}
	for _, e := range g.edges {
		if e[1] == "all" {
			return true
		}
		children[e[0]] = append(children[e[0]], e[1])
	}
	state := map[string]int{} // 1 on the path, 2 done
	var visit func(string) bool
	visit = func(n string) bool {
		if state[n] == 1 {
			return true
		}
		if state[n] == 2 {
			return false
		}
		state[n] = 1
		for _, c := range children[n] {
			if visit(c) {
				return true
			}
		}
		state[n] = 2
		return false
	}
	for n := range children {
		if visit(n) {
			return true
		}
	}
	return false
}

// checkGraph parses the inventory a recipe renders: in bounded time, refusing every cycle,
// and knowing every host written when it succeeds.
func checkGraph(t *testing.T, data []byte) {
	g := renderGraph(data)
	text := g.text.String()
	start := time.Now()
	inv, err := checkParse(t, []byte(text))
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("parsing a %d-group graph took %v:\n%s", len(g.names), d, text)
	}
	if err != nil {
		return
	}
	if g.hasCycle() {
		t.Fatalf("a cycle of :children groups was accepted:\n%s", text)
	}
	for _, h := range g.hosts {
		if !inv.HasHost(h) {
			t.Fatalf("host %s is missing:\n%s", h, text)
		}
	}
}

func TestStrictJSON(t *testing.T) {
	inv, err := Parse("inf.ini", []byte("[g]\nh v=1e700 w=-1e700 s='Infinity \\\" Infinity'\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := inv.List()
	if !bytes.Contains(out, []byte(`"v": Infinity,`)) || !bytes.Contains(out, []byte(`"w": -Infinity`)) {
		t.Errorf("want Infinity as ansible-inventory prints it:\n%s", out)
	}
	var v map[string]any
	if err := json.Unmarshal(strictJSON(out), &v); err != nil {
		t.Fatal(err)
	}
	h := v["_meta"].(map[string]any)["hostvars"].(map[string]any)["h"].(map[string]any)
	if h["s"] != `Infinity \" Infinity` || h["v"] != 0.0 {
		t.Errorf("strictJSON changed a string or missed a number: %v", h)
	}
}

func TestRenderGraphFindsCycles(t *testing.T) {
	// Enough random recipes to see cycles, diamonds and clean inventories alike.
	rng := rand.New(rand.NewSource(1))
	var ok, refused int
	for i := 0; i < 3000; i++ {
		data := make([]byte, 20+rng.Intn(200))
		rng.Read(data)
		checkGraph(t, data)
		if _, err := Parse("r.ini", []byte(renderGraph(data).text.String())); err == nil {
			ok++
		} else {
			refused++
		}
	}
	if ok == 0 || refused == 0 {
		t.Errorf("recipes gave %d good and %d refused inventories; want some of each", ok, refused)
	}
}
