//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// progressRe is one rendering of the progress line.
var progressRe = regexp.MustCompile(`\r\x1b\[K(\d+) packets, [^\r\n]*, (\d+) kernel drops, \d+ pkt/s, [^\r\n]*/s, (\S+) elapsed`)

// TestCaptureProgressOnATerminal runs a capture under a pseudo-terminal
// (util-linux script): the progress line is redrawn about once a second
// and erased before the summary.
func TestCaptureProgressOnATerminal(t *testing.T) {
	c := getCluster(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) (util-linux) to run the plugin under a pseudo-terminal")
	}
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	file := filepath.Join(t.TempDir(), "web.pcap")
	args := []string{c.kubectl, "netdiag", "capture", "pod/web", "-n", ns, "-f", "tcp port 8080", "--duration", "6s", "-w", file}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.kubectlCmd(ctx)
	cmd.Path, cmd.Args = script, []string{script, "-qefc", strings.Join(quoted, " "), "/dev/null"}
	out := newLineBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	out.waitFor(t, readyText, 90*time.Second)
	for i := 0; i < 6; i++ {
		httpGets(t, pod.Status.PodIP, fmt.Sprintf("/progress-%d", i))
		time.Sleep(500 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("capture under script: %v\n%q", err, out.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the capture did not end:\n%q", out.String())
	}
	s := out.String()
	t.Logf("terminal output: %q", s)
	renders := progressRe.FindAllStringSubmatchIndex(s, -1)
	if len(renders) < 3 || len(renders) > 6*4 {
		t.Fatalf("%d renderings of the progress line in 6s, want at least 3 and at most 4 a second:\n%q", len(renders), s)
	}
	summary := strings.Index(s, "\r\x1b[Kcaptured ")
	if summary < 0 {
		t.Fatalf("the summary does not follow an erased line:\n%q", s)
	}
	if last := renders[len(renders)-1]; last[0] > summary {
		t.Errorf("the progress line is drawn after the summary:\n%q", s)
	}
	if m := progressRe.FindStringSubmatch(s[renders[len(renders)-1][0]:]); m[1] == "0" {
		t.Errorf("the last progress line counts no packets: %q", m[0])
	}
}
