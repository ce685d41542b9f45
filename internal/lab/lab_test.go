package lab

import (
	"strings"
	"testing"
)

func testLab(t *testing.T, n int) *Lab {
	o, err := Options{Name: "t", N: n, Subnet: "172.29.0.0/24", Dir: "/lab"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(o)
	l.OpsPassword = "lab-pw"
	for i := 1; i <= n; i++ {
		name := "node" + string(rune('0'+i))
		ip, _ := l.IP(name)
		l.Hosts = append(l.Hosts, Host{Name: name, IP: ip})
	}
	return l
}

func TestInventoryLayout(t *testing.T) {
	inv := testLab(t, 5).Inventory()
	for _, want := range []string{
		"taskbox ansible_connection=local ip=172.29.0.1\n",
		"node1 ansible_host=172.29.0.11 ip=172.29.0.11 ansible_user=root\n",
		"node2 ansible_host=172.29.0.12 ip=172.29.0.12 ansible_user=deploy ansible_become=true\n",
		"node3 ansible_host=172.29.0.13 ip=172.29.0.13 ansible_user=ops ansible_ssh_pass=lab-pw ansible_become_pass=lab-pw\n",
		"[kube-master]\nnode1\nnode2\nnode3\n", "[etcd]\nnode1\nnode2\nnode3\n", "[kube-node]\nnode4\nnode5\n",
		"[k8s-cluster:children]\nkube-master\nkube-node\n", "ansible_ssh_private_key_file=/lab/id_ed25519",
	} {
		if !strings.Contains(inv, want) {
			t.Errorf("inventory lacks %q:\n%s", want, inv)
		}
	}
	if small := testLab(t, 2).Inventory(); !strings.Contains(small, "[kube-node]\nnode1\nnode2\n") {
		t.Errorf("with 2 hosts the masters are the workers:\n%s", small)
	}
}

func TestPartitionRules(t *testing.T) {
	l := testLab(t, 3)
	all := l.PartitionRules("172.29.0.12")
	if len(all) != 2 || strings.Join(all[0], " ") != "-I KINSTALL-LAB-T -s 172.29.0.12 -m comment --comment kinstall-lab t -j DROP" {
		t.Errorf("rules: %q", all)
	}
	peer := l.PartitionRules("172.29.0.12", "172.29.0.13")
	if len(peer) != 2 || !strings.Contains(strings.Join(peer[1], " "), "-s 172.29.0.13 -d 172.29.0.12") {
		t.Errorf("peer rules: %q", peer)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{Name: "Bad_Name"}, {Subnet: "10.0.0.0/16"}, {Subnet: "nonsense"}, {N: 500}} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	l := newLab(Options{Name: "x", Subnet: "172.29.0.0/24", Dir: "/d"})
	if ip, err := l.IP("node12"); err != nil || ip != "172.29.0.22" {
		t.Errorf("IP(node12) = %s, %v", ip, err)
	}
	if _, err := l.IP("web1"); err == nil {
		t.Error("IP(web1) should fail")
	}
}
