package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kinstall/kinstall/internal/cluster"
	"github.com/kinstall/kinstall/internal/state"
	"github.com/kinstall/kinstall/roles/etcd"
)

// etcdLab is a cluster definition whose [etcd] group is a chosen set of lab hosts, with its own
// state directory (so its own PKI).
type etcdLab struct {
	e       *env
	f       files
	members []string
}

// newEtcdLab wipes etcd from every lab host and writes an inventory with members in [etcd].
func newEtcdLab(t *testing.T, e *env, version string, members ...string) *etcdLab {
	t.Helper()
	wipeEtcd(t, e)
	dir := t.TempDir()
	inv := regexp.MustCompile(`(?s)\[etcd\]\n.*?\n\n`).ReplaceAllString(e.lab.Inventory(), "[etcd]\n"+strings.Join(members, "\n")+"\n\n")
	cfg, err := os.ReadFile(e.lab.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	f := files{inventory: filepath.Join(dir, "hosts.ini"), config: filepath.Join(dir, "common.yaml"), state: filepath.Join(dir, "state")}
	if err := os.WriteFile(f.inventory, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.config, append(cfg, []byte("etcd_version: "+version+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	return &etcdLab{e: e, f: f, members: members}
}

func wipeEtcd(t *testing.T, e *env) {
	t.Helper()
	var wg sync.WaitGroup
	for _, h := range nodes {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			_, _ = e.lab.Exec(context.Background(), h, "systemctl disable --now etcd >/dev/null 2>&1; rm -rf /var/lib/etcd* /etc/etcd.env /etc/etcd /etc/ssl/etcd /etc/systemd/system/etcd.service /usr/local/bin/etcd*; systemctl daemon-reload")
		}(h)
	}
	wg.Wait()
}

// setMembers rewrites the [etcd] group.
func (l *etcdLab) setMembers(t *testing.T, members ...string) {
	t.Helper()
	inv, _ := os.ReadFile(l.f.inventory)
	out := regexp.MustCompile(`(?s)\[etcd\]\n.*?\n\n`).ReplaceAllString(string(inv), "[etcd]\n"+strings.Join(members, "\n")+"\n\n")
	if err := os.WriteFile(l.f.inventory, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	l.members = members
}

func (l *etcdLab) kinstall(t *testing.T, args ...string) result {
	t.Helper()
	return l.e.run(t, l.f, args...)
}

func (l *etcdLab) install(t *testing.T) result {
	t.Helper()
	r := l.kinstall(t, "install", "--only", "artifacts,etcd")
	if r.code != 0 {
		t.Fatalf("install (%d):\n%s", r.code, r.out)
	}
	return r
}

// client is kinstall's own etcd client, with the admin certificate from the state directory.
func (l *etcdLab) client(t *testing.T) (*etcd.Client, *cluster.Cluster) {
	t.Helper()
	c, err := cluster.Load(l.f.inventory, l.f.config)
	if err != nil {
		t.Fatal(err)
	}
	pkiDir := state.Dir(l.f.state).EtcdPKI()
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(pkiDir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cl, err := etcd.NewClient(c.Etcd, read("ca.crt"), read("admin.crt"), read("admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	return cl, c
}

func put(t *testing.T, cli *clientv3.Client, k, v string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, k, v)
	return err
}

// readEverywhere reads key through each member on its own (a linearizable read).
func readEverywhere(t *testing.T, cl *etcd.Client, c *cluster.Cluster, key string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, h := range c.Etcd {
		cli, err := cl.Member(h)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := cli.Get(ctx, key)
		cancel()
		cli.Close()
		if err != nil {
			got[h.Name] = "error: " + err.Error()
		} else if len(resp.Kvs) == 1 {
			got[h.Name] = string(resp.Kvs[0].Value)
		}
	}
	return got
}

func recapUnchanged(t *testing.T, out string, hosts []string) {
	t.Helper()
	for _, h := range hosts {
		if !regexp.MustCompile(`(?m)^` + h + `\s+\d+\s+0\s+\d+\s+0\s`).MatchString(out) {
			t.Errorf("re-run changed something on %s:\n%s", h, out)
		}
	}
}

// 1, 3 and 5 members: a write through one member is read through every other; a re-run changes
// nothing and restarts nothing; files holding keys are 0600.
func TestEtcdClusterSizes(t *testing.T) {
	e := lab_(t)
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			l := newEtcdLab(t, e, etcdNew, nodes[:n]...)
			r := l.install(t)
			t.Logf("%d members installed in %s", n, r.took.Round(time.Millisecond))
			cl, c := l.client(t)
			first, err := cl.Member(c.Etcd[0])
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			if err := put(t, first, "/kinstall/test", "written-through-node1"); err != nil {
				t.Fatal(err)
			}
			for host, v := range readEverywhere(t, cl, c, "/kinstall/test") {
				if v != "written-through-node1" {
					t.Errorf("%s reads %q", host, v)
				}
			}
			pids := map[string]string{}
			for _, h := range nodes[:n] {
				pids[h] = e.sh(t, h, "systemctl show -p MainPID --value etcd")
				if got := e.sh(t, h, "stat -c %a /etc/ssl/etcd/ssl/member-"+h+"-key.pem /etc/ssl/etcd/ssl/admin-key.pem | sort -u; test -e /etc/etcd/bootstrap.env && echo stale-bootstrap; true"); got != "600" {
					t.Errorf("%s: key modes / leftovers: %q", h, got)
				}
			}
			r = l.kinstall(t, "install", "--only", "artifacts,etcd")
			if r.code != 0 {
				t.Fatalf("re-run (%d):\n%s", r.code, r.out)
			}
			recapUnchanged(t, r.out, nodes[:n])
			for _, h := range nodes[:n] {
				if pid := e.sh(t, h, "systemctl show -p MainPID --value etcd"); pid != pids[h] {
					t.Errorf("%s: etcd restarted by the re-run (pid %s -> %s)", h, pids[h], pid)
				}
			}
			st := l.kinstall(t, "etcd", "status")
			if st.code != 0 || !strings.Contains(st.out, fmt.Sprintf("%d of %d members healthy", n, n)) || !strings.Contains(st.out, "leader") {
				t.Errorf("status (%d):\n%s", st.code, st.out)
			}
			// The state directory holds the PKI privately.
			for _, f := range []string{"ca.key", "admin.key", "member-node1.key"} {
				if fi, err := os.Stat(filepath.Join(state.Dir(l.f.state).EtcdPKI(), f)); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v", f, fi, err)
				}
			}
		})
	}
}

// One of three down: writes go on. Two down: writes fail and status says quorum is lost. While
// a member is down, removing a healthy one and upgrading are both refused.
func TestEtcdQuorumLossAndGuards(t *testing.T) {
	e := lab_(t)
	l := newEtcdLab(t, e, etcdNew, "node1", "node2", "node3")
	l.install(t)
	cl, _ := l.client(t)
	cli, err := cl.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	defer func() {
		for _, h := range []string{"node2", "node3"} {
			_, _ = e.lab.Exec(context.Background(), h, "systemctl start etcd")
		}
	}()

	e.sh(t, "node3", "systemctl stop etcd")
	if err := put(t, cli, "/k", "one-down"); err != nil {
		t.Errorf("write with one of three down: %v", err)
	}
	st := l.kinstall(t, "etcd", "status")
	if st.code != 0 || !strings.Contains(st.out, "2 of 3 members healthy") || !strings.Contains(st.out, "tolerates 0") {
		t.Errorf("status with one down (%d):\n%s", st.code, st.out)
	}
	rm := l.kinstall(t, "etcd", "remove", "node2")
	if rm.code == 0 || !strings.Contains(rm.out, "refusing to remove etcd member node2 while node3 unhealthy") {
		t.Errorf("removing a healthy member from a 2-of-3 cluster was not refused (%d):\n%s", rm.code, rm.out)
	}
	rm = l.kinstall(t, "etcd", "remove", "node3")
	if rm.code == 0 || !strings.Contains(rm.out, "--dead") {
		t.Errorf("removing the dead member without --dead (%d):\n%s", rm.code, rm.out)
	}
	up := l.kinstall(t, "upgrade", "--role", "etcd", "--version", etcdNew)
	if up.code == 0 || !strings.Contains(up.out, "refusing to upgrade etcd: node3") {
		t.Errorf("upgrade with a member down was not refused (%d):\n%s", up.code, up.out)
	}
	if n := e.sh(t, "node2", "systemctl is-active etcd"); n != "active" {
		t.Errorf("a refused command touched node2: %s", n)
	}

	e.sh(t, "node2", "systemctl stop etcd")
	if err := put(t, cli, "/k", "two-down"); err == nil {
		t.Error("a write succeeded with two of three members down")
	}
	st = l.kinstall(t, "etcd", "status")
	if st.code != 2 || !strings.Contains(st.out, "QUORUM LOST: 1 of 3 members running, 0 healthy, 2 needed") {
		t.Errorf("status with two down (%d):\n%s", st.code, st.out)
	}

	// Back up: the install (re-run) starts what is stopped and waits for health.
	r := l.kinstall(t, "install", "--only", "etcd")
	if r.code != 0 {
		t.Fatalf("re-run after outage (%d):\n%s", r.code, r.out)
	}
	if err := put(t, cli, "/k", "back"); err != nil {
		t.Errorf("write after recovery: %v", err)
	}
}

// A rolling upgrade between the bundled versions while a client writes all the time: every
// acknowledged write survives, no write outage is longer than an election, and never are two
// members down at once (the test's own probe watches every member's endpoint).
func TestEtcdRollingUpgradeUnderWrites(t *testing.T) {
	e := lab_(t)
	l := newEtcdLab(t, e, etcdOld, "node1", "node2", "node3")
	l.install(t)
	cl, c := l.client(t)
	cli, err := cl.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []string
	var longestOutage time.Duration
	writes, failures := 0, 0
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		lastOK := time.Now()
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprintf("/upgrade/%06d", i)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cli.Put(wctx, k, "v")
			cancel()
			mu.Lock()
			writes++
			if err == nil {
				acked = append(acked, k)
				if d := time.Since(lastOK); d > longestOutage {
					longestOutage = d
				}
				lastOK = time.Now()
			} else if ctx.Err() == nil {
				failures++
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// Probe: each member's endpoint asked every 50 ms with a short timeout; a sampler counts
	// the members down at the same moment.
	maxDown := 0
	var downLog []string
	down := map[string]bool{}
	for _, h := range c.Etcd {
		mc, err := cl.Member(h)
		if err != nil {
			t.Fatal(err)
		}
		defer mc.Close()
		wg.Add(1)
		go func(name, ep string) {
			defer wg.Done()
			for ctx.Err() == nil {
				sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				_, err := mc.Status(sctx, ep)
				cancel()
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				down[name] = err != nil
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}(h.Name, etcd.ClientURL(h))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			mu.Lock()
			var who []string
			for name, d := range down {
				if d {
					who = append(who, name)
				}
			}
			if len(who) > maxDown {
				maxDown = len(who)
			}
			if len(who) > 0 {
				downLog = append(downLog, time.Now().Format("15:04:05.000")+" down: "+strings.Join(who, ","))
			}
			mu.Unlock()
			time.Sleep(25 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	upgradeStart := time.Now()
	r := l.kinstall(t, "upgrade", "--role", "etcd", "--version", etcdNew)
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	if r.code != 0 {
		t.Fatalf("upgrade (%d):\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "leader last") || !strings.Contains(r.out, "snapshot: ") {
		t.Errorf("upgrade output lacks order or snapshot:\n%s", r.out)
	}
	t.Logf("upgrade %s -> %s took %s; %d writes, %d failed, longest gap between acknowledged writes %s; probe saw at most %d member(s) down",
		etcdOld, etcdNew, r.took.Round(time.Millisecond), writes, failures, longestOutage.Round(time.Millisecond), maxDown)
	if maxDown == 0 {
		t.Error("the probe never saw a member down: it is too slow to prove anything")
	}
	if maxDown > 1 {
		t.Errorf("two members were down at the same time:\n%s", strings.Join(downLog, "\n"))
	}
	// The hosts' own record: systemd logs when each member stopped and when it was ready again
	// (Type=notify). Each member went down exactly once, and no two outages overlap.
	var outages []outage
	for _, h := range []string{"node1", "node2", "node3"} {
		o := memberOutages(t, e, h, upgradeStart)
		if len(o) != 1 {
			t.Errorf("%s: %d outages in its journal, want 1: %+v", h, len(o), o)
		}
		outages = append(outages, o...)
	}
	for i := range outages {
		t.Logf("%s down %s", outages[i].host, outages[i].end.Sub(outages[i].start).Round(time.Millisecond))
		for j := i + 1; j < len(outages); j++ {
			a, b := outages[i], outages[j]
			if a.start.Before(b.end) && b.start.Before(a.end) {
				t.Errorf("%s and %s were down at the same time: %+v %+v", a.host, b.host, a, b)
			}
		}
	}
	if longestOutage > time.Duration(etcd.ElectionMS+500)*time.Millisecond {
		t.Errorf("writes stopped for %s, longer than one election (%d ms)", longestOutage, etcd.ElectionMS)
	}
	// Every acknowledged write is there.
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, "/upgrade/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	lost := 0
	for _, k := range acked {
		if !have[k] {
			lost++
		}
	}
	if lost > 0 || len(acked) < 100 {
		t.Errorf("%d of %d acknowledged writes lost", lost, len(acked))
	}
	st := cl.Status(context.Background())
	for _, m := range st.Members {
		if m.Version != strings.TrimPrefix(etcdNew, "v") || !m.Healthy {
			t.Errorf("%s after upgrade: version %s healthy %v", m.Name, m.Version, m.Healthy)
		}
	}
	_ = c
	// A re-run of the upgrade has nothing to do.
	again := l.kinstall(t, "upgrade", "--role", "etcd", "--version", etcdNew)
	if again.code != 0 {
		t.Fatalf("upgrade re-run (%d):\n%s", again.code, again.out)
	}
	recapUnchanged(t, again.out, []string{"node1", "node2", "node3"})
	// And install with the old version is refused instead of downgrading a member.
	downgrade := l.kinstall(t, "install", "--only", "etcd")
	if downgrade.code == 0 || !strings.Contains(downgrade.out, "kinstall upgrade --role etcd") {
		t.Errorf("install of the old version over the new one (%d):\n%s", downgrade.code, downgrade.out)
	}
}

// A member added to [etcd] joins alone (learner, then voter); removing it leaves three healthy
// members and a clean host. The topology check warns about the even count meanwhile.
func TestEtcdAddAndRemoveMember(t *testing.T) {
	e := lab_(t)
	l := newEtcdLab(t, e, etcdNew, "node1", "node2", "node3")
	l.install(t)
	l.setMembers(t, "node1", "node2", "node3", "node4")
	chk := l.kinstall(t, "check")
	if !strings.Contains(chk.out, "4 etcd members") && !strings.Contains(chk.out, "even") {
		t.Errorf("check does not warn about 4 members:\n%s", chk.out)
	}
	r := l.install(t)
	if !strings.Contains(r.out, "[node4] etcd / running: changed (add member and start it)") {
		t.Errorf("node4 was not added as a member:\n%s", r.out)
	}
	cl, _ := l.client(t)
	st := cl.Status(context.Background())
	if st.Voters != 4 || st.Healthy != 4 {
		t.Fatalf("after add: %d voters, %d healthy: %+v", st.Voters, st.Healthy, st.Members)
	}
	if m, _ := st.Member("node4"); m.Learner {
		t.Error("node4 is still a learner")
	}

	rm := l.kinstall(t, "etcd", "remove", "node4")
	if rm.code != 0 {
		t.Fatalf("remove (%d):\n%s", rm.code, rm.out)
	}
	l.setMembers(t, "node1", "node2", "node3")
	cl, _ = l.client(t)
	st = cl.Status(context.Background())
	if st.Voters != 3 || st.Healthy != 3 {
		t.Errorf("after remove: %d voters, %d healthy: %+v", st.Voters, st.Healthy, st.Members)
	}
	if got := e.sh(t, "node4", "systemctl is-active etcd; ls /var/lib/etcd 2>/dev/null | wc -l"); got != "inactive\n0" {
		t.Errorf("node4 not cleaned: %q", got)
	}
}

// Data written before a snapshot is back after a restore; data written after it is gone.
func TestEtcdBackupRestore(t *testing.T) {
	e := lab_(t)
	l := newEtcdLab(t, e, etcdNew, "node1", "node2", "node3")
	l.install(t)
	cl, c := l.client(t)
	cli, err := cl.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if err := put(t, cli, "/before", "kept"); err != nil {
		t.Fatal(err)
	}
	b := l.kinstall(t, "etcd", "backup")
	m := regexp.MustCompile(`snapshot: (\S+)`).FindStringSubmatch(b.out)
	if b.code != 0 || m == nil {
		t.Fatalf("backup (%d):\n%s", b.code, b.out)
	}
	if fi, err := os.Stat(m[1]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file: %v %v", fi, err)
	}
	if err := put(t, cli, "/after", "lost"); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if r := l.kinstall(t, "etcd", "restore", "--snapshot", m[1]); r.code == 0 {
		t.Fatalf("restore without --yes ran:\n%s", r.out)
	}
	r := l.kinstall(t, "etcd", "restore", "--snapshot", m[1], "--yes")
	if r.code != 0 {
		t.Fatalf("restore (%d):\n%s", r.code, r.out)
	}
	for host, v := range readEverywhere(t, cl, c, "/before") {
		if v != "kept" {
			t.Errorf("%s: /before = %q after restore", host, v)
		}
	}
	for host, v := range readEverywhere(t, cl, c, "/after") {
		if v != "" {
			t.Errorf("%s: /after = %q after restore (written after the snapshot)", host, v)
		}
	}
	// The cluster is whole and a re-run of install is a no-op.
	again := l.kinstall(t, "install", "--only", "artifacts,etcd")
	if again.code != 0 {
		t.Fatalf("install after restore (%d):\n%s", again.code, again.out)
	}
	recapUnchanged(t, again.out, []string{"node1", "node2", "node3"})

	// Run from another state directory (its own, new CA): refused before anything changes.
	caBefore := e.sh(t, "node1", "sha256sum /etc/ssl/etcd/ssl/ca.pem")
	other := l.f
	other.state = t.TempDir()
	wrong := e.run(t, other, "install", "--only", "etcd")
	if wrong.code == 0 || !strings.Contains(wrong.out, "trusts a different CA") {
		t.Errorf("install with another state dir (%d):\n%s", wrong.code, wrong.out)
	}
	if got := e.sh(t, "node1", "sha256sum /etc/ssl/etcd/ssl/ca.pem"); got != caBefore {
		t.Error("the refused run replaced the CA on node1")
	}
}

// outage is a member's etcd between systemd's "Stopping" and the next "Started" (ready).
type outage struct {
	host       string
	start, end time.Time
}

func memberOutages(t *testing.T, e *env, host string, since time.Time) []outage {
	t.Helper()
	out := e.sh(t, host, fmt.Sprintf("journalctl -u etcd --since @%d -o short-unix --no-pager | grep 'systemd\\[1\\]: \\(Stopping\\|Started\\) etcd' || true", since.Unix()))
	var res []outage
	var cur *outage
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		var sec float64
		if _, err := fmt.Sscanf(f[0], "%f", &sec); err != nil {
			continue
		}
		ts := time.Unix(0, int64(sec*1e9))
		switch {
		case strings.HasPrefix(f[3], "Stopping"):
			cur = &outage{host: host, start: ts}
		case strings.HasPrefix(f[3], "Started") && cur != nil:
			cur.end = ts
			res = append(res, *cur)
			cur = nil
		}
	}
	if cur != nil {
		cur.end = time.Now()
		res = append(res, *cur)
	}
	return res
}
