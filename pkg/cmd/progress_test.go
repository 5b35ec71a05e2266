package cmd

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/remotecapture"
)

// steppedClock returns the times the test sets.
type steppedClock struct{ t time.Time }

func (c *steppedClock) now() time.Time { return c.t }

func TestProgressLineRateLimit(t *testing.T) {
	var out bytes.Buffer
	clk := &steppedClock{t: time.Unix(1000, 0)}
	l := newProgressLine(&out, clk.now)
	// Eight updates 100ms apart: rendered at 0, 300 and 600ms (every
	// 250ms at most), not eight times.
	for i := 0; i < 8; i++ {
		l.update(protocol.Progress{Packets: uint64(10 * i), Bytes: uint64(1000 * i), DurationSeconds: 0.1 * float64(i)})
		clk.t = clk.t.Add(100 * time.Millisecond)
	}
	if n := strings.Count(out.String(), clearLine); n != 3 {
		t.Errorf("%d renderings of 8 updates in 800ms, want 3 (at most 4 a second):\n%q", n, out.String())
	}
	if strings.Contains(out.String(), "\n") {
		t.Errorf("the progress line has a newline: %q", out.String())
	}
}

func TestProgressLineText(t *testing.T) {
	var out bytes.Buffer
	clk := &steppedClock{t: time.Unix(1000, 0)}
	l := newProgressLine(&out, clk.now)
	l.update(protocol.Progress{Packets: 100, Bytes: 10_000, DurationSeconds: 1})
	clk.t = clk.t.Add(time.Second)
	out.Reset()
	l.update(protocol.Progress{Packets: 300, Bytes: 130_000, KernelDrops: 4, DurationSeconds: 62.5})
	// The rate is that of the last interval: 200 packets and 120 kB in
	// 61.5s.
	want := clearLine + "300 packets, 130.0 kB, 4 kernel drops, 3 pkt/s, 2.0 kB/s, 1m2s elapsed"
	if out.String() != want {
		t.Errorf("line\n %q\nwant\n %q", out.String(), want)
	}
}

// Another message erases the line first; after stop nothing is drawn.
func TestProgressLineClearsBeforeMessages(t *testing.T) {
	var out bytes.Buffer
	clk := &steppedClock{t: time.Unix(1000, 0)}
	l := newProgressLine(&out, clk.now)
	l.Write([]byte("capturing on pod/web-0 eth0, Ctrl-C to stop\n"))
	if out.String() != "capturing on pod/web-0 eth0, Ctrl-C to stop\n" {
		t.Errorf("a message with no line shown: %q", out.String())
	}
	out.Reset()
	l.update(protocol.Progress{Packets: 1, DurationSeconds: 1})
	l.Write([]byte("the capture stream broke\n"))
	if s := out.String(); !strings.HasSuffix(s, clearLine+"the capture stream broke\n") {
		t.Errorf("the message does not follow an erased line: %q", s)
	}
	out.Reset()
	clk.t = clk.t.Add(time.Second)
	l.update(protocol.Progress{Packets: 2, DurationSeconds: 2})
	l.stop()
	if s := out.String(); !strings.HasSuffix(s, clearLine) || strings.Count(s, clearLine) != 2 {
		t.Errorf("stop does not erase the line: %q", s)
	}
	out.Reset()
	clk.t = clk.t.Add(time.Second)
	l.update(protocol.Progress{Packets: 3, DurationSeconds: 3})
	l.stop()
	if out.Len() != 0 {
		t.Errorf("drawn after stop: %q", out.String())
	}
}

// No progress unless stderr is a terminal: the helper is not asked, and
// stderr is the command's own.
func TestProgressOnlyOnATerminal(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		streams, _, _, errOut := genericiooptions.NewTestIOStreams()
		o := &CaptureOptions{IOStreams: streams}
		o.IsTerminal = func(s any) bool { return terminal && s == errOut }
		var cfg remotecapture.Config
		w := o.startProgress(&cfg)
		if terminal != (cfg.Progress != nil) || terminal == (w == o.ErrOut) {
			t.Errorf("terminal %v: progress callback %v, own stderr %v", terminal, cfg.Progress != nil, w == o.ErrOut)
		}
		if terminal {
			cfg.Progress(protocol.Progress{Packets: 5, DurationSeconds: 1})
			o.stopProgress()
			if !strings.Contains(errOut.String(), "5 packets") || !strings.HasSuffix(errOut.String(), clearLine) {
				t.Errorf("stderr %q", errOut.String())
			}
		}
	}
}

// Through the command on a terminal: the progress line is drawn, then
// erased before the summary.
func TestCaptureProgressBeforeSummary(t *testing.T) {
	dir := t.TempDir()
	progress := `{"type":"progress","packets":1,"bytes":100,"kernelDrops":0,"durationSeconds":1}` + "\n"
	o, errOut := fileCapture(t, filepath.Join(dir, "web.pcap"), &helperExec{stdout: testPcap, stderr: progress + helperStats("count")})
	o.IsTerminal = func(s any) bool { return s == o.ErrOut }
	if err := o.run(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := errOut.String()
	line := strings.Index(s, clearLine+"1 packets, 100 B, 0 kernel drops")
	summary := strings.Index(s, clearLine+"captured 1 packets")
	if line < 0 || summary < line {
		t.Errorf("stderr %q: want the progress line, then the line erased and the summary", s)
	}
}
