//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLifecycleWaitingContainerReused: a capture whose helper image cannot
// be pulled leaves one Waiting netdiag container; a retry reuses it instead
// of adding another, and cleanup lists it with its state.
func TestLifecycleWaitingContainerReused(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	c.webPod(t, ns, "web")
	const missing = "localhost/does-not-exist:v0"
	for i := 0; i < 2; i++ {
		r := c.run(t, time.Minute, "netdiag", "capture", "pod/web", "-n", ns, "--image", missing, "--image-pull-policy", "Never",
			"--timeout", "15s", "-w", filepath.Join(t.TempDir(), "x.pcap"))
		// The kubelet reports ErrImageNeverPull, or is still at
		// ContainerCreating when --timeout ends: a failure either way.
		if r.code == 0 {
			t.Fatalf("capture %d with a missing image: exit 0, want a failure", i+1)
		}
	}
	var names []string
	for _, ec := range c.getPod(t, ns, "web").Spec.EphemeralContainers {
		if strings.HasPrefix(ec.Name, "netdiag-") {
			names = append(names, ec.Name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("netdiag ephemeral containers after two failed captures: %v, want exactly one", names)
	}
	r := c.run(t, time.Minute, "netdiag", "cleanup", "-n", ns)
	want := "pod " + ns + "/web: netdiag container " + names[0] + " (image " + missing + "): waiting ("
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("cleanup: exit %d, stdout %q; want a line starting %q", r.code, r.stdout, want)
	}
}

// nodePodOf waits until the namespace has a node-debug pod that is Ready
// (its readiness probe sees the plugin's keepalive or capture), and returns
// it.
func nodePodOf(t *testing.T, c *cluster, ns string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		l, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-netdiag"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range l.Items {
			p := &l.Items[i]
			for _, cond := range p.Status.Conditions {
				if p.Status.Phase == corev1.PodRunning && cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Ready node-debug pod in %s after 90s", ns)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopAndCheckGone sends Ctrl-C to a node capture, wants exit 0, and its
// node-debug pod deleted.
func stopAndCheckGone(t *testing.T, c *cluster, capture *background, ns, pod string) {
	t.Helper()
	capture.interrupt(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.client.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-debug pod %s/%s still there 30s after the capture ended", ns, pod)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLifecycleNodeCaptureDeadline: a node capture bounded by --duration
// gets a pod deadline past that duration (the old fixed 600s would cut a
// 20m capture); Ctrl-C still ends it early and deletes the pod.
func TestLifecycleNodeCaptureDeadline(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	capture := c.start(t, "netdiag", "capture", "node/"+c.node, "-n", ns, "--interface", "lo", "--duration", "20m",
		"-w", filepath.Join(t.TempDir(), "d.pcap"))
	capture.stderr.waitFor(t, readyText, 90*time.Second)
	pod := nodePodOf(t, c, ns)
	if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d <= 1200 {
		t.Errorf("node pod of a --duration 20m capture: activeDeadlineSeconds %v, want more than 1200", ptrString(d))
	}
	stopAndCheckGone(t, c, capture, ns, pod.Name)
}

// TestLifecycleOpenEndedNodeCaptureAndCleanup: a node capture until Ctrl-C
// has no pod deadline (its keepalive holds the pod), and a cleanup while it
// runs leaves it alone and reports it live.
func TestLifecycleOpenEndedNodeCaptureAndCleanup(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	capture := c.start(t, "netdiag", "capture", "node/"+c.node, "-n", ns, "--interface", "lo",
		"-w", filepath.Join(t.TempDir(), "o.pcap"))
	capture.stderr.waitFor(t, readyText, 90*time.Second)
	pod := nodePodOf(t, c, ns)
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil {
		t.Errorf("node pod of an open-ended capture: activeDeadlineSeconds %d, want none", *d)
	}

	r := c.run(t, time.Minute, "netdiag", "cleanup", "-n", ns)
	want := "left pod " + ns + "/" + pod.Name + " (node " + c.node + "): live, running its helper"
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("cleanup during a live capture: exit %d, stdout %q; want %q", r.code, r.stdout, want)
	}
	// The capture survives: still running, its pod still there and not
	// being deleted, a few seconds later.
	time.Sleep(3 * time.Second)
	select {
	case err := <-capture.done:
		t.Fatalf("the capture ended after cleanup (%v); stderr:\n%s", err, capture.stderr.String())
	default:
	}
	p, err := c.client.CoreV1().Pods(ns).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("the live node pod after cleanup: %v (err %v), want it Running", podState(p), err)
	}
	stopAndCheckGone(t, c, capture, ns, pod.Name)
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strings.TrimSpace(time.Duration(*p * int64(time.Second)).String())
}

func podState(p *corev1.Pod) string {
	if p == nil {
		return "none"
	}
	s := string(p.Status.Phase)
	if p.DeletionTimestamp != nil {
		s += ", being deleted"
	}
	return s
}

// TestLifecycleKilledPluginNodePodEnds: an open-ended node capture whose
// plugin is killed (no Ctrl-C, no pod deletion) has no deadline; its pod
// still ends by itself about a minute after the last heartbeat: the capture
// stops (--heartbeat), then the keepalive, then the idle entrypoint.
func TestLifecycleKilledPluginNodePodEnds(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	capture := c.start(t, "netdiag", "capture", "node/"+c.node, "-n", ns, "--interface", "lo",
		"-w", filepath.Join(t.TempDir(), "k.pcap"))
	capture.stderr.waitFor(t, readyText, 90*time.Second)
	pod := nodePodOf(t, c, ns)
	t.Cleanup(func() {
		_ = c.client.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
	})
	if err := capture.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = capture.wait(t, 10*time.Second)
	const limit = 100 * time.Second
	for {
		p, err := c.client.CoreV1().Pods(ns).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading the node pod: %v (the killed plugin cannot have deleted it)", err)
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			t.Logf("the node pod of the killed plugin ended %s after the kill (phase %s)", time.Since(killed).Round(time.Second), p.Status.Phase)
			break
		}
		if time.Since(killed) > limit {
			t.Fatalf("the node pod of a killed plugin still %s %s after the kill, want it ended within about a minute", podState(p), limit)
		}
		time.Sleep(time.Second)
	}
	if pids := helperCaptures(t); len(pids) > 0 {
		t.Errorf("helper captures still running after the node pod ended: %v", pids)
	}
}
