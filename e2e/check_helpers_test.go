//go:build e2e

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
)

// checkReport is the plugin's -o json output.
type checkReport struct {
	Findings []struct {
		Node     string         `json:"node"`
		Check    string         `json:"check"`
		Severity string         `json:"severity"`
		Subject  string         `json:"subject"`
		Message  string         `json:"message"`
		Data     map[string]any `json:"data"`
	} `json:"findings"`
	Actions []struct {
		Node   string         `json:"node"`
		Action string         `json:"action"`
		Target string         `json:"target"`
		Result string         `json:"result"`
		Data   map[string]any `json:"data"`
	} `json:"actions"`
	Errors []struct {
		Node, Error string
	} `json:"errors"`
}

func parseReport(t *testing.T, r result) checkReport {
	t.Helper()
	var rep checkReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, r.stdout)
	}
	return rep
}

// findings returns the findings of check with severity (any when "").
func (r checkReport) find(check, severity string) []int {
	var out []int
	for i, f := range r.Findings {
		if f.Check == check && (severity == "" || f.Severity == severity) {
			out = append(out, i)
		}
	}
	return out
}

// requireRoot skips tests that change the node when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing the node needs root")
	}
}

// sh runs a command on this machine (the node), failing the test on error.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// clusterEnv reads one key of the cluster's env file.
func clusterEnv(t *testing.T, key string) string {
	t.Helper()
	dir := os.Getenv("NETDIAG_CLUSTER_DIR")
	if dir == "" {
		dir = "/var/lib/netdiag-cluster"
	}
	env, err := readEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	return env[key]
}

// podPIDs finds the host PIDs of a pod by its UID in /proc/*/cgroup.
func podPIDs(t *testing.T, uid string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "pod"+uid) || strings.Contains(string(b), "pod"+strings.ReplaceAll(uid, "-", "_")) {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no process of pod UID %s in /proc", uid)
	}
	return pids
}

// podCgroupDirs returns the pod's cgroup directory under each mounted v1
// hierarchy that has it, from the cgroup file of one of its processes.
func podCgroupDirs(t *testing.T, pid int, uid string) []string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		path := parts[2]
		i := strings.Index(path, "/pod"+uid)
		if i < 0 {
			continue
		}
		podPath := path[:i+len("/pod"+uid)]
		ctrl := strings.TrimPrefix(parts[1], "name=")
		dir := filepath.Join("/sys/fs/cgroup", ctrl, podPath)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no cgroup directory of pod %s found from /proc/%d/cgroup", uid, pid)
	}
	return dirs
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// alive says whether a PID runs (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return !alive(pid)
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeInt(path string, n int) error {
	return os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o644)
}

// startStaleListener starts a busybox
// nc listening on port in the pod's netns and in a fake container cgroup
// (a new child of the pod's cgroups, removed at the end) that no runtime
// knows. It returns the PID, the fake container ID and a channel closed
// when the process exits.
func startStaleListener(t *testing.T, uid string, port int) (int, string, <-chan struct{}) {
	t.Helper()
	podPID := podPIDs(t, uid)[0]
	dirs := podCgroupDirs(t, podPID, uid)
	cid := randomHex(t, 64)
	var made []string
	t.Cleanup(func() {
		for _, d := range made {
			_ = os.Remove(d)
		}
	})
	for _, d := range dirs {
		dir := filepath.Join(d, cid)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		made = append(made, dir)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				_ = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
		}
	}
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(podPID), "-n", "busybox", "nc", "-l", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	pid := cmd.Process.Pid
	// Registered after the cgroup removal: runs before it.
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-waited
	})
	moved := 0
	for _, d := range made {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err == nil {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("could not move the process into any fake container cgroup")
	}
	hexPort := strings.ToUpper(strconv.FormatInt(int64(port), 16))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(sh(t, "nsenter", "-t", strconv.Itoa(podPID), "-n", "cat", "/proc/net/tcp", "/proc/net/tcp6"), ":"+hexPort+" ") {
		if time.Now().After(deadline) {
			t.Fatalf("nc is not listening on %d", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return pid, cid, waited
}

// addConntrackEntries adds n UDP entries (TEST-NET-2 addresses, no packet is
// sent) to this machine's conntrack table, with a 300 s timeout, and
// deletes them when the test ends.
func addConntrackEntries(t *testing.T, n int) {
	t.Helper()
	c, err := conntrack.Dial(nil)
	if err != nil {
		t.Fatalf("conntrack netlink: %v", err)
	}
	var made []conntrack.Flow
	t.Cleanup(func() {
		for _, f := range made {
			_ = c.Delete(f)
		}
		c.Close()
	})
	src, dst := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	for i := range n {
		f := conntrack.NewFlow(17, 0, src, dst, uint16(10000+i%50000), uint16(40000+i/50000), 300, 0)
		if err := c.Create(f); err != nil {
			t.Fatalf("creating conntrack entry %d: %v", i, err)
		}
		made = append(made, f)
	}
}
