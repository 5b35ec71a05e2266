//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// TestHealthyNodeAfterAll is run by make e2e after every other e2e test, in
// a go test run of its own: on the node the other tests induced faults on,
// with the demo's workload (a web server and a client polling it) and
// nothing induced, `node check` must read healthy: exit 0, no warn and no
// fail, and a summary line that says so. A tool that cries wolf on a healthy
// node is not read; tests that leave the node unhealthy fail here.
func TestHealthyNodeAfterAll(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	web := c.webPod(t, ns, "web")
	client := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      c.node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name:            "client",
				Image:           webImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", fmt.Sprintf("while true; do wget -qO /dev/null http://%s:8080/; sleep 1; done", web.Status.PodIP)},
			}},
		},
	}
	if _, err := c.client.CoreV1().Pods(ns).Create(context.Background(), client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitRunning(t, ns, "client")
	// Pods of the namespaces the other tests deleted must be gone first:
	// a pod being torn down is not a healthy pod.
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + c.node})
		if err != nil {
			return false, nil
		}
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pods of deleted namespaces are still terminating: %v", err)
	}

	r := c.run(t, 2*time.Minute, "netdiag", "node", "check", c.node, "-n", ns)
	t.Logf("node check:\n%s", r.stdout)
	if r.code != 0 {
		t.Errorf("node check on a healthy node: exit %d, want 0", r.code)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[1] == "warn" || f[1] == "fail") {
			t.Errorf("healthy node, but: %s", line)
		}
	}
	if want := c.node + ": 7 checks, all ok"; !strings.Contains(r.stdout, want) {
		t.Errorf("no summary line %q", want)
	}
	// Nothing but the table: no raw client-go log lines (E1130 ...).
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "E1") || strings.HasPrefix(line, "W1") {
			t.Errorf("raw log line on stderr: %s", line)
		}
	}
	c.noNodePodsLeft(t, ns)
}
