// Command bench compares kinstall's engine with ansible-playbook and with a minimal reference
// SSH client on the same hosts: one real sshd reached through N loopback addresses (each
// address is a "host"; 50 lab containers would measure Docker, not SSH).
//
//	go run ./test/bench [-hosts 5,20,50] [-reps 3] [-ansible-reps 1] [-no-ansible]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one workload at one host count.
type Row struct {
	Workload  string  `json:"workload"`
	Hosts     int     `json:"hosts"`
	Ansible   float64 `json:"ansible_s,omitempty"` // default forks (5)
	AnsibleN  float64 `json:"ansible_forks_n_s,omitempty"`
	Kinstall  float64 `json:"kinstall_s"`
	RefPerCmd float64 `json:"reference_session_per_command_s,omitempty"`
	RefOne    float64 `json:"reference_one_session_s,omitempty"`
}

// Report is what one bench run writes.
type Report struct {
	Date    string `json:"date"`
	Machine string `json:"machine"`
	Reps    int    `json:"repetitions"`
	Rows    []Row  `json:"rows"`
}

func main() {
	hostsFlag := flag.String("hosts", "5,20,50", "host counts for the fan-out workload")
	pushHosts := flag.String("push-hosts", "5,20", "host counts for the 50 MiB file push")
	reps := flag.Int("reps", 3, "repetitions of each kinstall and reference measurement (median)")
	ansibleReps := flag.Int("ansible-reps", 1, "repetitions of each ansible measurement (median)")
	noAnsible := flag.Bool("no-ansible", false, "skip ansible-playbook")
	ansibleRoleHosts := flag.Int("ansible-role-max-hosts", 5, "largest host count for ansible's 20-file role (53 s at 5 hosts here; it grows linearly)")
	out := flag.String("out", "test/bench/results/latest.json", "JSON results")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (go tool pprof)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	if _, err := exec.LookPath("ansible-playbook"); err != nil && !*noAnsible {
		fmt.Fprintln(os.Stderr, "ansible-playbook not found: apt-get install ansible-core, or run with -no-ansible")
		os.Exit(2)
	}
	ctx := context.Background()
	rep := Report{Date: time.Now().UTC().Format(time.RFC3339), Reps: *reps,
		Machine: fmt.Sprintf("%d cores, %s, %s", runtime.NumCPU(), memTotal(), runtime.GOOS+"/"+runtime.GOARCH)}
	cfg := config{reps: *reps, ansibleReps: *ansibleReps, ansible: !*noAnsible, commands: 20, ansibleRoleMaxHosts: *ansibleRoleHosts}
	for _, n := range ints(*hostsFlag) {
		rows, err := runHosts(ctx, cfg, n, contains(ints(*pushHosts), n))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		rep.Rows = append(rep.Rows, rows...)
		printTable(os.Stdout, rep.Rows[len(rep.Rows)-len(rows):])
	}
	sort.SliceStable(rep.Rows, func(i, j int) bool { return rep.Rows[i].Workload < rep.Rows[j].Workload })
	fmt.Println()
	printTable(os.Stdout, rep.Rows)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		} else {
			fmt.Println("results:", *out)
		}
	}
}

func printTable(w *os.File, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\thosts\tansible s\tansible forks=N s\tkinstall s\tref 1 session/cmd s\tref 1 session/host s\tansible/kinstall\tkinstall/ref best\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t\n", r.Workload, r.Hosts, secs(r.Ansible), secs(r.AnsibleN), r.Kinstall,
			secs(r.RefPerCmd), secs(r.RefOne), ratio(r.Ansible, r.Kinstall), ratio(r.Kinstall, r.RefOne))
	}
	_ = tw.Flush()
}

func secs(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", s)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", a/b)
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func contains(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) > 1 {
		kb, _ := strconv.Atoi(f[1])
		return fmt.Sprintf("%d GiB", (kb+512*1024)/1024/1024)
	}
	return "?"
}
