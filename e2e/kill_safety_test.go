//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startStaleListener starts, the way TestCheckStaleProcess does, a busybox
// nc listening on port in the pod's netns and in a fake container cgroup
// (a new child of the pod's cgroups, removed at the end) that no runtime
// knows. It returns the PID and a channel closed when the process exits.
func startStaleListener(t *testing.T, uid string, port int) (int, <-chan struct{}) {
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
	return pid, waited
}

// stale --kill --yes with no runtime reachable (a --runtime-endpoint that
// does not exist) refuses: the stale-looking process is not signalled, the
// exit code is not 0, and the output says why.
func TestKillSafetyNoRuntimeRefuses(t *testing.T) {
	c := getCluster(t)
	requireRoot(t)
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox not on this machine")
	}
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	pid, waited := startStaleListener(t, string(pod.UID), 8082)

	missing := "unix:///run/netdiag-e2e-no-such-runtime/containerd.sock"
	r := c.run(t, 2*time.Minute, "netdiag", "stale", "pod/web", "-n", ns, "--port", "8082", "--kill", "--yes", "-o", "json", "--runtime-endpoint", missing)
	if r.code == 0 {
		t.Errorf("stale --kill without a runtime: exit 0\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout+r.stderr, "runtime not reachable: cannot tell stale from restarted") {
		t.Errorf("the output does not say the runtime was not reachable:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "--kill refused") {
		t.Errorf("stderr does not say --kill was refused: %s", r.stderr)
	}
	// Give a signal, had one been sent, time to land.
	select {
	case <-waited:
		t.Fatalf("pid %d was ended although no runtime was reachable", pid)
	case <-time.After(2 * time.Second):
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	if strings.Contains(r.stdout, `"result": "done"`) || strings.Contains(r.stdout, `"result":"done"`) {
		t.Errorf("an action reports done:\n%s", r.stdout)
	}
	c.noNodePodsLeft(t, ns)
}
