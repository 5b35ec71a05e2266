//go:build e2e

package e2e

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
	pid, _, waited := startStaleListener(t, string(pod.UID), 8082)

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
