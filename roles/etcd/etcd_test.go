package etcd

import (
	"strings"
	"testing"

	goldenfile "github.com/kinstall/kinstall/internal/golden"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/transport"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func TestRenderedFilesGolden(t *testing.T) {
	h := &cluster.Host{Name: "node1", IP: "10.0.0.11", Target: transport.Target{Address: "192.168.0.11"}}
	env, err := Env(h)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "etcd.env", env)
	unit, err := Unit()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "etcd.service", unit)
	boot, err := Bootstrap("node1=https://10.0.0.11:2380,node2=https://10.0.0.12:2380", "new", "kinstall-cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "bootstrap.env", boot)
}

func TestMemberCertificateNames(t *testing.T) {
	h := &cluster.Host{Name: "node1", IP: "10.0.0.11", Target: transport.Target{Address: "node1.example.com"}}
	req := memberRequest(h)
	if strings.Join(req.DNSNames, ",") != "node1,localhost,node1.example.com" {
		t.Errorf("DNS SANs %v", req.DNSNames)
	}
	var ips []string
	for _, ip := range req.IPs {
		ips = append(ips, ip.String())
	}
	if strings.Join(ips, ",") != "127.0.0.1,::1,10.0.0.11" {
		t.Errorf("IP SANs %v", ips)
	}
}

func status(healthy ...bool) Status {
	st := Status{}
	for i, ok := range healthy {
		m := MemberStatus{Name: "node" + string(rune('1'+i)), InCluster: true, Healthy: ok}
		if !ok {
			m.Err = "no answer"
		}
		st.Members = append(st.Members, m)
		st.Voters++
		if ok {
			st.Healthy++
		}
	}
	return st
}

func TestQuorumGuards(t *testing.T) {
	tests := []struct {
		name      string
		st        Status
		member    string
		dead      bool
		stop, rem string // "" = allowed, else a substring of the refusal
	}{
		{"3 healthy", status(true, true, true), "node1", false, "", ""},
		{"3, one down, other member", status(true, true, false), "node1", false, "already unhealthy", "while node3 unhealthy"},
		{"3, one down, the down one", status(true, true, false), "node3", false, "", "--dead"},
		{"3, one down, the down one, --dead", status(true, true, false), "node3", true, "", ""},
		{"2 healthy", status(true, true), "node1", false, "cluster would stop", ""},
		{"1 member", status(true), "node1", false, "cluster would stop", "last etcd member"},
		{"3, two down", status(true, false, false), "node1", false, "no quorum", "while node2, node3 unhealthy"},
		{"5, one down", status(true, true, true, true, false), "node1", false, "already unhealthy", "while node5 unhealthy"},
		{"4 healthy", status(true, true, true, true), "node2", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error, want string) {
				switch {
				case want == "" && err != nil:
					t.Errorf("%s refused: %v", what, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: got %v, want refusal containing %q", what, err, want)
				}
			}
			check("stop", GuardStop(tt.st, tt.member), tt.stop)
			check("remove", GuardRemove(tt.st, tt.member, tt.dead), tt.rem)
		})
	}
}

func TestQuorumMath(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 7: 4} {
		if Quorum(n) != want {
			t.Errorf("Quorum(%d) = %d, want %d", n, Quorum(n), want)
		}
	}
	if s := status(true, false, false).Summary(); !strings.Contains(s, "QUORUM LOST") {
		t.Errorf("summary: %s", s)
	}
	if s := status(true, true, false).Summary(); !strings.Contains(s, "tolerates 0") {
		t.Errorf("summary: %s", s)
	}
}

func TestSemver(t *testing.T) {
	a, _ := semver("v3.6.8")
	b, _ := semver("3.6.14")
	if compareVersions(a, b) != -1 || compareVersions(b, a) != 1 || compareVersions(a, a) != 0 {
		t.Error("compare")
	}
	if _, err := semver("v3.6"); err == nil {
		t.Error("v3.6 accepted")
	}
}
