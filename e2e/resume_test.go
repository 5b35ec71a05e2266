//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// crashAPIServer SIGKILLs the cluster's API server and starts it again
// after down (e2e/cluster/restart-daemon.sh); it returns once the API
// answers again.
func crashAPIServer(t *testing.T, c *cluster, down time.Duration) {
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
	t.Cleanup(func() { c.settled(t) })
}

// settled waits until the cluster works again after an API server crash,
// for the tests that follow: the controllers and the kubelet reconnect
// with backoff, so a new namespace gets its ServiceAccount and a new pod
// runs only some time after the API answers.
func (c *cluster) settled(t *testing.T) {
	t.Helper()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name := "netdiag-e2e-settle-" + rand.String(5)
	defer func() {
		_ = c.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}()
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if _, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); err != nil {
			_, _ = c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return false, nil
		}
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err == nil {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "settle", Namespace: name},
			Spec: corev1.PodSpec{NodeName: c.node, TerminationGracePeriodSeconds: ptr.To[int64](0), Containers: []corev1.Container{{
				Name: "web", Image: webImage, ImagePullPolicy: corev1.PullNever, Command: []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
			}}},
		}
		if _, err = c.client.CoreV1().Pods(name).Create(ctx, pod, metav1.CreateOptions{}); err == nil {
			err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
				p, err := c.client.CoreV1().Pods(name).Get(ctx, "settle", metav1.GetOptions{})
				return err == nil && p.Status.Phase == corev1.PodRunning, nil
			})
		}
	}
	if err != nil {
		t.Fatalf("the cluster did not settle within 3 minutes of the API server crash: %v", err)
	}
	t.Logf("the cluster settled %s after the API server came back", time.Since(begin).Round(time.Second))
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

// crashTarget is a capture the API server crash tests run: of the pod, or
// of its traffic on the node's bridge.
type crashTarget struct {
	name, target string
	args         []string
}

func crashTargets(c *cluster, pod *corev1.Pod) []crashTarget {
	return []crashTarget{
		{"pod", "pod/" + pod.Name, []string{"-f", "tcp port 8080"}},
		{"node", "node/" + c.node, []string{"--interface", "cbr0", "-f", fmt.Sprintf("host %s and tcp port 8080", pod.Status.PodIP)}},
	}
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
	for _, tt := range crashTargets(c, pod) {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, tt.name+".pcap")
			args := append([]string{"netdiag", "capture", tt.target, "-n", ns, "-w", file}, tt.args...)
			capture := c.start(t, args...)
			capture.stderr.waitFor(t, readyText, 90*time.Second)
			httpGets(t, pod.Status.PodIP, "/before-1", "/before-2")
			time.Sleep(500 * time.Millisecond)

			crashAPIServer(t, c, 10*time.Second)
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
	for _, tt := range crashTargets(c, pod) {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, tt.name+".pcap")
			args := append([]string{"netdiag", "capture", tt.target, "-n", ns, "-w", file, "--reconnect-timeout", "5s"}, tt.args...)
			capture := c.start(t, args...)
			capture.stderr.waitFor(t, readyText, 90*time.Second)
			httpGets(t, pod.Status.PodIP, "/before-1")
			time.Sleep(500 * time.Millisecond)

			crashAPIServer(t, c, 15*time.Second)
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
