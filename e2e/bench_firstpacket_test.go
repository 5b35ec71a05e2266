//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// firstPacket runs kubectl with args and returns how long it took until the
// bytes of a first whole pcap packet (global header and one record
// header) were on its stdout. The command is then stopped.
func firstPacket(tb testing.TB, c *cluster, args ...string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.kubectlCmd(ctx, args...)
	// A stdin that stays open: the reference's helper (kubectl debug -i)
	// stops when its input ends. An *os.File is handed to the child as
	// it is, so Wait does not wait for a copy of it.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer stdinR.Close()
	defer stdinW.Close()
	cmd.Stdin = stdinR
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 24+16)
	_, err = io.ReadFull(out, buf)
	d := time.Since(start)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		tb.Fatalf("kubectl %v: no packet on stdout: %v", args, err)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	go func() { _, _ = io.Copy(io.Discard, out) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return d
}

// BenchmarkFirstPacket measures the time from the command to the first
// captured packet's bytes on stdout (-w -), on a pod that has run for a
// while with the image present: a fresh inject (a new pod each time), a
// reused netdiag container, and the reference `kubectl debug
// --profile=netadmin` running a capture in a new ephemeral container of the
// same image. Traffic runs all along. Run with:
//
//	go test -tags e2e -bench FirstPacket -run '^$' -benchtime 5x ./e2e/
func BenchmarkFirstPacket(b *testing.B) {
	c, ns, image := benchSetup(b)

	// Pods that have run for a while, with traffic to all of them.
	pods := make([]*corev1.Pod, 2*b.N+1)
	for i := range pods {
		pods[i] = c.webPod(b, ns, fmt.Sprintf("web-%d", i))
	}
	time.Sleep(3 * time.Second)
	stop := make(chan struct{})
	defer close(stop)
	var sent atomic.Int64
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, p := range pods {
				if resp, err := client.Get("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					sent.Add(1)
				}
			}
		}
	}()
	capture := func(pod string) []string {
		return []string{"netdiag", "capture", "pod/" + pod, "-n", ns, "-f", "tcp port 8080", "-w", "-"}
	}
	// The reused container: injected once before the timing.
	firstPacket(b, c, capture(pods[0].Name)...)

	var fresh, reused, ref time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fresh += firstPacket(b, c, capture(pods[1+2*i].Name)...)
		reused += firstPacket(b, c, capture(pods[0].Name)...)
		ref += firstPacket(b, c, "debug", "pod/"+pods[2+2*i].Name, "-n", ns, "--image="+image, "--profile=netadmin",
			"--target=web", "--attach", "-i", "--quiet", "--", "/netdiag-helper", "capture", "-f", "tcp port 8080", "-w", "-")
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(fresh.Seconds()/n, "fresh-s/op")
	b.ReportMetric(reused.Seconds()/n, "reused-s/op")
	b.ReportMetric(ref.Seconds()/n, "debug-s/op")
	b.ReportMetric(fresh.Seconds()/ref.Seconds(), "fresh/debug")
	b.ReportMetric(reused.Seconds()/ref.Seconds(), "reused/debug")
	if sent.Load() == 0 {
		b.Fatal("no traffic reached the pods")
	}
}
