//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rotatedFiles lists dir, failing on any temporary file left.
func rotatedFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// checkFile reads one file of the ring: a complete pcap of mode 0600 with
// TCP packets of port 8080 (tshark agrees, when it is installed); it
// returns the packet count.
func checkFile(t *testing.T, path string) int {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pkts := readCapture(t, data)
	if len(pkts) == 0 {
		t.Errorf("%s holds no packet", path)
	}
	if tshark, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "frame.number").Output()
		if n := len(strings.Fields(string(out))); err != nil || n != len(pkts) {
			t.Errorf("tshark -r %s: %v, %d frames, want %d", path, err, n, len(pkts))
		}
	}
	return len(pkts)
}

// TestCaptureRotate: -C/-W keep a ring of N complete files; -G with a %
// in -w names them by time.
func TestCaptureRotate(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")

	t.Run("-C 2kB -W 3", func(t *testing.T) {
		dir := t.TempDir()
		capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "-f", "tcp port 8080", "-C", "2kB", "-W", "3", "-w", filepath.Join(dir, "web.pcap"))
		capture.stderr.waitFor(t, readyText, 90*time.Second)
		for i := 0; i < 20; i++ {
			httpGets(t, pod.Status.PodIP, fmt.Sprintf("/ring-%d", i))
		}
		time.Sleep(time.Second)
		if err := capture.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := capture.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d after Ctrl-C, want 0", code)
		}
		names := rotatedFiles(t, dir)
		if strings.Join(names, " ") != "web.pcap0 web.pcap1 web.pcap2" {
			t.Fatalf("files %v, want web.pcap0 web.pcap1 web.pcap2", names)
		}
		for _, n := range names {
			path := filepath.Join(dir, n)
			checkFile(t, path)
			// A file passes -C by one packet at most (< 2000+1500).
			if st, _ := os.Stat(path); st.Size() > 3500 {
				t.Errorf("%s is %d bytes, past -C 2kB by more than a packet", n, st.Size())
			}
		}
		if s := capture.stderr.String(); !strings.Contains(s, "→ 3 files, ") || !strings.Contains(s, "older files dropped, -W 3") {
			t.Errorf("summary does not name the ring:\n%s", s)
		}
	})

	t.Run("-G 1 with a time in the name", func(t *testing.T) {
		dir := t.TempDir()
		capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "-f", "tcp port 8080", "-G", "1", "-w", filepath.Join(dir, "web-%H%M%S.pcap"))
		capture.stderr.waitFor(t, readyText, 90*time.Second)
		for i := 0; i < 8; i++ {
			httpGets(t, pod.Status.PodIP, fmt.Sprintf("/time-%d", i))
			time.Sleep(500 * time.Millisecond)
		}
		if err := capture.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := capture.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d after Ctrl-C, want 0", code)
		}
		names := rotatedFiles(t, dir)
		if len(names) < 3 {
			t.Fatalf("files %v after 4s of traffic with -G 1, want at least 3", names)
		}
		total := 0
		for _, n := range names {
			if len(n) != len("web-150405.pcap") || !strings.HasPrefix(n, "web-") {
				t.Errorf("file %s is not named web-HHMMSS.pcap", n)
			}
			total += checkFile(t, filepath.Join(dir, n))
		}
		if !strings.Contains(capture.stderr.String(), fmt.Sprintf("captured %d packets", total)) {
			t.Errorf("the files hold %d packets, not what the summary says:\n%s", total, capture.stderr.String())
		}
	})
}
