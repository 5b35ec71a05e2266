//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onlyFiles fails the test when dir holds anything but the names given.
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want only %v", dir, got, names)
	}
}

// TestCaptureFailureKeepsOldFile: a capture that fails before its first
// byte (the helper image cannot be had) leaves an existing -w file as it was,
// leaves no temporary file, and says what stays in the pod; a retry reuses
// the container that never started instead of adding another.
func TestCaptureFailureKeepsOldFile(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	c.webPod(t, ns, "web")
	dir := t.TempDir()
	old := filepath.Join(dir, "old.pcap")
	if err := os.WriteFile(old, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil {
		t.Fatal(err)
	}

	for run := 1; run <= 2; run++ {
		r := c.run(t, 90*time.Second, "netdiag", "capture", "pod/web", "-n", ns,
			"--image", "localhost/does-not-exist:v0", "--image-pull-policy", "Never", "--timeout", "20s", "-w", old)
		if r.code != 1 {
			t.Errorf("run %d: exit code %d, want 1", run, r.code)
		}
		for _, want := range []string{
			"the helper image localhost/does-not-exist:v0 is not on node",
			"stays in pod " + ns + "/web (Kubernetes cannot remove ephemeral containers); it never started and uses no resources; a retry reuses it",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("run %d: stderr %q does not contain %q", run, r.stderr, want)
			}
		}
		b, err := os.ReadFile(old)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "precious\n" {
			t.Errorf("run %d: old.pcap holds %q after a failed capture, want \"precious\\n\"", run, b)
		}
		fi, err := os.Lstat(old)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o644 {
			t.Errorf("run %d: old.pcap mode %v, want -rw-r--r--", run, fi.Mode())
		}
		onlyFiles(t, dir, "old.pcap")
	}
	if ecs := c.getPod(t, ns, "web").Spec.EphemeralContainers; len(ecs) != 1 {
		t.Errorf("pod has %d ephemeral containers after two failed captures, want 1 (the retry reuses it)", len(ecs))
	}
}

// TestCaptureReplacesSymlink: -w naming a symbolic link replaces the link
// with the capture (a regular file, mode 0600); the file it pointed to is
// never written.
func TestCaptureReplacesSymlink(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "target.pcap")
	if err := os.WriteFile(target, []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pcap")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}

	capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "-f", "tcp port 8080", "--count", "1", "-w", link)
	capture.stderr.waitFor(t, readyText, 90*time.Second)
	httpGets(t, pod.Status.PodIP, "/symlink")
	if code := capture.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if want := "→ " + link + "; stopped: --count reached"; !strings.Contains(capture.stderr.String(), want) {
		t.Errorf("stderr %q does not contain %q", capture.stderr.String(), want)
	}

	b, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(target)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "outside\n" || fi.Mode() != 0o644 {
		t.Errorf("the link's target was touched: %q, mode %v", b, fi.Mode())
	}
	fi, err = os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("-w %s: mode %v after the capture, want a regular file -rw-------", link, fi.Mode())
	}
	data, err := os.ReadFile(link)
	if err != nil {
		t.Fatal(err)
	}
	if pkts := readCapture(t, data); len(pkts) != 1 {
		t.Errorf("captured %d packets, want 1 (--count 1)", len(pkts))
	}
	onlyFiles(t, dir, "link.pcap")
	onlyFiles(t, outside, "target.pcap")
}
