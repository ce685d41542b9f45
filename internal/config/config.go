// Package config reads conf/common.yaml: the cluster-wide settings (load balancer, versions,
// network). Unknown keys and wrong types are errors naming file:line, so a typo never silently
// falls back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/go-multierror"
	"gopkg.in/yaml.v3"
)

// Load balancer modes.
const (
	LBExternal   = "external"    // the operator's own L4 load balancer at loadbalancer_apiserver
	LBVIP        = "vip"         // keepalived VIP + HAProxy on the masters
	LBLocalProxy = "local-proxy" // HAProxy on 127.0.0.1 of every non-master node
	LBNone       = "none"        // nothing configured: clients use the first master directly (one master only)
)

// LoadBalancer is loadbalancer_apiserver.
type LoadBalancer struct {
	Address string `yaml:"address"`
	Port    int    `yaml:"port"`
}

// Config is common.yaml. Field tags are the keys operators write; the names follow
// Kubespray/KubeSphere where one exists. This struct is the only list of keys: the inventory
// overrides and the "known keys" message are derived from it (overrides.go), so a field added
// here is overridable from [all:vars] with nothing else to update. An example tag is shown when
// an override has the wrong shape, for keys whose shape a type name does not make obvious.
type Config struct {
	LoadBalancerAPIServer           LoadBalancer `yaml:"loadbalancer_apiserver" example:"{'address': '10.0.0.10', 'port': 6443}"`
	LoadBalancerMode                string       `yaml:"loadbalancer_apiserver_mode"`
	KeepalivedRouterID              int          `yaml:"keepalived_virtual_router_id"`
	APIServerLoadBalancerDomainName string       `yaml:"apiserver_loadbalancer_domain_name"`
	APIServerPort                   int          `yaml:"kube_apiserver_port"`
	KubeVersion                     string       `yaml:"kube_version"`
	EtcdVersion                     string       `yaml:"etcd_version"`
	ContainerManager                string       `yaml:"container_manager"`
	KubePodsSubnet                  string       `yaml:"kube_pods_subnet"`
	KubeServiceAddresses            string       `yaml:"kube_service_addresses"`
	DNSDomain                       string       `yaml:"dns_domain"`
	KubeNetworkPlugin               string       `yaml:"kube_network_plugin"`
	ClusterName                     string       `yaml:"cluster_name"`
	// registry -> mirror URLs, tried in order before the registry itself.
	ContainerdRegistryMirrors map[string][]string `yaml:"containerd_registry_mirrors" example:"{'docker.io': ['https://mirror.example.com']}"`
	// DNS servers CoreDNS forwards to; empty: the nodes' own non-loopback nameservers.
	UpstreamDNSServers []string `yaml:"upstream_dns_servers"`
	FlannelVersion     string   `yaml:"flannel_version"`

	// Where artifacts come from (Kubespray's names). files_repo is a file mirror holding the
	// upstream paths below its base: https://dl.k8s.io/release/... is fetched from
	// FILES_REPO/dl.k8s.io/release/... Empty: the upstream hosts.
	FilesRepo string `yaml:"files_repo"`
	// pinned: every file must match kinstall's sha256 pins (or files_sha256); mirror: trust the
	// .sha256 file next to each file on files_repo (a mirror of your own builds).
	FilesChecksums string `yaml:"files_checksums"`
	// file name (as downloaded, e.g. flannel-v0.28.10-linux-amd64.tar.gz) -> sha256 the operator
	// vouches for: a version kinstall has no pin for.
	FilesSHA256 map[string]string `yaml:"files_sha256" example:"{'flannel-v0.28.10-linux-amd64.tar.gz': '<64 hex>'}"`
	// Image repository prefix of the Kubernetes images (kubeadm's imageRepository, the pause
	// image): registry.k8s.io, or a private registry/mirror such as 10.0.0.5:5000/k8s.
	KubeImageRepo string `yaml:"kube_image_repo"`
	// Credentials and TLS trust per registry host (stored 0600 on the hosts, never logged).
	ContainerdRegistryAuth []RegistryAuth `yaml:"containerd_registry_auth"`
	// Image verify runs on every node (an HTTP server and client in one binary).
	VerifyImage string `yaml:"verify_image"`
}

// RegistryAuth is one entry of containerd_registry_auth.
type RegistryAuth struct {
	Registry string `yaml:"registry"` // host or host:port
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Auth     string `yaml:"auth"`    // a bearer/identity token instead of username/password
	CAFile   string `yaml:"ca_file"` // PEM on the taskbox: the registry's CA (private TLS)
}

// Files checksum policies.
const (
	ChecksumsPinned = "pinned"
	ChecksumsMirror = "mirror"
)

// ImageRepo is kube_image_repo without a trailing slash.
func (c *Config) ImageRepo() string { return strings.TrimRight(c.KubeImageRepo, "/") }

// RegistryHost is the registry part of an image repository ("registry.k8s.io" of
// "registry.k8s.io/x", "10.0.0.5:5000" of "10.0.0.5:5000/k8s").
func RegistryHost(repo string) string {
	host, _, _ := strings.Cut(repo, "/")
	return host
}

// Default returns the defaults documented in conf/common.yaml.
func Default() *Config {
	return &Config{
		LoadBalancerAPIServer:           LoadBalancer{Port: 6443},
		APIServerLoadBalancerDomainName: "lb.kubesphere.local",
		APIServerPort:                   6443,
		KubeVersion:                     "v1.34.4",
		EtcdVersion:                     "v3.6.14",
		ContainerManager:                "containerd",
		KubePodsSubnet:                  "10.233.64.0/18",
		KubeServiceAddresses:            "10.233.0.0/18",
		DNSDomain:                       "cluster.local",
		KubeNetworkPlugin:               "flannel",
		ClusterName:                     "cluster.local",
		FlannelVersion:                  "v0.28.10",
		FilesChecksums:                  ChecksumsPinned,
		KubeImageRepo:                   "registry.k8s.io",
		VerifyImage:                     "kinstall.local/probe:v1",
	}
}

// Load reads and validates a common.yaml.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates common.yaml text over the defaults.
func Parse(filename string, data []byte) (*Config, error) {
	c := Default()
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return nil, yamlError(filename, err)
		}
	}
	if err := c.Validate(filename); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns yaml.v3's messages into "file:line: what to change".
func yamlError(filename string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs *multierror.Error
		for _, e := range te.Errors {
			errs = multierror.Append(errs, lineError(filename, e))
		}
		errs.ErrorFormat = listFormat
		return errs
	}
	return lineError(filename, err.Error())
}

func lineError(filename, msg string) error {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		text := m[2]
		if strings.Contains(text, "not found in type") {
			field := strings.Fields(text)[1]
			text = fmt.Sprintf("unknown key %s (known keys: %s)", field, strings.Join(Keys(), ", "))
		} else if strings.Contains(text, "cannot unmarshal") {
			text = "wrong type: " + text
		}
		return fmt.Errorf("%s:%s: %s", filename, m[1], text)
	}
	return fmt.Errorf("%s: %s", filename, msg)
}

func listFormat(errs []error) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

var versionRe = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)

// Validate checks values; source names where they came from.
func (c *Config) Validate(source string) error {
	var errs *multierror.Error
	bad := func(format string, args ...any) {
		errs = multierror.Append(errs, fmt.Errorf("%s: "+format, append([]any{source}, args...)...))
	}
	switch c.LoadBalancerMode {
	case "", LBExternal, LBVIP, LBLocalProxy:
	default:
		bad("loadbalancer_apiserver_mode %q: use %s, %s or %s", c.LoadBalancerMode, LBExternal, LBVIP, LBLocalProxy)
	}
	if a := c.LoadBalancerAPIServer.Address; a != "" && net.ParseIP(a) == nil {
		bad("loadbalancer_apiserver.address %q is not an IP address", a)
	}
	if (c.LoadBalancerMode == LBExternal || c.LoadBalancerMode == LBVIP) && c.LoadBalancerAPIServer.Address == "" {
		bad("loadbalancer_apiserver_mode %s needs loadbalancer_apiserver.address", c.LoadBalancerMode)
	}
	for name, p := range map[string]int{"loadbalancer_apiserver.port": c.LoadBalancerAPIServer.Port,
		"kube_apiserver_port": c.APIServerPort} {
		if p < 1 || p > 65535 {
			bad("%s %d is not a TCP port (1-65535)", name, p)
		}
	}
	for _, d := range c.UpstreamDNSServers {
		if ip := net.ParseIP(d); ip == nil || ip.IsLoopback() {
			bad("upstream_dns_servers: %q is not a non-loopback IP address (CoreDNS would forward to itself)", d)
		}
	}
	for reg, mirrors := range c.ContainerdRegistryMirrors {
		if reg == "" || strings.ContainsAny(reg, "/ ") {
			bad("containerd_registry_mirrors: %q is not a registry host name (e.g. docker.io, registry.k8s.io)", reg)
		}
		for _, m := range mirrors {
			if !strings.HasPrefix(m, "https://") && !strings.HasPrefix(m, "http://") {
				bad("containerd_registry_mirrors.%s: mirror %q must start with https:// or http://", reg, m)
			}
		}
	}
	if id := c.KeepalivedRouterID; id < 0 || id > 255 {
		bad("keepalived_virtual_router_id %d: use 1-255 (0: derived from the VIP)", id)
	}
	for name, v := range map[string]string{"kube_version": c.KubeVersion, "etcd_version": c.EtcdVersion, "flannel_version": c.FlannelVersion} {
		if !versionRe.MatchString(v) {
			bad("%s %q: write it as vX.Y.Z, e.g. v1.34.4", name, v)
		}
	}
	_, pods, err1 := net.ParseCIDR(c.KubePodsSubnet)
	_, svcs, err2 := net.ParseCIDR(c.KubeServiceAddresses)
	if err1 != nil {
		bad("kube_pods_subnet %q is not a CIDR (e.g. 10.233.64.0/18)", c.KubePodsSubnet)
	}
	if err2 != nil {
		bad("kube_service_addresses %q is not a CIDR (e.g. 10.233.0.0/18)", c.KubeServiceAddresses)
	}
	if err1 == nil && err2 == nil && (pods.Contains(svcs.IP) || svcs.Contains(pods.IP)) {
		bad("kube_pods_subnet %s and kube_service_addresses %s overlap: pick two separate ranges", c.KubePodsSubnet, c.KubeServiceAddresses)
	}
	if c.ContainerManager != "containerd" {
		bad("container_manager %q: only containerd is supported", c.ContainerManager)
	}
	if c.KubeNetworkPlugin != "flannel" {
		bad("kube_network_plugin %q: only flannel is supported", c.KubeNetworkPlugin)
	}
	if c.APIServerLoadBalancerDomainName == "" {
		bad("apiserver_loadbalancer_domain_name must not be empty")
	}
	c.validateArtifacts(bad)
	if errs != nil {
		errs.ErrorFormat = listFormat
	}
	return errs.ErrorOrNil()
}

// Mode returns the load balancer mode, filling in the default: external when an address is
// given (as KubeSphere's sample does), none otherwise.
func (c *Config) Mode() string {
	switch {
	case c.LoadBalancerMode != "":
		return c.LoadBalancerMode
	case c.LoadBalancerAPIServer.Address != "":
		return LBExternal
	}
	return LBNone
}

// VRRPRouterID is keepalived's virtual_router_id: the configured one, or one derived from the
// VIP's last byte (1-255), so two kinstall clusters on one network differ unless their VIPs
// end alike.
func (c *Config) VRRPRouterID() int {
	if c.KeepalivedRouterID > 0 {
		return c.KeepalivedRouterID
	}
	ip := net.ParseIP(c.LoadBalancerAPIServer.Address).To4()
	if ip == nil || ip[3] == 0 {
		return 51
	}
	return int(ip[3])
}

var (
	imageRepoRe = regexp.MustCompile(`^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$`)
	sha256Re    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileNameRe  = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)
	imageRefRe  = regexp.MustCompile(`^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+$`)
)

// validateArtifacts checks where files and images come from.
func (c *Config) validateArtifacts(bad func(string, ...any)) {
	if r := c.FilesRepo; r != "" {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("files_repo %q: write a URL such as https://mirror.example.com/k8s", r)
		}
	}
	switch c.FilesChecksums {
	case ChecksumsPinned:
	case ChecksumsMirror: // with no files_repo the upstream hosts' own .sha256 files are used
	default:
		bad("files_checksums %q: use %s (kinstall's sha256 pins) or %s (the .sha256 files on files_repo)", c.FilesChecksums, ChecksumsPinned, ChecksumsMirror)
	}
	for f, sum := range c.FilesSHA256 {
		if !fileNameRe.MatchString(f) {
			bad("files_sha256: %q is not a file name (e.g. flannel-v0.28.10-linux-amd64.tar.gz)", f)
		}
		if !sha256Re.MatchString(sum) {
			bad("files_sha256.%s: %q is not a sha256 (64 lowercase hex digits)", f, sum)
		}
	}
	if !imageRepoRe.MatchString(c.ImageRepo()) {
		bad("kube_image_repo %q: write a registry and path such as registry.k8s.io or 10.0.0.5:5000/k8s", c.KubeImageRepo)
	}
	if !imageRefRe.MatchString(c.VerifyImage) {
		bad("verify_image %q: write a full image reference such as 10.0.0.5:5000/kinstall/probe:v1", c.VerifyImage)
	}
	seen := map[string]bool{}
	for i, a := range c.ContainerdRegistryAuth {
		at := fmt.Sprintf("containerd_registry_auth[%d]", i)
		switch {
		case a.Registry == "" || !imageRepoRe.MatchString(a.Registry) || strings.Contains(a.Registry, "/"):
			bad("%s.registry %q: write the registry host, e.g. 10.0.0.5:5000", at, a.Registry)
		case seen[a.Registry]:
			bad("%s: registry %s is listed twice", at, a.Registry)
		}
		seen[a.Registry] = true
		if a.Auth != "" && (a.Username != "" || a.Password != "") {
			bad("%s (%s): give username/password or auth, not both", at, a.Registry)
		}
		if (a.Username == "") != (a.Password == "") {
			bad("%s (%s): username and password go together", at, a.Registry)
		}
		for _, v := range []string{a.Username, a.Password, a.Auth} {
			if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 || !utf8.ValidString(v) {
				bad("%s (%s): credentials must be printable UTF-8", at, a.Registry)
				break
			}
		}
		if a.CAFile != "" {
			if _, err := os.Stat(a.CAFile); err != nil {
				bad("%s (%s): ca_file %s: %v", at, a.Registry, a.CAFile, errors.Unwrap(err))
			}
		}
	}
}
