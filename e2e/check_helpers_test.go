//go:build e2e

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
