package inventory

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pySpace is what Python's str.isspace and re's \s match in text: Go's \s is ASCII only (and
// lacks \v), and Go's unicode.IsSpace lacks U+001C..U+001F.
const pySpace = `\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`

// Patterns of ansible-core's ini plugin, with Python's Unicode \s and \w spelled out.
var (
	sectionRe   = regexp.MustCompile(`^\[([^:\]` + pySpace + `]+)(?::([\p{L}\p{N}_]+))?\][` + pySpace + `]*(?:#.*)?$`)
	groupNameRe = regexp.MustCompile(`^([^:\]` + pySpace + `]+)[` + pySpace + `]*(?:#.*)?$`)
)

// splitLines splits text where Python's str.splitlines does, as Ansible reads the file: so
// line numbers (and what is one line) agree with Ansible's even for \r, \v, \f, U+2028...
func splitLines(text string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		next := i + size
		switch r {
		case '\r':
			if next < len(text) && text[next] == '\n' {
				next++ // \r\n is one break
			}
		case '\n', '\v', '\f', '\x1c', '\x1d', '\x1e', '\u0085', '\u2028', '\u2029':
		default:
			i = next
			continue
		}
		lines = append(lines, text[start:i])
		start, i = next, next
	}
	if start < len(text) {
		lines = append(lines, text[start:])
	}
	return lines
}

// pyStrip trims what Python's str.strip trims.
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

type pending struct {
	line    int
	state   string // "vars" or "children"
	parents []string
}

type parser struct {
	inv     *Inventory
	file    string
	line    int
	pending map[string]*pending
	order   []string // pending names in order, for a stable first error
	// allUnder is the first :children entry that puts all under another group, and its line.
	allUnder     string
	allUnderLine int
}

func (p *parser) errorf(format string, args ...any) error {
	return &Error{File: p.file, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse(text string) error {
	groupName, state := "ungrouped", "hosts"
	for i, raw := range splitLines(text) {
		p.line = i + 1
		line := pyStrip(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if m := sectionRe.FindStringSubmatch(line); m != nil {
			groupName, state = m[1], m[2]
			if state == "" {
				state = "hosts"
			}
			if state != "hosts" && state != "vars" && state != "children" {
				return p.errorf("section [%s:%s] has unknown type %q: use :vars or :children", groupName, state, state)
			}
			if err := p.declare(groupName, state); err != nil {
				return err
			}
			continue
		}
		// Like Ansible, a '[' line that is not a section is a host ("[::1]:22"), unless it
		// also ends in ']', which can only be a broken section header.
		if line[0] == '[' && line[len(line)-1] == ']' {
			return p.errorf("invalid section %q: write [group], [group:vars] or [group:children], without spaces", line)
		}
		var err error
		switch state {
		case "hosts":
			err = p.hostLine(line, groupName)
		case "vars":
			err = p.varsLine(line, groupName)
		case "children":
			err = p.childLine(line, groupName)
		}
		if err != nil {
			return err
		}
	}
	for _, name := range p.order {
		d, ok := p.pending[name]
		if !ok {
			continue
		}
		p.line = d.line
		if d.state == "vars" {
			return p.errorf("section [%s:vars] is for a group that is never defined: add a [%s] section or fix the name", name, name)
		}
		return p.errorf("section [%s:children] names group %q, which is never defined: add a [%s] section", d.parents[len(d.parents)-1], name, name)
	}
	return p.checkAllIsRoot()
}

// declare handles a section header: [g] or [g:children] define a group; [g:vars] only refers to it.
func (p *parser) declare(name, state string) error {
	if !p.inv.HasGroup(name) {
		if state == "vars" {
			if _, ok := p.pending[name]; !ok {
				p.addPending(name, &pending{line: p.line, state: "vars"})
			}
		}
		p.inv.addGroup(name)
	}
	if d, ok := p.pending[name]; ok && state != "vars" {
		if d.state == "children" {
			return p.addPendingChildren(name)
		}
		delete(p.pending, name)
	}
	return nil
}

func (p *parser) addPending(name string, d *pending) {
	p.pending[name] = d
	p.order = append(p.order, name)
}

// addPendingChildren links a group, now defined, under the :children sections that named it
// earlier. An error here is reported at the header line that defined the group.
func (p *parser) addPendingChildren(name string) error {
	d := p.pending[name]
	delete(p.pending, name)
	for _, parent := range d.parents {
		if err := p.link(parent, name); err != nil {
			return err
		}
		if pd, ok := p.pending[parent]; ok && pd.state == "children" {
			if err := p.addPendingChildren(parent); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *parser) childLine(line, parent string) error {
	m := groupNameRe.FindStringSubmatch(line)
	if m == nil {
		return p.errorf("expected a group name in [%s:children], got %q", parent, line)
	}
	child := m[1]
	if p.inv.HasGroup(child) {
		return p.link(parent, child)
	}
	if d, ok := p.pending[child]; ok {
		d.parents = append(d.parents, parent)
		return nil
	}
	p.addPending(child, &pending{line: p.line, state: "children", parents: []string{parent}})
	return nil
}

func (p *parser) varsLine(line, groupName string) error {
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		return p.errorf("expected key=value in [%s:vars], got %q", groupName, line)
	}
	k, v = pyStrip(k), pyStrip(v)
	g := p.inv.groups[groupName]
	val := parseValue(v)
	if k == "ansible_group_priority" {
		n, err := toInt(val)
		if err != nil {
			return p.errorf("ansible_group_priority must be a whole number, got %q", v)
		}
		g.priority = n
		return nil
	}
	g.vars.set(k, val)
	return nil
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case string:
		return strconv.Atoi(pyStrip(x))
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case float64:
		return int(x), nil
	}
	return 0, fmt.Errorf("not a number")
}

func (p *parser) hostLine(line, groupName string) error {
	tokens, err := shlexSplit(line)
	if err != nil {
		return p.errorf("host line %q: %v", line, err)
	}
	if len(tokens) == 0 {
		return nil
	}
	pattern := tokens[0]
	if strings.HasSuffix(pyStrip(pattern), ":") {
		return p.errorf("host %q ends in ':': write host:port with a port number, or drop the ':'", pattern)
	}
	names, port, err := expandHostPattern(pattern)
	if err != nil {
		return p.errorf("host %q: %v", pattern, err)
	}
	for _, name := range names {
		// Ansible refuses these too (without a line number): "---" starts a YAML document.
		if pyStrip(name) == "---" {
			return p.errorf("host %q: '---' is not a host name; it starts a YAML document, and this is an INI inventory", pattern)
		}
	}
	type kv struct {
		k string
		v any
	}
	var vars []kv
	for _, t := range tokens[1:] {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return p.errorf("expected key=value after host %s, got %q", pattern, t)
		}
		vars = append(vars, kv{k, parseValue(v)})
	}
	for _, name := range names {
		if name == "" {
			// Ansible's add_host refuses it too, after reading the variables.
			return p.errorf("empty host name: the line starts with an empty quoted string")
		}
		h, created := p.inv.addHost(name, groupName, p.line)
		// Ansible hands the port only to the constructor of a new host (Host(name, port)),
		// which ignores a false port: a port on a later line for a known host, and port 0,
		// set nothing. Only an explicit ansible_port= changes it afterwards.
		if created && port > 0 {
			h.vars.set("ansible_port", int64(port))
		}
		for _, e := range vars {
			h.vars.set(e.k, e.v)
		}
	}
	return nil
}

// link puts child under parent as Ansible's add_child_group does, and like it refuses, at the
// line being parsed, an edge that would make a group its own ancestor (Ansible stops there
// too, but names no line).
func (p *parser) link(parent, child string) error {
	if parent == child {
		return p.errorf("[%s:children] names %q itself: group %q would be its own ancestor through :children", parent, child, child)
	}
	if p.inv.hasChild(parent, child) {
		return nil
	}
	if p.inv.isAncestor(child, parent) {
		return p.errorf("[%s:children] names %q, which is already an ancestor of %q: group %q would be its own ancestor through :children", parent, child, parent, child)
	}
	if child == "all" && p.allUnderLine == 0 {
		p.allUnder, p.allUnderLine = parent, p.line
	}
	p.inv.addChild(parent, child)
	return nil
}

// checkAllIsRoot rejects all as a child. Ansible accepts the line, then fails after parsing
// with a dependency loop when it puts the top groups under all; it checks that after the
// undefined-group errors, so this comes last too, pointing at the line that caused it.
func (p *parser) checkAllIsRoot() error {
	if p.allUnderLine == 0 {
		return nil
	}
	p.line = p.allUnderLine
	return p.errorf("[%s:children] names group all, the root of every group: all cannot be a child, since every top group goes under all and that would make a loop", p.allUnder)
}
