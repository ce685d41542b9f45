package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Client is a minimal Kubernetes API client for the taskbox: JSON over HTTPS with a client
// certificate. kinstall needs a handful of calls (nodes, pods, leases, a test workload), not
// client-go's weight.
type Client struct {
	Server string
	http   *http.Client
}

// NewClient returns a client for server with the CA and the client pair (PEM).
func NewClient(server string, caPEM, certPEM, keyPEM []byte) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("kube: no CA certificate")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("kube: client certificate: %w", err)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{Server: strings.TrimRight(server, "/"), http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// NewClientFromKubeconfig reads a kubeconfig with embedded data (as kinstall writes them).
func NewClientFromKubeconfig(path string) (*Client, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, fmt.Errorf("%s: no cluster or user", path)
	}
	dec := func(s string) []byte { b, _ := base64.StdEncoding.DecodeString(s); return b }
	c := kc.Clusters[0].Cluster
	u := kc.Users[0].User
	return NewClient(c.Server, dec(c.CA), dec(u.Cert), dec(u.Key))
}

// WithServer returns a copy talking to another server (e.g. one master directly).
func (c *Client) WithServer(server string) *Client {
	cp := *c
	cp.Server = strings.TrimRight(server, "/")
	return &cp
}

// WithTimeout returns a copy whose requests give up after d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	h := *c.http
	h.Timeout = d
	cp.http = &h
	return &cp
}

// StatusError is an API answer other than 2xx.
type StatusError struct {
	Code    int
	Method  string
	Path    string
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Code, e.Message)
}

// IsNotFound reports a 404.
func IsNotFound(err error) bool {
	se, ok := err.(*StatusError)
	return ok && se.Code == http.StatusNotFound
}

// IsConflict reports a 409 (already exists).
func IsConflict(err error) bool {
	se, ok := err.(*StatusError)
	return ok && se.Code == http.StatusConflict
}

// Do sends body (JSON-encoded unless []byte) and decodes the answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, "application/json", body, out)
}

// MergePatch sends a JSON merge patch.
func (c *Client) MergePatch(ctx context.Context, path string, patch, out any) error {
	return c.do(ctx, http.MethodPatch, path, "application/merge-patch+json", patch, out)
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	// Marks every request as safe to resend on a kept-alive connection that turns out dead
	// (a VIP that moved resets it): net/http retries those once; nothing is sent on the wire.
	// kinstall's writes are creates (a repeat is a conflict) and merge patches.
	req.Header["Idempotency-Key"] = nil
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return &StatusError{Code: resp.StatusCode, Method: method, Path: path, Message: msg}
	}
	if out == nil {
		return nil
	}
	if p, ok := out.(*[]byte); ok {
		*p = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// CloseIdle drops kept-alive connections (after the endpoint moved).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }
