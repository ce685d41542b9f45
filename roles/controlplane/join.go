package controlplane

import (
	"context"
	"fmt"
	"sync"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/runner"
	"github.com/kinstall/kinstall/internal/transport"
)

// JoinSecrets are the bootstrap token and certificate key of one run, made on the taskbox
// (crypto/rand) and registered on the first master only when a node actually joins. A re-run
// makes new ones, so an expired token or certificate upload (kubeadm deletes them after 2 h) is
// never reused.
type JoinSecrets struct {
	c *cluster.Cluster

	mu                   sync.Mutex
	token, certKey       string
	tokenLive, certsLive bool
}

// NewJoinSecrets returns the secrets of a run.
func NewJoinSecrets(c *cluster.Cluster) *JoinSecrets { return &JoinSecrets{c: c} }

func (j *JoinSecrets) make() error {
	if j.token != "" {
		return nil
	}
	var err error
	if j.token, err = kube.NewToken(); err != nil {
		return err
	}
	j.certKey, err = kube.NewCertificateKey()
	return err
}

// ForInit returns the secrets for `kubeadm init`, which creates the token and uploads the
// certificates itself.
func (j *JoinSecrets) ForInit() (token, certKey string, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.make(); err != nil {
		return "", "", err
	}
	j.tokenLive, j.certsLive = true, true
	return j.token, j.certKey, nil
}

// Token returns a token that is registered in the cluster, creating it on the first master.
func (j *JoinSecrets) Token(ctx context.Context, h *runner.Host) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.make(); err != nil {
		return "", err
	}
	if j.tokenLive {
		return j.token, nil
	}
	m, err := j.firstMaster(ctx, h)
	if err != nil {
		return "", err
	}
	if _, err := m.Run(ctx, transport.Cmd{Sudo: true, Secrets: []string{j.token},
		Command: "kubeadm token create " + j.token + " --ttl 1h --description 'kinstall join token' >/dev/null"}); err != nil {
		return "", fmt.Errorf("create a join token on %s: %w", m.Name, err)
	}
	j.tokenLive = true
	return j.token, nil
}

// CertificateKey returns a key under which the control-plane certificates are uploaded,
// uploading them from the first master when this run has not.
func (j *JoinSecrets) CertificateKey(ctx context.Context, h *runner.Host, r *Role) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.make(); err != nil {
		return "", err
	}
	if j.certsLive {
		return j.certKey, nil
	}
	m, err := j.firstMaster(ctx, h)
	if err != nil {
		return "", err
	}
	cfg, err := r.Config(m, true, true, j.token, j.certKey)
	if err != nil {
		return "", err
	}
	if err := RunKubeadm(ctx, m, cfg, []string{j.token, j.certKey}, "kubeadm init phase upload-certs --upload-certs --config "+SecretConfig+" >/dev/null"); err != nil {
		return "", fmt.Errorf("upload control-plane certificates on %s: %w", m.Name, err)
	}
	j.certsLive = true
	return j.certKey, nil
}

func (j *JoinSecrets) firstMaster(ctx context.Context, h *runner.Host) (*runner.Host, error) {
	if len(j.c.Masters) == 0 {
		return nil, fmt.Errorf("no master in the inventory")
	}
	return h.Peer(ctx, j.c.Masters[0])
}
