package inventory

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Patterns of ansible-core's ini plugin.
var (
	sectionRe   = regexp.MustCompile(`^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`)
	groupNameRe = regexp.MustCompile(`^([^:\]\s]+)\s*(?:#.*)?$`)
)

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
}

func (p *parser) errorf(format string, args ...any) error {
	return &Error{File: p.file, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse(text string) error {
	groupName, state := "ungrouped", "hosts"
	for i, raw := range strings.Split(text, "\n") {
		p.line = i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
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
			p.declare(groupName, state)
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
	return p.checkCycles()
}

// declare handles a section header: [g] or [g:children] define a group; [g:vars] only refers to it.
func (p *parser) declare(name, state string) {
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
			p.addPendingChildren(name)
		} else {
			delete(p.pending, name)
		}
	}
}

func (p *parser) addPending(name string, d *pending) {
	p.pending[name] = d
	p.order = append(p.order, name)
}

func (p *parser) addPendingChildren(name string) {
	d := p.pending[name]
	delete(p.pending, name)
	for _, parent := range d.parents {
		p.inv.addChild(parent, name)
		if pd, ok := p.pending[parent]; ok && pd.state == "children" {
			p.addPendingChildren(parent)
		}
	}
}

func (p *parser) childLine(line, parent string) error {
	m := groupNameRe.FindStringSubmatch(line)
	if m == nil {
		return p.errorf("expected a group name in [%s:children], got %q", parent, line)
	}
	child := m[1]
	if p.inv.HasGroup(child) {
		p.inv.addChild(parent, child)
		return nil
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
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
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
		return strconv.Atoi(strings.TrimSpace(x))
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
	if strings.HasSuffix(pattern, ":") {
		return p.errorf("host %q ends in ':': write host:port with a port number, or drop the ':'", pattern)
	}
	names, port, err := expandHostPattern(pattern)
	if err != nil {
		return p.errorf("host %q: %v", pattern, err)
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
		h := p.inv.addHost(name, groupName, p.line)
		if port >= 0 {
			h.vars.set("ansible_port", int64(port))
		}
		for _, e := range vars {
			h.vars.set(e.k, e.v)
		}
	}
	return nil
}

// checkCycles rejects a group that is its own ancestor (Ansible refuses those too).
func (p *parser) checkCycles() error {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return &Error{File: p.file, Line: 0, Msg: fmt.Sprintf("group %q is its own ancestor through :children", name)}
		case 2:
			return nil
		}
		state[name] = 1
		for _, c := range p.inv.groups[name].children {
			if err := visit(c); err != nil {
				return err
			}
		}
		state[name] = 2
		return nil
	}
	for _, g := range p.inv.groupOrder {
		if err := visit(g); err != nil {
			return err
		}
	}
	return nil
}
