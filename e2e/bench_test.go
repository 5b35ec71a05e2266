//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// BenchmarkNodeCheck measures the wall time of `kubectl netdiag node check
// NODE` (create the node-debug pod, wait, exec every check, delete it)
// next to the reference `kubectl debug node/NODE --image=HELPER --attach --
// /netdiag-helper version` (create and run one pod, no checks; its pod is
// deleted after the timing). Run with:
//
//	go test -tags e2e -bench NodeCheck -run '^$' ./e2e/
func BenchmarkNodeCheck(b *testing.B) {
	c, ns, image := benchSetup(b)
	ctx := context.Background()
	timed := func(args ...string) time.Duration {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		start := time.Now()
		err := c.kubectlCmd(cctx, args...).Run()
		d := time.Since(start)
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
			err = nil // a check reported fail: still a complete run
		}
		if err != nil {
			b.Fatalf("kubectl %v: %v", args, err)
		}
		return d
	}
	var check, ref time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		check += timed("netdiag", "node", "check", c.node, "-n", ns)
		ref += timed("debug", "node/"+c.node, "-n", ns, "--image="+image, "--attach", "--quiet", "--", "/netdiag-helper", "version")
		b.StopTimer()
		_ = c.client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(check.Seconds()/n, "check-s/op")
	b.ReportMetric(ref.Seconds()/n, "debug-s/op")
	b.ReportMetric(check.Seconds()/ref.Seconds(), "check/debug")
}

// benchSetup loads the cluster and makes a namespace of the benchmark's
// own (deleted after it); it returns them and the plugin's helper image.
func benchSetup(b *testing.B) (c *cluster, ns, helperImage string) {
	b.Helper()
	clusterOnce.Do(func() { theCluster, clusterErr = loadCluster() })
	if clusterErr != nil {
		b.Skipf("no local cluster: %v", clusterErr)
	}
	c = theCluster
	ctx := context.Background()
	ns = "netdiag-bench-" + rand.String(5)
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	out, err := c.kubectlCmd(ctx, "netdiag", "version", "-o", "json").Output()
	if err != nil {
		b.Fatal(err)
	}
	var v struct {
		HelperImage string `json:"helperImage"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		b.Fatal(err)
	}
	return c, ns, v.HelperImage
}
