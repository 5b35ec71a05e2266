//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestCleanupAfterKilledNodeCheck: a node check killed before it could
// delete its node-debug pod leaves the pod behind; cleanup deletes it.
func TestCleanupAfterKilledNodeCheck(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	check := c.start(t, "netdiag", "node", "check", c.node, "-n", ns)
	deadline := time.Now().Add(60 * time.Second)
	for len(c.netdiagPods(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the node check created no node-debug pod within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := check.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = check.wait(t, 10*time.Second)
	if len(c.netdiagPods(t)) == 0 {
		t.Fatal("the killed node check deleted its pod anyway: nothing for cleanup to do")
	}

	r := c.run(t, time.Minute, "netdiag", "cleanup", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would delete pod "+ns+"/netdiag-node-") {
		t.Fatalf("cleanup --dry-run: exit %d, stdout %q", r.code, r.stdout)
	}
	if len(c.netdiagPods(t)) == 0 {
		t.Fatal("cleanup --dry-run deleted the pod")
	}
	r = c.run(t, time.Minute, "netdiag", "cleanup")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted pod "+ns+"/netdiag-node-") {
		t.Fatalf("cleanup: exit %d, stdout %q", r.code, r.stdout)
	}
	deadline = time.Now().Add(30 * time.Second)
	for len(c.netdiagPods(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node-debug pods still there 30s after cleanup: %d", len(c.netdiagPods(t)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
