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
	groups []string        // groups the host is directly in, in order
	lost   map[string]bool // groups whose vars no longer apply (see groupsLostLeaving)
	line   int
}

type group struct {
	name     string
	hosts    []string
	members  map[string]bool // hosts, for O(1) membership
	children []string
	childSet map[string]bool // children, for O(1) membership
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
	g := &group{name: name, vars: newVarMap(), priority: 1, members: map[string]bool{}, childSet: map[string]bool{}}
	inv.groups[name] = g
	inv.groupOrder = append(inv.groupOrder, name)
	return g
}

func (inv *Inventory) addChild(parent, child string) {
	p, c := inv.groups[parent], inv.groups[child]
	if p.childSet[child] {
		return
	}
	p.childSet[child] = true
	p.children = append(p.children, child)
	c.parents = append(c.parents, parent)
}

func (inv *Inventory) hasChild(parent, child string) bool { return inv.groups[parent].childSet[child] }

// isAncestor reports whether group a is above group g through :children. Each group is
// visited once, so a diamond of groups costs its edges, not its paths.
func (inv *Inventory) isAncestor(a, g string) bool {
	seen := map[string]bool{}
	stack := append([]string(nil), inv.groups[g].parents...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == a {
			return true
		}
		if !seen[n] {
			seen[n] = true
			stack = append(stack, inv.groups[n].parents...)
		}
	}
	return false
}

// addHost adds a host to a group, creating it on its first appearance; created says whether
// this call made it.
func (inv *Inventory) addHost(name, groupName string, line int) (h *host, created bool) {
	h, ok := inv.hosts[name]
	if !ok {
		created = true
		h = &host{name: name, vars: newVarMap(), line: line}
		inv.hosts[name] = h
		inv.hostOrder = append(inv.hostOrder, name)
	}
	g := inv.groups[groupName]
	if g.members[name] {
		return h, created
	}
	g.members[name] = true
	g.hosts = append(g.hosts, name)
	h.groups = append(h.groups, groupName)
	return h, created
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
	// Ansible counts a host's groups with their ancestors, so when ungrouped itself sits under
	// another group, a host listed in ungrouped has a real group and leaves it too.
	underReal := len(remove(append([]string(nil), ungrouped.parents...), "all")) > 0
	var kept []string
	for _, hn := range ungrouped.hosts {
		if len(realGroups(inv.hosts[hn])) == 0 && !underReal {
			kept = append(kept, hn)
		} else {
			h := inv.hosts[hn]
			h.lost = inv.groupsLostLeaving(h, "ungrouped")
			h.groups = remove(h.groups, "ungrouped")
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
	inv.dropOrphans()
	inv.setDepths()
}

// dropOrphans takes hosts that ended in no group out of the host order. That happens only
// when ungrouped sits under another group and its hosts leave it; Ansible then leaves them
// out of all (and of --list) too, though it still knows them by name, as HasHost does here.
func (inv *Inventory) dropOrphans() {
	kept := inv.hostOrder[:0]
	for _, hn := range inv.hostOrder {
		if len(inv.hosts[hn].groups) > 0 {
			kept = append(kept, hn)
		}
	}
	inv.hostOrder = kept
}

// setDepths gives every group Ansible's depth: its longest :children distance from all
// (Ansible raises it edge by edge; the result is the same). Each group's depth is computed
// once from its parents' and remembered: walking every path from all instead takes 2^n
// steps for n levels of groups that share children.
func (inv *Inventory) setDepths() {
	done := make(map[string]bool, len(inv.groups))
	var depth func(g *group) int
	depth = func(g *group) int {
		if done[g.name] {
			return g.depth
		}
		done[g.name] = true // before the parents, so even a cycle would end
		d := 0
		for _, pn := range g.parents {
			if pd := depth(inv.groups[pn]) + 1; pd > d {
				d = pd
			}
		}
		g.depth = d
		return d
	}
	for _, name := range inv.groupOrder {
		depth(inv.groups[name])
	}
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

// hostGroups returns the groups whose vars apply to the host, in merge order: all, then its
// groups and their ancestors (less any it lost leaving ungrouped) by depth, priority, name.
func (inv *Inventory) hostGroups(h *host) []*group {
	var list []*group
	for _, g := range inv.ancestry(h) {
		if g.name == "all" || !h.lost[g.name] {
			list = append(list, g)
		}
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

// ancestry returns all, the host's groups and all their ancestors, each once.
func (inv *Inventory) ancestry(h *host) []*group {
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
	return list
}

// groupsLostLeaving mirrors Ansible's Host.remove_group, which runs when a host leaves
// ungrouped. Ansible's host keeps one flat list of its groups and their ancestors; it drops
// the group, then each ancestor of it (but all) that no group left in the list descends
// from, and so on up. A dropped group's vars no longer apply to the host, even when the
// host still reaches it through another group, or is directly in it.
func (inv *Inventory) groupsLostLeaving(h *host, gone string) map[string]bool {
	have := map[string]bool{}
	for _, g := range inv.ancestry(h) {
		have[g.name] = true
	}
	lost := map[string]bool{}
	var drop func(name string)
	drop = func(name string) {
		if !have[name] {
			return
		}
		delete(have, name)
		lost[name] = true
		for _, a := range inv.ancestors(name) {
			if a != "all" && !inv.isAncestorOfAny(a, have) {
				drop(a)
			}
		}
	}
	drop(gone)
	return lost
}

// ancestors returns every group above g, each once, sorted (the result does not depend on
// the order; sorting keeps it reproducible).
func (inv *Inventory) ancestors(g string) []string {
	seen := map[string]bool{}
	stack := append([]string(nil), inv.groups[g].parents...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !seen[n] {
			seen[n] = true
			stack = append(stack, inv.groups[n].parents...)
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (inv *Inventory) isAncestorOfAny(a string, groups map[string]bool) bool {
	for g := range groups {
		if inv.isAncestor(a, g) {
			return true
		}
	}
	return false
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
