package playbook

import (
	"context"
	"time"

	"github.com/kinstall/kinstall/internal/kube"
	"github.com/kinstall/kinstall/internal/verify"
)

// Verifier checks the cluster from the taskbox: the API through the admin kubeconfig, the
// hosts through the session's runner (logged, --forks), etcd through its client.
func (s *Session) Verifier() (*verify.Verifier, error) {
	path, err := kube.ExistingAdminKubeconfig(s.State, s.Cluster)
	if err != nil {
		return nil, err
	}
	api, err := kube.NewClientFromKubeconfig(path)
	if err != nil {
		return nil, err
	}
	var health verify.EtcdHealth = func(context.Context) (int, int, bool) { return 0, 0, false }
	if len(s.Cluster.Etcd) > 0 {
		r, err := s.Etcd()
		if err != nil {
			return nil, err
		}
		health = func(ctx context.Context) (int, int, bool) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			st := r.Client().Status(ctx)
			return st.Healthy, st.Voters, st.HasQuorum()
		}
	}
	return &verify.Verifier{Cluster: s.Cluster, API: api, Hosts: s.Runner, Etcd: health, Image: s.Cluster.Config.VerifyImage}, nil
}

// AdminKubeconfig is the path of the taskbox's admin kubeconfig, written again from the CA in
// the state directory when absent.
func (s *Session) AdminKubeconfig() (string, error) {
	return kube.ExistingAdminKubeconfig(s.State, s.Cluster)
}
