package config

import (
	"strings"
	"testing"
)

func TestSampleAndDefaults(t *testing.T) {
	c, err := Load("../../conf/common.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode() != LBVIP || c.LoadBalancerAPIServer.Address != "192.168.0.250" || c.VRRPRouterID() != 250 {
		t.Errorf("sample: %+v", c)
	}
	d, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode() != LBNone || d.APIServerLoadBalancerDomainName != "lb.kubesphere.local" || d.KubeVersion != "v1.34.4" {
		t.Errorf("defaults: %+v", d)
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "kube_version: v1.34.4\nkube_verison: v1.33.0\n", "c.yaml:2: unknown key kube_verison (known keys:"},
		{"wrong type", "kube_apiserver_port: high\n", "c.yaml:1: wrong type"},
		{"nested unknown", "loadbalancer_apiserver:\n  adress: 1.2.3.4\n", "c.yaml:2: unknown key adress"},
		{"bad mode", "loadbalancer_apiserver_mode: keepalived\n", "loadbalancer_apiserver_mode \"keepalived\": use external, vip or local-proxy"},
		{"vip without address", "loadbalancer_apiserver_mode: vip\n", "needs loadbalancer_apiserver.address"},
		{"bad address", "loadbalancer_apiserver:\n  address: lb.example\n", "is not an IP address"},
		{"bad version", "kube_version: 1.34\n", "write it as vX.Y.Z"},
		{"overlap", "kube_pods_subnet: 10.0.0.0/8\nkube_service_addresses: 10.96.0.0/12\n", "overlap"},
		{"bad port", "kube_apiserver_port: 70000\n", "is not a TCP port"},
		{"syntax", "a: [\n", "c.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestInventoryOverridesWin(t *testing.T) {
	c := Default()
	err := c.ApplyOverrides(map[string]any{
		"loadbalancer_apiserver": map[string]any{"address": "10.0.0.5", "port": int64(8443)},
		"kube_version":           "v1.35.4", "kube_apiserver_port": int64(7443), "unrelated_var": 1,
	}, "hosts.ini [all:vars]")
	if err != nil {
		t.Fatal(err)
	}
	if c.LoadBalancerAPIServer.Address != "10.0.0.5" || c.LoadBalancerAPIServer.Port != 8443 || c.KubeVersion != "v1.35.4" || c.APIServerPort != 7443 {
		t.Errorf("%+v", c)
	}
	err = c.ApplyOverrides(map[string]any{"kube_version": int64(5)}, "hosts.ini [all:vars]")
	if err == nil || !strings.Contains(err.Error(), "hosts.ini [all:vars]: kube_version must be a string") {
		t.Errorf("err = %v", err)
	}
}
