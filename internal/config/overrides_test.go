package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/kinstall/kinstall/internal/inventory"
	"gopkg.in/yaml.v3"
)

const varsSource = "hosts.ini [all:vars]"

// yamlTopKeys is the key list as yaml.v3 itself sees Config, independent of fields().
func yamlTopKeys(t *testing.T) []string {
	t.Helper()
	data, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return sortedKeys(m)
}

func TestKeysAreExactlyTheStructKeys(t *testing.T) {
	want := yamlTopKeys(t)
	if got := Keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Keys() = %v\nyaml.v3 keys = %v", got, want)
	}
	_, err := Parse("c.yaml", []byte("no_such_key: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "(known keys: "+strings.Join(want, ", ")+")") {
		t.Fatalf("err = %v, want every key listed", err)
	}
	for _, k := range []string{"containerd_registry_mirrors", "upstream_dns_servers"} { // the keys that once drifted
		if !strings.Contains(err.Error(), k) {
			t.Errorf("known keys leave out %s: %v", k, err)
		}
	}
}

// validSamples holds non-default values for keys whose validation rejects generated ones.
var validSamples = map[string]any{
	"loadbalancer_apiserver":      map[string]any{"address": "10.0.0.9", "port": int64(8443)},
	"loadbalancer_apiserver_mode": LBLocalProxy,
	"kube_version":                "v1.35.1",
	"etcd_version":                "v3.6.99",
	"flannel_version":             "v0.29.0",
	"kube_pods_subnet":            "10.1.0.0/16",
	"kube_service_addresses":      "10.2.0.0/16",
	"container_manager":           "containerd",
	"kube_network_plugin":         "flannel",
	"upstream_dns_servers":        []any{"192.0.2.1", "192.0.2.2"},
	"containerd_registry_mirrors": map[string]any{
		"docker.io":       []any{"https://m1.example", "https://m2.example"},
		"registry.k8s.io": []any{"http://m3.example"},
	},
	"files_repo":      "http://10.0.0.5:8080/files",
	"files_checksums": ChecksumsMirror,
	"files_sha256":    map[string]any{"flannel-v0.28.10-linux-amd64.tar.gz": strings.Repeat("ab", 32)},
	"kube_image_repo": "10.0.0.5:5000/k8s",
	"verify_image":    "10.0.0.5:5000/kinstall/probe:v2",
	"containerd_registry_auth": []any{
		map[string]any{"registry": "10.0.0.5:5000", "username": "u", "password": "p"},
		map[string]any{"registry": "registry.example.com", "auth": "tok"},
	},
}

// onlyValueIsDefault: keys whose one valid value is the default, so a round trip cannot show
// a change.
var onlyValueIsDefault = map[string]bool{"container_manager": true, "kube_network_plugin": true}

// sample generates a non-default value for t, typed as internal/inventory types values, so a
// field added to Config is covered without touching this test (unless validation needs a
// validSamples entry, which the test then asks for).
func sample(t *testing.T, typ reflect.Type) any {
	switch typ.Kind() {
	case reflect.String:
		return "sample"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int64(7)
	case reflect.Bool:
		return true
	case reflect.Slice:
		return []any{sample(t, typ.Elem()), sample(t, typ.Elem())}
	case reflect.Map:
		return map[string]any{"sample": sample(t, typ.Elem())}
	case reflect.Struct:
		m := map[string]any{}
		for _, f := range structFields(typ) {
			m[f.key] = sample(t, typ.FieldByIndex(f.index).Type)
		}
		return m
	}
	t.Fatalf("no sample for Go type %s: teach sample() and assign() about it", typ)
	return nil
}

// pyLiteral writes v as an Ansible INI value, the form operators type into [all:vars].
func pyLiteral(v any) string {
	switch x := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(x) + "'"
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return map[bool]string{true: "True", false: "False"}[x]
	case []any:
		items := make([]string, len(x))
		for i, e := range x {
			items[i] = pyLiteral(e)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case map[string]any:
		var items []string
		for _, k := range sortedKeys(x) {
			items = append(items, pyLiteral(k)+": "+pyLiteral(x[k]))
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	panic("pyLiteral: " + reflect.TypeOf(v).String())
}

func loadYAML(t *testing.T, text string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "common.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func overrideINI(t *testing.T, varsLines string) (*Config, error) {
	t.Helper()
	inv, err := inventory.Parse("hosts.ini", []byte("[all:vars]\n"+varsLines+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	return c, c.ApplyOverrides(inv.GroupVars("all"), varsSource)
}

// TestEveryKeyRoundTrips: each key set in common.yaml, in a vars map and in an INI
// [all:vars] line gives the same Config, and one that differs from the defaults.
func TestEveryKeyRoundTrips(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for _, f := range fields() {
		t.Run(f.key, func(t *testing.T) {
			v, ok := validSamples[f.key]
			if !ok {
				v = sample(t, typ.FieldByIndex(f.index).Type)
			}
			text, err := yaml.Marshal(map[string]any{f.key: v})
			if err != nil {
				t.Fatal(err)
			}
			fromYAML, err := loadYAML(t, string(text))
			if err != nil {
				t.Fatalf("common.yaml %s: %v (add a valid value to validSamples)", text, err)
			}
			fromVars := Default()
			if err := fromVars.ApplyOverrides(map[string]any{f.key: v}, varsSource); err != nil {
				t.Fatalf("vars %v: %v", v, err)
			}
			line := f.key + "=" + pyLiteral(v)
			fromINI, err := overrideINI(t, line)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if !reflect.DeepEqual(fromYAML, fromVars) || !reflect.DeepEqual(fromYAML, fromINI) {
				t.Errorf("common.yaml: %+v\nvars:        %+v\nINI:         %+v", fromYAML, fromVars, fromINI)
			}
			got := reflect.ValueOf(fromVars).Elem().FieldByIndex(f.index).Interface()
			def := reflect.ValueOf(Default()).Elem().FieldByIndex(f.index).Interface()
			if reflect.DeepEqual(got, def) && !onlyValueIsDefault[f.key] {
				t.Errorf("%s = %v is still the default: the value was not applied", f.key, got)
			}
		})
	}
	for k := range validSamples {
		if _, ok := lookup(fields(), k); !ok {
			t.Errorf("validSamples has %s, which is no key of Config", k)
		}
	}
}

func TestUpstreamDNSServersFromVars(t *testing.T) {
	want := []string{"1.1.1.1", "8.8.8.8"}
	for _, line := range []string{
		`upstream_dns_servers=['1.1.1.1', '8.8.8.8']`,                             // a Python list: typed by the inventory
		`upstream_dns_servers="['1.1.1.1','8.8.8.8']"`,                            // quoted: a string holding the list
		`upstream_dns_servers=["1.1.1.1", "8.8.8.8"]`,                             // JSON
		`upstream_dns_servers=[1.1.1.1, 8.8.8.8]`,                                 // unquoted IPs: no Python literal, read as YAML
		`upstream_dns_servers=1.1.1.1,8.8.8.8`,                                    // comma-separated
		`upstream_dns_servers=" 1.1.1.1 , 8.8.8.8 "`,                              // blanks around items are dropped
		"upstream_dns_servers=['9.9.9.9']\nupstream_dns_servers=1.1.1.1, 8.8.8.8", // the later one wins
	} {
		c, err := overrideINI(t, line)
		if err != nil {
			t.Errorf("%s: %v", line, err)
		} else if !reflect.DeepEqual(c.UpstreamDNSServers, want) {
			t.Errorf("%s: got %q, want %q", line, c.UpstreamDNSServers, want)
		}
	}
	c, err := overrideINI(t, "upstream_dns_servers=1.1.1.1")
	if err != nil || !reflect.DeepEqual(c.UpstreamDNSServers, []string{"1.1.1.1"}) {
		t.Errorf("one server: %q, %v", c.UpstreamDNSServers, err)
	}
	// An empty value empties a list set in common.yaml: back to the nodes' own nameservers.
	c, err = loadYAML(t, "upstream_dns_servers: [192.0.2.1]\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyOverrides(map[string]any{"upstream_dns_servers": ""}, varsSource); err != nil || len(c.UpstreamDNSServers) != 0 {
		t.Errorf("empty: %q, %v", c.UpstreamDNSServers, err)
	}
}

func TestContainerdRegistryMirrorsFromVars(t *testing.T) {
	want := map[string][]string{"docker.io": {"https://a.example", "https://b.example"}, "quay.io": {"http://c.example"}}
	for _, line := range []string{
		`containerd_registry_mirrors={'docker.io': ['https://a.example', 'https://b.example'], 'quay.io': ['http://c.example']}`,
		`containerd_registry_mirrors="{'docker.io': ['https://a.example', 'https://b.example'], 'quay.io': ['http://c.example']}"`,
		`containerd_registry_mirrors={"docker.io": ["https://a.example", "https://b.example"], "quay.io": ["http://c.example"]}`,
		`containerd_registry_mirrors={docker.io: [https://a.example, https://b.example], quay.io: [http://c.example]}`,
		`containerd_registry_mirrors={'docker.io': 'https://a.example, https://b.example', 'quay.io': 'http://c.example'}`,
	} {
		c, err := overrideINI(t, line)
		if err != nil {
			t.Errorf("%s: %v", line, err)
		} else if !reflect.DeepEqual(c.ContainerdRegistryMirrors, want) {
			t.Errorf("%s: got %q, want %q", line, c.ContainerdRegistryMirrors, want)
		}
	}
	// The override replaces common.yaml's map as a whole, as an Ansible variable would.
	c, err := loadYAML(t, "containerd_registry_mirrors:\n  docker.io: [https://old.example]\n  ghcr.io: [https://g.example]\n")
	if err != nil {
		t.Fatal(err)
	}
	err = c.ApplyOverrides(map[string]any{"containerd_registry_mirrors": map[string]any{"docker.io": []any{"https://new.example"}}}, varsSource)
	if err != nil || !reflect.DeepEqual(c.ContainerdRegistryMirrors, map[string][]string{"docker.io": {"https://new.example"}}) {
		t.Errorf("replace: %q, %v", c.ContainerdRegistryMirrors, err)
	}
}

// A dict for loadbalancer_apiserver changes only the keys it names, as common.yaml does.
func TestNestedOverrideKeepsOtherKeys(t *testing.T) {
	c, err := loadYAML(t, "loadbalancer_apiserver:\n  address: 10.0.0.10\n  port: 9443\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyOverrides(map[string]any{"loadbalancer_apiserver": map[string]any{"port": "8443"}}, varsSource); err != nil {
		t.Fatal(err)
	}
	if c.LoadBalancerAPIServer != (LoadBalancer{Address: "10.0.0.10", Port: 8443}) {
		t.Errorf("%+v", c.LoadBalancerAPIServer)
	}
}

func TestOverrideErrors(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]any
		want string
	}{
		{"list given a number", map[string]any{"upstream_dns_servers": int64(5)}, "upstream_dns_servers must be a list of strings, got 5"},
		{"list item not a string", map[string]any{"upstream_dns_servers": []any{"1.1.1.1", int64(5)}}, "upstream_dns_servers[1] must be a string, got 5"},
		{"empty comma item", map[string]any{"upstream_dns_servers": "1.1.1.1,,8.8.8.8"}, `upstream_dns_servers: empty item in comma-separated list "1.1.1.1,,8.8.8.8"`},
		{"broken list literal", map[string]any{"upstream_dns_servers": "[1.1.1.1"}, "upstream_dns_servers must be a list of strings, got [1.1.1.1 (yaml: "},
		{"validation still runs", map[string]any{"upstream_dns_servers": "127.0.0.1"}, `upstream_dns_servers: "127.0.0.1" is not a non-loopback IP address`},
		{"dict given a string", map[string]any{"containerd_registry_mirrors": "docker.io=https://m"},
			"containerd_registry_mirrors must be a dict of lists of strings like {'docker.io': ['https://mirror.example.com']}, got docker.io=https://m"},
		{"dict value not a list", map[string]any{"containerd_registry_mirrors": map[string]any{"docker.io": int64(5)}},
			"containerd_registry_mirrors.docker.io must be a list of strings, got 5"},
		{"mirror validation", map[string]any{"containerd_registry_mirrors": map[string]any{"docker.io": []any{"mirror.example"}}},
			`containerd_registry_mirrors.docker.io: mirror "mirror.example" must start with https:// or http://`},
		{"struct given a string", map[string]any{"loadbalancer_apiserver": "10.0.0.1"},
			"loadbalancer_apiserver must be a dict like {'address': '10.0.0.10', 'port': 6443}, got 10.0.0.1"},
		{"struct unknown key", map[string]any{"loadbalancer_apiserver": map[string]any{"adress": "10.0.0.1"}}, `loadbalancer_apiserver has no key "adress" (address, port)`},
		{"struct port", map[string]any{"loadbalancer_apiserver": map[string]any{"port": "high"}}, "loadbalancer_apiserver.port must be a whole number"},
		{"struct address", map[string]any{"loadbalancer_apiserver": map[string]any{"address": int64(1)}}, "loadbalancer_apiserver.address must be a string"},
		{"port", map[string]any{"kube_apiserver_port": "high"}, "kube_apiserver_port must be a whole number, got high"},
		{"float for a string", map[string]any{"kube_version": 1.34}, "kube_version must be a string, got 1.34"},
		{"every error reported", map[string]any{"kube_version": int64(1), "etcd_version": int64(2)},
			varsSource + ": kube_version must be a string, got 1\n" + varsSource + ": etcd_version must be a string, got 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Default().ApplyOverrides(tt.vars, varsSource)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), varsSource+": ") {
				t.Errorf("err = %v, want it to name %s", err, varsSource)
			}
		})
	}
}

// Config has no bool or small int field yet; a probe struct checks assign handles them
// before one is added.
func TestAssignKinds(t *testing.T) {
	type probe struct {
		On    bool    `yaml:"on"`
		Small int8    `yaml:"small"`
		Ratio float64 `yaml:"ratio"`
	}
	set := func(v any) (probe, error) {
		var p probe
		err := assign(reflect.ValueOf(&p).Elem(), v, "probe", "")
		return p, err
	}
	for _, v := range []any{true, "yes", "True", "on", "1", int64(1), "t", "Y"} {
		if p, err := set(map[string]any{"on": v}); err != nil || !p.On {
			t.Errorf("on=%v: %+v, %v", v, p, err)
		}
	}
	for _, v := range []any{false, "no", "FALSE", "off", "0", int64(0), "f", "n"} {
		p := probe{On: true}
		if err := assign(reflect.ValueOf(&p).Elem(), map[string]any{"on": v}, "probe", ""); err != nil || p.On {
			t.Errorf("on=%v: %+v, %v", v, p, err)
		}
	}
	for v, want := range map[any]string{
		"maybe":                "probe.on must be a boolean, got maybe",
		int64(2):               "probe.on must be a boolean, got 2",
		"{'small': 300}":       "probe.small must be a whole number, got 300",
		"{'ratio': 0.5}":       "probe.ratio: Go type float64 cannot be set from the inventory",
		"{'on': true, 'x': 1}": `probe has no key "x" (on, small, ratio)`,
	} {
		vars := v
		if s, ok := v.(string); !ok || !strings.HasPrefix(s, "{") {
			vars = map[string]any{"on": v}
		}
		if _, err := set(vars); err == nil || err.Error() != want {
			t.Errorf("%v: err = %v, want %q", v, err, want)
		}
	}
}
