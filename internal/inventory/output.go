package inventory

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// List returns the inventory as `ansible-inventory --list` prints it: the same structure,
// values and formatting (Python's json.dumps with indent=4 and sorted keys).
func (inv *Inventory) List() ([]byte, error) {
	hostvars := map[string]any{}
	for _, h := range inv.hostOrder {
		if vars := inv.HostVars(h); len(vars) > 0 {
			hostvars[h] = vars
		}
	}
	out := map[string]any{"_meta": map[string]any{"hostvars": hostvars}}
	seen := map[string]bool{}
	inv.listGroup("all", out, seen)
	var b bytes.Buffer
	if err := writePyJSON(&b, out, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// listGroup adds a group and its descendants; empty keys and empty groups are left out,
// as Ansible does.
func (inv *Inventory) listGroup(name string, out map[string]any, seen map[string]bool) {
	g := inv.groups[name]
	entry := map[string]any{}
	if name != "all" && len(g.hosts) > 0 {
		entry["hosts"] = toAny(g.hosts)
	}
	if len(g.children) > 0 {
		entry["children"] = toAny(g.children)
	}
	for _, c := range g.children {
		if !seen[c] {
			seen[c] = true
			inv.listGroup(c, out, seen)
		}
	}
	if len(entry) > 0 {
		out[name] = entry
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// Graph returns the group tree like `ansible-inventory --graph`.
func (inv *Inventory) Graph() string {
	var b strings.Builder
	inv.graphGroup(&b, "all", 0)
	return b.String()
}

func (inv *Inventory) graphGroup(b *strings.Builder, name string, depth int) {
	g := inv.groups[name]
	b.WriteString(graphName("@"+name+":", depth) + "\n")
	for _, c := range g.children {
		inv.graphGroup(b, c, depth+1)
	}
	if name == "all" {
		return
	}
	for _, h := range g.hosts {
		b.WriteString(graphName(h, depth+1) + "\n")
	}
}

func graphName(name string, depth int) string {
	if depth == 0 {
		return name
	}
	return strings.Repeat("  |", depth) + "--" + name
}

// HostJSON returns one host's merged variables like `ansible-inventory --host NAME`.
func (inv *Inventory) HostJSON(name string) ([]byte, error) {
	if !inv.HasHost(name) {
		return nil, fmt.Errorf("%s: no host %q", inv.file, name)
	}
	var b bytes.Buffer
	err := writePyJSON(&b, inv.HostVars(name), 0)
	return b.Bytes(), err
}

// writePyJSON writes v as Python's json.dumps(v, indent=4, sort_keys=True, ensure_ascii=False).
func writePyJSON(b *bytes.Buffer, v any, depth int) error {
	pad := strings.Repeat("    ", depth+1)
	end := strings.Repeat("    ", depth)
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		b.WriteString(pyFloat(x))
	case string:
		writePyString(b, x)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteString("[\n")
		for i, e := range x {
			b.WriteString(pad)
			if err := writePyJSON(b, e, depth+1); err != nil {
				return err
			}
			if i < len(x)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(end + "]")
	case map[string]any:
		if len(x) == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{\n")
		for i, k := range keys {
			b.WriteString(pad)
			writePyString(b, k)
			b.WriteString(": ")
			if err := writePyJSON(b, x[k], depth+1); err != nil {
				return err
			}
			if i < len(keys)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(end + "}")
	default:
		return fmt.Errorf("cannot write %T as JSON", v)
	}
	return nil
}

// writePyString escapes like Python's json with ensure_ascii=False.
func writePyString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
