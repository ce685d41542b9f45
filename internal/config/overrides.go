package config

// Inventory overrides: [all:vars] variables named like a common.yaml key replace that key.
// Keys and setters come from Config's yaml tags by reflection, so the struct stays the one
// list of keys; a second hand-kept list drifted once and silently ignored overrides.
//
// Values arrive typed as internal/inventory types them (Ansible's literal_eval): string,
// int64, float64, bool, nil, []any or map[string]any. What each Go type accepts:
//
//	string        a string only (kube_version=1.34 is a float: an error, not "1.34")
//	int           a whole number, or a string holding one ("6443")
//	bool          true/false, or a string or 0/1 that Ansible's bool filter reads as one
//	              (yes/no, on/off, true/false, y/n, t/f, 1/0, any case)
//	[]T           a list; or a string holding a YAML/JSON/Python list literal ("[a, b]");
//	              for a list of strings also a plain comma-separated string ("a, b"),
//	              "" being the empty list
//	map[string]T  a dict, or a string holding a YAML/JSON/Python dict literal; it replaces
//	              the whole map, as an Ansible variable replaces a dict
//	struct        a dict of its keys, or a string holding one; only the keys given change,
//	              as in common.yaml, where unset keys keep their defaults
//
// Strings holding literals are accepted because Ansible turns a templated "['a']" back into a
// list, and [1.1.1.1] (unquoted IPs are no Python literal) reaches us as a string. Splitting
// a plain string on commas is unambiguous for today's lists (IP addresses, mirror URLs, which
// have no commas); an item that needs a comma must be written as a list.

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"
	"gopkg.in/yaml.v3"
)

// field is one key of a struct decoded from YAML.
type field struct {
	key     string
	index   []int  // for reflect.Value.FieldByIndex
	example string // the example tag, shown when a value has the wrong shape
}

// fields lists Config's top-level keys in struct order.
func fields() []field { return structFields(reflect.TypeFor[Config]()) }

// structFields lists t's keys as yaml.v3 names them.
func structFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if key, ok := yamlKey(f); ok {
			out = append(out, field{key, f.Index, f.Tag.Get("example")})
		}
	}
	return out
}

// yamlKey returns the key yaml.v3 decodes into f (the tag's name, else the lowercased field
// name); ok is false for fields yaml.v3 skips.
func yamlKey(f reflect.StructField) (key string, ok bool) {
	tag := f.Tag.Get("yaml")
	if !f.IsExported() || tag == "-" {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	for _, o := range strings.Split(opts, ",") {
		if o == "inline" {
			// yaml.v3 would flatten its keys into the parent; nothing here needs that yet.
			panic("config: yaml inline field " + f.Name + " is not supported by inventory overrides")
		}
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, true
}

func keysOf(fs []field) []string {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return keys
}

// Keys lists every top-level key of common.yaml.
func Keys() []string {
	keys := keysOf(fields())
	sort.Strings(keys)
	return keys
}

// ApplyOverrides sets keys given as Ansible variables (the inventory's all vars), which win
// over common.yaml as -e / group vars would. Unrelated variables are ignored.
func (c *Config) ApplyOverrides(vars map[string]any, source string) error {
	var errs *multierror.Error
	root := reflect.ValueOf(c).Elem()
	for _, f := range fields() {
		v, ok := vars[f.key]
		if !ok {
			continue
		}
		if err := assign(root.FieldByIndex(f.index), v, f.key, f.example); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", source, err))
		}
	}
	if errs != nil {
		errs.ErrorFormat = listFormat
		return errs
	}
	return c.Validate(source)
}

// assign converts the inventory value v into dst; path names it in errors (kube_version,
// loadbalancer_apiserver.port, upstream_dns_servers[1]).
func assign(dst reflect.Value, v any, path, example string) error {
	switch dst.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return wrongType(path, dst.Type(), example, v)
		}
		dst.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := toInt(v)
		if err != nil || dst.OverflowInt(n) {
			return wrongType(path, dst.Type(), example, v)
		}
		dst.SetInt(n)
	case reflect.Bool:
		b, ok := toBool(v)
		if !ok {
			return wrongType(path, dst.Type(), example, v)
		}
		dst.SetBool(b)
	case reflect.Slice:
		return assignList(dst, v, path, example)
	case reflect.Map:
		return assignDict(dst, v, path, example)
	case reflect.Struct:
		return assignStruct(dst, v, path, example)
	default:
		// A Config field of a type added without teaching assign about it; the round-trip
		// test over every field catches this before an operator does.
		return fmt.Errorf("%s: Go type %s cannot be set from the inventory", path, dst.Type())
	}
	return nil
}

func assignList(dst reflect.Value, v any, path, example string) error {
	v, err := literal(v, "[")
	if err != nil {
		return fmt.Errorf("%w (%v)", wrongType(path, dst.Type(), example, v), err)
	}
	if s, ok := v.(string); ok && dst.Type().Elem().Kind() == reflect.String {
		if v, err = splitCommas(s); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	items, ok := v.([]any)
	if !ok {
		return wrongType(path, dst.Type(), example, v)
	}
	// Built aside and set at the end, so a bad item leaves the old list in place.
	out := reflect.MakeSlice(dst.Type(), len(items), len(items))
	for i, x := range items {
		if err := assign(out.Index(i), x, fmt.Sprintf("%s[%d]", path, i), ""); err != nil {
			return err
		}
	}
	dst.Set(out)
	return nil
}

func assignDict(dst reflect.Value, v any, path, example string) error {
	t := dst.Type()
	if t.Key().Kind() != reflect.String {
		return fmt.Errorf("%s: Go type %s cannot be set from the inventory", path, t)
	}
	m, err := dict(v, path, t, example)
	if err != nil {
		return err
	}
	out := reflect.MakeMapWithSize(t, len(m))
	for _, k := range sortedKeys(m) {
		elem := reflect.New(t.Elem()).Elem()
		if err := assign(elem, m[k], path+"."+k, ""); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), elem)
	}
	dst.Set(out)
	return nil
}

func assignStruct(dst reflect.Value, v any, path, example string) error {
	m, err := dict(v, path, dst.Type(), example)
	if err != nil {
		return err
	}
	sub := structFields(dst.Type())
	for _, k := range sortedKeys(m) {
		f, ok := lookup(sub, k)
		if !ok {
			return fmt.Errorf("%s has no key %q (%s)", path, k, strings.Join(keysOf(sub), ", "))
		}
		if err := assign(dst.FieldByIndex(f.index), m[k], path+"."+k, f.example); err != nil {
			return err
		}
	}
	return nil
}

// dict returns v as a dict, decoding a string that holds a dict literal.
func dict(v any, path string, t reflect.Type, example string) (map[string]any, error) {
	v, err := literal(v, "{")
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", wrongType(path, t, example, v), err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, wrongType(path, t, example, v)
	}
	return m, nil
}

func lookup(fs []field, key string) (field, bool) {
	for _, f := range fs {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// sortedKeys orders a dict's keys so the first error reported does not vary between runs.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// literal decodes a string starting with open ("[" or "{") as YAML flow text, which reads
// JSON and Python's ['a', 'b'] / {'k': 'v'} alike; anything else is returned unchanged.
func literal(v any, open string) (any, error) {
	s, ok := v.(string)
	if !ok || !strings.HasPrefix(strings.TrimSpace(s), open) {
		return v, nil
	}
	var out any
	if err := yaml.Unmarshal([]byte(s), &out); err != nil {
		return v, err
	}
	return out, nil
}

// splitCommas reads "a, b" as a list of strings. An empty item ("a,,b", "a,") is an error
// rather than dropped: it is more likely a typo than intent.
func splitCommas(s string) ([]any, error) {
	if strings.TrimSpace(s) == "" {
		return []any{}, nil
	}
	parts := strings.Split(s, ",")
	items := make([]any, len(parts))
	for i, p := range parts {
		if p = strings.TrimSpace(p); p == "" {
			return nil, fmt.Errorf("empty item in comma-separated list %q", s)
		}
		items[i] = p
	}
	return items, nil
}

// wrongType says what path needs, e.g. "upstream_dns_servers must be a list of strings, got 5".
func wrongType(path string, t reflect.Type, example string, v any) error {
	want := "a " + noun(t, false)
	if example != "" {
		want += " like " + example
	}
	return fmt.Errorf("%s must be %s, got %v", path, want, v)
}

// noun names a Go type in an operator's words: "whole number", "list of strings".
func noun(t reflect.Type, plural bool) string {
	head, tail := t.String(), ""
	switch t.Kind() {
	case reflect.String:
		head = "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		head = "whole number"
	case reflect.Bool:
		head = "boolean"
	case reflect.Slice:
		head, tail = "list", " of "+noun(t.Elem(), true)
	case reflect.Map:
		head, tail = "dict", " of "+noun(t.Elem(), true)
	case reflect.Struct:
		head = "dict"
	}
	if plural {
		head += "s"
	}
	return head + tail
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int: // yaml.v3's type, from a string holding a literal
		return int64(x), nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("not a number")
}

// toBool reads v as Ansible's bool filter does (module_utils.parsing.convert_bool), since an
// INI true (lowercase) is no Python literal and arrives as the string "true".
func toBool(v any) (b, ok bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int64:
		return x == 1, x == 0 || x == 1
	case int:
		return x == 1, x == 0 || x == 1
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "y", "yes", "on", "1", "true", "t":
			return true, true
		case "n", "no", "off", "0", "false", "f":
			return false, true
		}
	}
	return false, false
}
