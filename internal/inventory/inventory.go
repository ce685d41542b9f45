// Package inventory reads Ansible INI inventories with the same result as
// `ansible-inventory -i FILE --list` (ansible-core's ini plugin): groups, :vars, :children,
// host ranges, host:port, value typing and variable precedence.
//
// Where Ansible silently accepts nonsense (a range whose end is before its start expands to
// nothing), this package reports an error instead: an installer must not guess.
package inventory

import (
	"fmt"
	"os"
	"sort"
)

// Error is a problem at a line of an inventory file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Inventory is a parsed inventory.
type Inventory struct {
	file       string
	hosts      map[string]*host
	hostOrder  []string
	groups     map[string]*group
	groupOrder []string // creation order, as Ansible keeps it
}

type host struct {
	name   string
	vars   *varMap
	groups []string // groups the host is directly in, in order
	line   int
}

type group struct {
	name     string
	hosts    []string
	members  map[string]bool // hosts, for O(1) membership
	children []string
	parents  []string
	vars     *varMap
	priority int
	depth    int
}

// varMap keeps variables with the later assignment winning, like Ansible's set_variable.
type varMap struct{ m map[string]any }

func newVarMap() *varMap { return &varMap{m: map[string]any{}} }

func (v *varMap) set(k string, val any) { v.m[k] = val }

// ParseFile reads and parses an inventory file.
func ParseFile(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse parses inventory text; filename is used in errors.
func Parse(filename string, data []byte) (*Inventory, error) {
	inv := &Inventory{file: filename, hosts: map[string]*host{}, groups: map[string]*group{}}
	inv.addGroup("all")
	inv.addGroup("ungrouped")
	inv.addChild("all", "ungrouped")
	p := &parser{inv: inv, file: filename, pending: map[string]*pending{}}
	if err := p.parse(string(data)); err != nil {
		return nil, err
	}
	inv.reconcile()
	return inv, nil
}

func (inv *Inventory) addGroup(name string) *group {
	if g, ok := inv.groups[name]; ok {
		return g
	}
	g := &group{name: name, vars: newVarMap(), priority: 1, members: map[string]bool{}}
	inv.groups[name] = g
	inv.groupOrder = append(inv.groupOrder, name)
	return g
}

func (inv *Inventory) addChild(parent, child string) {
	p, c := inv.groups[parent], inv.groups[child]
	for _, existing := range p.children {
		if existing == child {
			return
		}
	}
	p.children = append(p.children, child)
	c.parents = append(c.parents, parent)
}

func (inv *Inventory) addHost(name, groupName string, line int) *host {
	h, ok := inv.hosts[name]
	if !ok {
		h = &host{name: name, vars: newVarMap(), line: line}
		inv.hosts[name] = h
		inv.hostOrder = append(inv.hostOrder, name)
	}
	g := inv.groups[groupName]
	if g.members[name] {
		return h
	}
	g.members[name] = true
	g.hosts = append(g.hosts, name)
	h.groups = append(h.groups, groupName)
	return h
}

// reconcile does what Ansible does after parsing: top-level groups become children of all,
// hosts in any real group leave ungrouped, and group depths are computed.
func (inv *Inventory) reconcile() {
	for _, name := range inv.groupOrder {
		g := inv.groups[name]
		if name != "all" && len(g.parents) == 0 {
			inv.addChild("all", name)
		}
	}
	// A host in no group but all (listed before any section, or only under [all]) is
	// ungrouped; a host in any other group is not.
	ungrouped := inv.groups["ungrouped"]
	inUngrouped := map[string]bool{}
	for _, hn := range ungrouped.hosts {
		inUngrouped[hn] = true
	}
	var kept []string
	for _, hn := range ungrouped.hosts {
		if len(realGroups(inv.hosts[hn])) == 0 {
			kept = append(kept, hn)
		} else {
			inv.hosts[hn].groups = remove(inv.hosts[hn].groups, "ungrouped")
			delete(ungrouped.members, hn)
		}
	}
	for _, hn := range inv.hostOrder {
		h := inv.hosts[hn]
		if !inUngrouped[hn] && len(realGroups(h)) == 0 {
			kept = append(kept, hn)
			h.groups = append(h.groups, "ungrouped")
			ungrouped.members[hn] = true
		}
	}
	ungrouped.hosts = kept
	inv.setDepth("all", 0, map[string]bool{})
}

// setDepth gives every group its longest distance from all (Ansible's group depth).
func (inv *Inventory) setDepth(name string, depth int, onPath map[string]bool) {
	g := inv.groups[name]
	if onPath[name] {
		return // a cycle; reported by the parser
	}
	if depth > g.depth {
		g.depth = depth
	}
	onPath[name] = true
	for _, c := range g.children {
		inv.setDepth(c, depth+1, onPath)
	}
	delete(onPath, name)
}

func realGroups(h *host) []string {
	var out []string
	for _, g := range h.groups {
		if g != "all" && g != "ungrouped" {
			out = append(out, g)
		}
	}
	return out
}

func remove(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Hosts returns every host in order of first appearance.
func (inv *Inventory) Hosts() []string { return append([]string(nil), inv.hostOrder...) }

// HasHost reports whether the inventory defines a host.
func (inv *Inventory) HasHost(name string) bool { _, ok := inv.hosts[name]; return ok }

// Groups returns every group name, all and ungrouped included, sorted.
func (inv *Inventory) Groups() []string {
	out := append([]string(nil), inv.groupOrder...)
	sort.Strings(out)
	return out
}

// HasGroup reports whether a group exists.
func (inv *Inventory) HasGroup(name string) bool { _, ok := inv.groups[name]; return ok }

// GroupHosts returns the hosts of a group and of its descendants, in order of first
// appearance; nil when there is no such group.
func (inv *Inventory) GroupHosts(name string) []string {
	if _, ok := inv.groups[name]; !ok {
		return nil
	}
	if name == "all" {
		return inv.Hosts()
	}
	in := map[string]bool{}
	inv.collectHosts(name, in, map[string]bool{})
	out := []string{}
	for _, h := range inv.hostOrder {
		if in[h] {
			out = append(out, h)
		}
	}
	return out
}

func (inv *Inventory) collectHosts(name string, in, seen map[string]bool) {
	if seen[name] {
		return
	}
	seen[name] = true
	g := inv.groups[name]
	for _, h := range g.hosts {
		in[h] = true
	}
	for _, c := range g.children {
		inv.collectHosts(c, in, seen)
	}
}

// GroupVars returns a group's own variables.
func (inv *Inventory) GroupVars(name string) map[string]any {
	g, ok := inv.groups[name]
	if !ok {
		return nil
	}
	return copyVars(g.vars.m)
}

// HostVars returns a host's variables merged as Ansible does: all, then groups by depth,
// priority (ansible_group_priority) and name, then the host's own, later winning.
func (inv *Inventory) HostVars(name string) map[string]any {
	h, ok := inv.hosts[name]
	if !ok {
		return nil
	}
	out := map[string]any{}
	for _, g := range inv.hostGroups(h) {
		for k, v := range g.vars.m {
			out[k] = v
		}
	}
	for k, v := range h.vars.m {
		out[k] = v
	}
	return out
}

// hostGroups returns the host's groups and all their ancestors, in merge order.
func (inv *Inventory) hostGroups(h *host) []*group {
	seen := map[string]bool{}
	var list []*group
	var walk func(name string)
	walk = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		g := inv.groups[name]
		list = append(list, g)
		for _, p := range g.parents {
			walk(p)
		}
	}
	walk("all")
	for _, gn := range h.groups {
		walk(gn)
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.depth != b.depth {
			return a.depth < b.depth
		}
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		return a.name < b.name
	})
	return list
}

// Position returns where a host was first defined.
func (inv *Inventory) Position(name string) (string, int) {
	if h, ok := inv.hosts[name]; ok {
		return inv.file, h.line
	}
	return inv.file, 0
}

func copyVars(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
