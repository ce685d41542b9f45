package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kinstall/kinstall/internal/cluster"
)

// Client talks to the etcd members from the taskbox over TLS with the admin certificate.
type Client struct {
	hosts []*cluster.Host // the [etcd] hosts, inventory order
	tls   *tls.Config
}

// NewClient builds a client for the members on hosts from PEM material.
func NewClient(hosts []*cluster.Host, caPEM, certPEM, keyPEM []byte) (*Client, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("etcd CA: no certificate")
	}
	return &Client{hosts: hosts, tls: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}}, nil
}

// ClientURL and PeerURL of a member host.
func ClientURL(h *cluster.Host) string { return "https://" + hostPort(h.IP, 2379) }
func PeerURL(h *cluster.Host) string   { return "https://" + hostPort(h.IP, 2380) }

func hostPort(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

// dial returns a client for the given endpoints. DialTimeout bounds how long an unreachable
// member can hold up a call.
func (c *Client) dial(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  c.tls,
		DialTimeout:          3 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
	})
}

// endpoints of every member host.
func (c *Client) endpoints() []string {
	var eps []string
	for _, h := range c.hosts {
		eps = append(eps, ClientURL(h))
	}
	return eps
}

// Member returns a client that talks to one member only.
func (c *Client) Member(h *cluster.Host) (*clientv3.Client, error) { return c.dial(ClientURL(h)) }

// Cluster returns a client balanced over every member, for reads, writes and membership calls.
func (c *Client) Cluster() (*clientv3.Client, error) { return c.dial(c.endpoints()...) }

// MemberStatus is one member as seen through its own endpoint.
type MemberStatus struct {
	Name       string // inventory name (or etcd's name for a member kinstall doesn't know)
	Endpoint   string
	ID         uint64
	Leader     bool
	Learner    bool
	Version    string
	DBSize     int64
	RaftIndex  uint64
	Applied    uint64
	Healthy    bool   // answered a linearizable read through this member (needs quorum)
	Err        string // why not healthy
	InCluster  bool   // listed by the cluster's member list
	NotStarted bool   // listed, but has never started
}

// Status is the whole cluster as kinstall sees it.
type Status struct {
	Members []MemberStatus
	Voters  int // voting members in the member list (or hosts, when no list could be read)
	Running int // voting members whose etcd answers (healthy or not)
	Healthy int // healthy voting members
	Leader  string
}

// Quorum is the number of voting members that must be up: floor(n/2)+1.
func Quorum(n int) int { return n/2 + 1 }

// HasQuorum says whether writes can succeed.
func (s Status) HasQuorum() bool { return s.Voters > 0 && s.Healthy >= Quorum(s.Voters) }

// Tolerates is how many more voting members may fail before quorum is lost (negative: lost).
func (s Status) Tolerates() int { return s.Healthy - Quorum(s.Voters) }

// Member returns the status of the member on an inventory host.
func (s Status) Member(name string) (MemberStatus, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return MemberStatus{}, false
}

// Summary is one line for operators.
func (s Status) Summary() string {
	switch {
	case s.Voters == 0:
		return "no etcd member answered"
	case !s.HasQuorum():
		return fmt.Sprintf("QUORUM LOST: %d of %d members running, %d healthy, %d needed: writes fail until enough members are back", s.Running, s.Voters, s.Healthy, Quorum(s.Voters))
	default:
		return fmt.Sprintf("quorum ok: %d of %d members healthy (quorum %d), tolerates %d more failure(s)", s.Healthy, s.Voters, Quorum(s.Voters), s.Tolerates())
	}
}

// Status asks every member host for its status and health, in parallel, and the cluster for
// its member list.
func (c *Client) Status(ctx context.Context) Status {
	st := Status{Members: make([]MemberStatus, len(c.hosts))}
	var wg sync.WaitGroup
	for i, h := range c.hosts {
		wg.Add(1)
		go func(i int, h *cluster.Host) {
			defer wg.Done()
			st.Members[i] = c.memberStatus(ctx, h)
		}(i, h)
	}
	var list []*etcdserverpb.Member
	var listErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		list, listErr = c.MemberList(ctx)
	}()
	wg.Wait()

	byPeer := map[string]*etcdserverpb.Member{}
	for _, m := range list {
		for _, u := range m.PeerURLs {
			byPeer[u] = m
		}
	}
	for i, h := range c.hosts {
		m := &st.Members[i]
		if lm, ok := byPeer[PeerURL(h)]; ok {
			m.InCluster, m.Learner, m.ID = true, lm.IsLearner, lm.ID
			m.NotStarted = lm.Name == ""
			delete(byPeer, PeerURL(h))
		}
	}
	// Members kinstall has no host for (added by hand, or a host removed from the inventory).
	seen := map[uint64]bool{}
	for _, lm := range byPeer {
		if seen[lm.ID] {
			continue
		}
		seen[lm.ID] = true
		st.Members = append(st.Members, MemberStatus{Name: lm.Name + " (not in inventory)", Endpoint: strings.Join(lm.ClientURLs, ","), ID: lm.ID,
			Learner: lm.IsLearner, InCluster: true, Err: "not in the inventory's [etcd] group"})
	}
	for _, m := range st.Members {
		counted := m.InCluster || listErr != nil // without a list, count the inventory's hosts
		if counted && !m.Learner {
			st.Voters++
			if m.Version != "" {
				st.Running++
			}
			if m.Healthy {
				st.Healthy++
			}
		}
		if m.Leader {
			st.Leader = m.Name
		}
	}
	return st
}

func (c *Client) memberStatus(ctx context.Context, h *cluster.Host) MemberStatus {
	ms := MemberStatus{Name: h.Name, Endpoint: ClientURL(h)}
	cli, err := c.dial(ms.Endpoint)
	if err != nil {
		ms.Err = err.Error()
		return ms
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := cli.Status(sctx, ms.Endpoint)
	if err != nil {
		ms.Err = shortErr(err)
		return ms
	}
	ms.ID, ms.Version, ms.DBSize = resp.Header.MemberId, resp.Version, resp.DbSize
	ms.RaftIndex, ms.Applied, ms.Learner = resp.RaftIndex, resp.RaftAppliedIndex, resp.IsLearner
	ms.Leader = resp.Leader != 0 && resp.Leader == resp.Header.MemberId
	if len(resp.Errors) > 0 {
		ms.Err = strings.Join(resp.Errors, "; ")
		return ms
	}
	if ms.Learner {
		ms.Healthy = true // learners serve no linearizable reads; up and answering is healthy
		return ms
	}
	// The same check as `etcdctl endpoint health`: a linearizable read through this member
	// succeeds only when it is connected to a quorum with a leader.
	hctx, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if _, err := cli.Get(hctx, "health"); err != nil && !isPermissionDenied(err) {
		ms.Err = "running, but no quorum: " + shortErr(err)
		return ms
	}
	ms.Healthy = true
	return ms
}

func isPermissionDenied(err error) bool { return strings.Contains(err.Error(), "permission denied") }

func shortErr(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "DeadlineExceeded") || strings.Contains(s, "deadline exceeded"):
		return "no answer (down or unreachable)"
	case strings.Contains(s, "connection refused"):
		return "connection refused (etcd not running)"
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// MemberList returns the cluster's members from any member that answers.
func (c *Client) MemberList(ctx context.Context) ([]*etcdserverpb.Member, error) {
	cli, err := c.Cluster()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.MemberList(lctx)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %s", shortErr(err))
	}
	return resp.Members, nil
}

// PrintStatus writes the status table and the quorum summary.
func PrintStatus(w io.Writer, st Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tENDPOINT\tID\tROLE\tVERSION\tDB SIZE\tRAFT INDEX\tHEALTH")
	members := append([]MemberStatus(nil), st.Members...)
	sort.SliceStable(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	for _, m := range members {
		role := "follower"
		switch {
		case m.Leader:
			role = "leader"
		case m.Learner:
			role = "learner"
		case !m.InCluster && m.ID == 0:
			role = "-"
		}
		health := "healthy"
		if !m.Healthy {
			health = "UNHEALTHY: " + m.Err
		}
		if m.NotStarted {
			health = "not started yet"
		}
		id, size, idx, ver := "-", "-", "-", "-"
		if m.ID != 0 {
			id = fmt.Sprintf("%x", m.ID)
		}
		if m.Version != "" {
			ver, size, idx = m.Version, humanBytes(m.DBSize), fmt.Sprint(m.RaftIndex)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Endpoint, id, role, ver, size, idx, health)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, st.Summary())
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// GuardStop refuses to take member name down unless every other voting member is healthy:
// with one already down, stopping another can cost quorum (and at 2 or 4 members, does).
func GuardStop(st Status, name string) error {
	if !st.HasQuorum() {
		return fmt.Errorf("etcd has no quorum (%s): fix the cluster first (kinstall etcd status)", st.Summary())
	}
	var down []string
	for _, m := range st.Members {
		if m.Name != name && m.InCluster && !m.Learner && !m.Healthy {
			down = append(down, m.Name)
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("refusing to take etcd member %s down: %s already unhealthy (%d of %d healthy, quorum %d); bring %s back first (kinstall etcd status)",
			name, strings.Join(down, ", "), st.Healthy, st.Voters, Quorum(st.Voters), strings.Join(down, ", "))
	}
	if m, ok := st.Member(name); ok && m.Healthy && !m.Learner && st.Healthy-1 < Quorum(st.Voters) {
		return fmt.Errorf("refusing to take etcd member %s down: %d of %d members healthy and quorum is %d, so the cluster would stop",
			name, st.Healthy, st.Voters, Quorum(st.Voters))
	}
	return nil
}

// GuardRemove refuses a member removal unless every voting member is healthy: a cluster already
// using its failure tolerance must be repaired first. The one exception is removing the member
// that is down, to replace it, which the operator must ask for (deadOK): after it the remaining
// members must still hold quorum on their own.
func GuardRemove(st Status, name string, deadOK bool) error {
	m, ok := st.Member(name)
	if !ok || !m.InCluster {
		return fmt.Errorf("%s is not an etcd member", name)
	}
	if m.Learner {
		return nil
	}
	remaining, healthy := st.Voters-1, st.Healthy
	if m.Healthy {
		healthy--
	}
	if remaining == 0 {
		return fmt.Errorf("refusing to remove %s: it is the last etcd member", name)
	}
	var down []string
	for _, o := range st.Members {
		if o.Name != name && o.InCluster && !o.Learner && !o.Healthy {
			down = append(down, o.Name)
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("refusing to remove etcd member %s while %s unhealthy (%d of %d healthy, quorum %d): the cluster is already using its failure tolerance; bring %s back or remove it first",
			name, strings.Join(down, ", "), st.Healthy, st.Voters, Quorum(st.Voters), strings.Join(down, ", "))
	}
	if healthy < Quorum(remaining) {
		return fmt.Errorf("refusing to remove etcd member %s: %d of %d members are healthy; after removing it %d of %d would be, below quorum %d. Bring the unhealthy members back first (kinstall etcd status)",
			name, st.Healthy, st.Voters, healthy, remaining, Quorum(remaining))
	}
	if !m.Healthy && !deadOK {
		return fmt.Errorf("etcd member %s is unhealthy (%s); to remove it so it can be replaced, re-run with --dead", name, m.Err)
	}
	return nil
}
