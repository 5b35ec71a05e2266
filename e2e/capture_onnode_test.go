//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// restrictedWebPod starts the busybox httpd on port 8080 as a pod that the
// "restricted" Pod Security level admits: non-root, no privilege
// escalation, every capability dropped, the runtime's seccomp profile.
func (c *cluster) restrictedWebPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                      c.node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65534),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           webImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if _, err := c.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c.waitRunning(t, ns, name)
}

// enforce labels the namespace with a Pod Security level to enforce.
func (c *cluster) enforce(t *testing.T, ns, level string) {
	t.Helper()
	n, err := c.client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels["pod-security.kubernetes.io/enforce"] = level
	if _, err := c.client.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestCaptureOnNodeRestricted: in a namespace that enforces "restricted",
// the netdiag container is refused and the error says to use --on-node;
// --on-node without a namespace for its node pod says to pass
// --node-namespace; with one, the pod's own traffic is captured on its
// host-side veth, and nothing is left behind.
func TestCaptureOnNodeRestricted(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	c.enforce(t, ns, "restricted")
	nodeNS := c.namespace(t)
	pod := c.restrictedWebPod(t, ns, "web")
	dir := t.TempDir()
	file := filepath.Join(dir, "web.pcap")

	r := c.run(t, time.Minute, "netdiag", "capture", "pod/web", "-n", ns, "--duration", "5s", "-w", file)
	if r.code != 1 || !strings.Contains(r.stderr, `enforces the "restricted" Pod Security level`) || !strings.Contains(r.stderr, "capture with --on-node instead: it captures the pod's traffic on its host-side veth") {
		t.Errorf("capture in a restricted namespace: exit %d, stderr %q; want 1 and advice naming --on-node", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "pass --node-namespace with a namespace that admits privileged pods") {
		t.Errorf("the advice does not say the node pod needs another namespace: %q", r.stderr)
	}

	r = c.run(t, time.Minute, "netdiag", "capture", "pod/web", "-n", ns, "--on-node", "--duration", "5s", "-w", file)
	if want := `namespace "` + ns + `" (the pod's, where --on-node runs its node-debug pod unless --node-namespace names another) enforces the "restricted" Pod Security level`; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("--on-node without --node-namespace: exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("%s was written by a refused capture", file)
	}

	capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "--on-node", "--node-namespace", nodeNS, "-f", "tcp port 8080", "-w", file)
	capture.stderr.waitFor(t, readyText, 90*time.Second)
	paths := []string{"/onnode-1", "/onnode-2", "/onnode-3"}
	noise(pod.Status.PodIP)
	httpGets(t, pod.Status.PodIP, paths...)
	time.Sleep(time.Second)
	capture.interrupt(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var requests []string
	for _, p := range readCapture(t, data) {
		if p.tcp.SrcPort != 8080 && p.tcp.DstPort != 8080 {
			t.Errorf("packet %d→%d outside the filter", p.tcp.SrcPort, p.tcp.DstPort)
		}
		if bytes.HasPrefix(p.payload, []byte("GET ")) {
			requests = append(requests, strings.Fields(string(p.payload))[1])
		}
	}
	if strings.Join(requests, ",") != strings.Join(paths, ",") {
		t.Errorf("requests on the pod's veth: %v, want %v", requests, paths)
	}
	stderr := capture.stderr.String()
	for _, want := range []string{"the pod's host-side veth on node/" + c.node, "directions are reversed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "\x1b[K") {
		t.Errorf("a progress line on a stderr that is not a terminal:\n%q", stderr)
	}
	if p := c.getPod(t, ns, "web"); len(p.Spec.EphemeralContainers) != 0 {
		t.Errorf("--on-node added containers to the pod: %v", p.Spec.EphemeralContainers)
	}
	if pods := c.netdiagPods(t); len(pods) > 0 {
		t.Errorf("node-debug pod left after the capture: %s/%s", pods[0].Namespace, pods[0].Name)
	}
}
