//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashAPIServer SIGKILLs the cluster's API server and starts it again
// after down (e2e/cluster/restart-daemon.sh); it returns once the API
// answers again.
func crashAPIServer(t *testing.T, down time.Duration) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("restarting the API server needs root")
	}
	cmd := exec.Command("cluster/restart-daemon.sh", "kube-apiserver", "--kill", "--down", down.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restart-daemon.sh: %v\n%s", err, out)
	}
	t.Logf("restart-daemon.sh:\n%s", out)
}

// rawLogLines are client-go's own log lines (E1130 12:01:07 ...) that must
// not reach the user's terminal at the default verbosity.
func rawLogLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "E1") || strings.HasPrefix(l, "W1") || strings.HasPrefix(l, "I1") {
			out = append(out, l)
		}
	}
	return out
}

// requestsIn are the HTTP request paths in a capture file, which must read
// from end to end.
func requestsIn(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range readCapture(t, data) {
		if bytes.HasPrefix(p.payload, []byte("GET ")) {
			out = append(out, strings.Fields(string(p.payload))[1])
		}
	}
	return out
}

// TestCaptureResumesAcrossAPIServerCrash: pod and node captures with
// traffic running, the API server SIGKILLed and down for 10s. The plugin
// stays up and resumes; the file holds packets from before and after the
// gap and reads from end to end; the summary names one gap; nothing is
// left behind; no raw log line reaches stderr.
func TestCaptureResumesAcrossAPIServerCrash(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	dir := t.TempDir()
	for _, tt := range []struct {
		name, target string
		args         []string
	}{
		{"pod", "pod/web", []string{"-f", "tcp port 8080"}},
		{"node", "node/" + c.node, []string{"--interface", "cbr0", "-f", fmt.Sprintf("host %s and tcp port 8080", pod.Status.PodIP)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, tt.name+".pcap")
			args := append([]string{"netdiag", "capture", tt.target, "-n", ns, "-w", file}, tt.args...)
			capture := c.start(t, args...)
			capture.stderr.waitFor(t, readyText, 90*time.Second)
			httpGets(t, pod.Status.PodIP, "/before-1", "/before-2")
			time.Sleep(500 * time.Millisecond)

			crashAPIServer(t, 10*time.Second)
			capture.stderr.waitFor(t, "resumed the capture on "+tt.target, 60*time.Second)
			httpGets(t, pod.Status.PodIP, "/after-1", "/after-2")
			time.Sleep(time.Second)
			if err := capture.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if code := capture.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("exit code %d after Ctrl-C, want 0", code)
			}
			stderr := capture.stderr.String()
			if got := strings.Join(requestsIn(t, file), ","); got != "/before-1,/before-2,/after-1,/after-2" {
				t.Errorf("requests in the file: %s, want both before and after the gap", got)
			}
			for _, want := range []string{"broke at ", "reconnecting for up to ", "packets in between were not captured", ", 1 gap in the stream ("} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if raw := rawLogLines(stderr); len(raw) > 0 {
				t.Errorf("raw log lines on stderr: %q", raw)
			}
			if pods := c.netdiagPods(t); len(pods) > 0 {
				t.Errorf("node-debug pod left: %s/%s", pods[0].Namespace, pods[0].Name)
			}
			if h := helperCaptures(t); len(h) > 0 {
				t.Errorf("helper captures still running: %v", h)
			}
		})
	}
}

// TestCaptureGivesUpAfterReconnectTimeout: the API server stays away longer
// than --reconnect-timeout 5s: one clear error, a readable file, and no
// helper or node pod left once the API is back.
func TestCaptureGivesUpAfterReconnectTimeout(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	dir := t.TempDir()
	for _, tt := range []struct {
		name, target string
		args         []string
	}{
		{"pod", "pod/web", []string{"-f", "tcp port 8080"}},
		{"node", "node/" + c.node, []string{"--interface", "cbr0", "-f", fmt.Sprintf("host %s and tcp port 8080", pod.Status.PodIP)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, tt.name+".pcap")
			args := append([]string{"netdiag", "capture", tt.target, "-n", ns, "-w", file, "--reconnect-timeout", "5s"}, tt.args...)
			capture := c.start(t, args...)
			capture.stderr.waitFor(t, readyText, 90*time.Second)
			httpGets(t, pod.Status.PodIP, "/before-1")
			time.Sleep(500 * time.Millisecond)

			crashAPIServer(t, 15*time.Second)
			if code := capture.wait(t, 60*time.Second); code == 0 {
				t.Fatalf("exit code 0 after the API stayed away past --reconnect-timeout")
			}
			stderr := capture.stderr.String()
			if !strings.Contains(stderr, "could not be resumed within --reconnect-timeout 5s") {
				t.Errorf("stderr lacks the give-up sentence")
			}
			if got := strings.Join(requestsIn(t, file), ","); got != "/before-1" {
				t.Errorf("requests in the file: %s, want /before-1", got)
			}
			if raw := rawLogLines(stderr); len(raw) > 0 {
				t.Errorf("raw log lines on stderr: %q", raw)
			}
			// The API is back: nothing of this capture may stay.
			deadline := time.Now().Add(60 * time.Second)
			for len(c.netdiagPods(t)) > 0 || len(helperCaptures(t)) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("left after the API came back: pods %d, helper captures %v", len(c.netdiagPods(t)), helperCaptures(t))
				}
				time.Sleep(time.Second)
			}
		})
	}
}
