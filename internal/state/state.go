// Package state is the layout of the taskbox's state directory (--state-dir, default
// .kinstall): the cluster's CAs, the admin kubeconfig, etcd snapshots and run logs. It is the
// one place that knows these paths; keep the directory, it holds the cluster's CA.
package state

import (
	"path/filepath"
	"time"
)

// Dir is a state directory on the taskbox.
type Dir string

// DefaultDir is the state directory when none is given.
const DefaultDir Dir = ".kinstall"

// String is the directory itself.
func (d Dir) String() string { return string(d) }

// PKI holds every CA and certificate kinstall issues (kinstall check reports their expiry).
func (d Dir) PKI() string { return filepath.Join(string(d), "pki") }

// KubernetesPKI holds the cluster CA (ca.crt, ca.key) and the client pairs issued from it.
func (d Dir) KubernetesPKI() string { return filepath.Join(d.PKI(), "kubernetes") }

// EtcdPKI holds the etcd CA and the member, admin and API-server client certificates.
func (d Dir) EtcdPKI() string { return filepath.Join(d.PKI(), "etcd") }

// AdminKubeconfig is the taskbox's admin kubeconfig (0600).
func (d Dir) AdminKubeconfig() string { return filepath.Join(string(d), "admin.conf") }

// Backups holds etcd snapshots (0600).
func (d Dir) Backups() string { return filepath.Join(string(d), "backups") }

// Runs holds one directory of per-host command logs per run.
func (d Dir) Runs() string { return filepath.Join(string(d), "runs") }

// NewRun names the log directory of a run started at t.
func (d Dir) NewRun(t time.Time) string {
	return filepath.Join(d.Runs(), t.Format("20060102-150405.000"))
}
