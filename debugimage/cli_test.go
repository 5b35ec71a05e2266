package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, streams{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("version")
	var h protocol.Hello
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || h.Type != "hello" || h.Protocol != protocol.Version || h.Helper == "" {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("version printed %q, want one line", out)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"inspect"}, `unknown command "inspect"`},
		{[]string{"capture", "--snaplen", "0"}, "--snaplen must be between 1 and 262144, not 0"},
		{[]string{"capture", "-s", "abc"}, `invalid argument "abc" for "-s, --snaplen" flag`},
		{[]string{"capture", "--format", "json"}, `--format must be pcap or pcapng, not "json"`},
		{[]string{"capture", "--count", "-1"}, "--count must not be negative"},
		{[]string{"capture", "--max-bytes", "-1"}, "--max-bytes must not be negative"},
		{[]string{"capture", "--duration", "soon"}, `invalid argument "soon" for "--duration" flag`},
		{[]string{"capture", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"capture", "eth0"}, `capture takes no arguments, got "eth0"`},
		{[]string{"idle", "--timeout", "-1s"}, "--timeout must not be negative"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(tt.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2", tt.args, code)
		}
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		last := lines[len(lines)-1]
		var e protocol.Error
		if json.Unmarshal([]byte(last), &e) != nil || e.Type != "error" || !strings.Contains(e.Message, tt.want) {
			t.Errorf("%v: last stderr line %s, want an error line containing %s", tt.args, last, tt.want)
		}
	}
}

func TestCaptureHelloFirst(t *testing.T) {
	_, _, errOut := runCLI("capture", "--format", "x")
	if !strings.HasPrefix(errOut, `{"type":"hello"`) {
		t.Fatalf("capture stderr starts with %q, want the hello line", errOut)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCLI("capture", "--help")
	if code != 0 || !strings.Contains(out, "--heartbeat") || !strings.Contains(out, "-i, --interface") {
		t.Fatalf("capture --help: exit %d, %q", code, out)
	}
}

func TestIdleTimeout(t *testing.T) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("no /proc")
	}
	start := time.Now()
	code, _, errOut := runCLI("idle", "--timeout", "300ms")
	if code != 0 {
		t.Fatalf("idle: exit %d: %s", code, errOut)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("idle --timeout 300ms returned after %v", d)
	}
}

// TestIdleStaysWhileHelperRuns: another process running the same executable
// (as an exec'd capture would) keeps idle alive.
func TestIdleStaysWhileHelperRuns(t *testing.T) {
	if !otherHelperRunningSupported() {
		t.Skip("no /proc")
	}
	// The test binary stands in for the helper: a sibling running the same
	// executable, as an exec'd capture would.
	child := sibling(t, "TestSleepHelper", "NETDIAG_TEST_SLEEP=1")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	deadline := time.Now().Add(3 * time.Second)
	for !otherHelperRunning("/proc", os.Getpid()) {
		if time.Now().After(deadline) {
			t.Fatal("the sibling process running the same executable was not seen")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func otherHelperRunningSupported() bool {
	_, err := os.Stat("/proc/self/exe")
	return err == nil
}

// TestSleepHelper is the sibling process of TestIdleStaysWhileHelperRuns.
func TestSleepHelper(t *testing.T) {
	if os.Getenv("NETDIAG_TEST_SLEEP") == "" {
		t.Skip("only run as a child process")
	}
	time.Sleep(10 * time.Second)
}

// TestCheckIsWired: check reports its usage errors as JSON on stdout (its
// stream of findings) and exits 2.
func TestCheckIsWired(t *testing.T) {
	code, out, _ := runCLI("check", "--checks", "bogus")
	if code != exitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(out, `"type":"hello"`) || !strings.Contains(out, `"type":"error"`) || !strings.Contains(out, "bogus") {
		t.Errorf("stdout %q: want a hello line and an error line naming the bad check", out)
	}
}

// blockingReader never returns: a stdin whose writer was killed without
// an EOF reaching the helper.
type blockingReader struct{ ch chan struct{} }

func (b blockingReader) Read([]byte) (int, error) { <-b.ch; return 0, io.EOF }

func TestKeepalive(t *testing.T) {
	t.Run("EOF ends it at once", func(t *testing.T) {
		start := time.Now()
		code, out, errOut := runCLI("keepalive", "--heartbeat", "10s", "--reap-after", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("keepalive with stdin at EOF returned after %v", d)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"type":"hello"`) || lines[1] != `{"type":"done","reason":"stdin-closed","ended":0}` {
			t.Errorf("stdout %q: want hello, then done with reason stdin-closed", out)
		}
	})
	t.Run("no heartbeat ends it", func(t *testing.T) {
		in := blockingReader{make(chan struct{})}
		defer close(in.ch)
		var out bytes.Buffer
		start := time.Now()
		code := run([]string{"keepalive", "--heartbeat", "300ms", "--reap-after", "0"}, streams{in: in, out: &out, err: io.Discard})
		d := time.Since(start)
		if code != 0 || !strings.HasSuffix(out.String(), `{"type":"done","reason":"heartbeat","ended":0}`+"\n") {
			t.Fatalf("exit %d, stdout %q: want done with reason heartbeat", code, out.String())
		}
		if d < 300*time.Millisecond || d > 2*time.Second {
			t.Errorf("keepalive --heartbeat 300ms without bytes returned after %v", d)
		}
	})
	t.Run("heartbeats keep it", func(t *testing.T) {
		r, w := io.Pipe()
		stop := make(chan struct{})
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					w.Close()
					return
				case <-tick.C:
					w.Write([]byte{0})
				}
			}
		}()
		time.AfterFunc(time.Second, func() { close(stop) })
		var out bytes.Buffer
		start := time.Now()
		code := run([]string{"keepalive", "--heartbeat", "200ms", "--reap-after", "0"}, streams{in: r, out: &out, err: io.Discard})
		d := time.Since(start)
		if code != 0 || !strings.HasSuffix(out.String(), `{"type":"done","reason":"stdin-closed","ended":0}`+"\n") {
			t.Fatalf("exit %d, stdout %q: want done with reason stdin-closed", code, out.String())
		}
		if d < time.Second {
			t.Errorf("keepalive --heartbeat 200ms with a byte every 50ms returned after %v, before stdin was closed at 1s", d)
		}
	})
	t.Run("heartbeat must be positive", func(t *testing.T) {
		for _, hb := range []string{"0", "-1s"} {
			code, _, errOut := runCLI("keepalive", "--heartbeat", hb)
			if code != exitUsage || !strings.Contains(errOut, "--heartbeat must be positive") {
				t.Errorf("--heartbeat %s: exit %d, stderr %q", hb, code, errOut)
			}
		}
	})
}

// TestIdleStaysWhileKeepaliveRuns: a keepalive process (another helper
// process) keeps idle from timing out; once the keepalive's heartbeats
// stop, it ends, and idle follows within its timeout: the chain that ends a
// node pod whose plugin died.
func TestIdleStaysWhileKeepaliveRuns(t *testing.T) {
	if !otherHelperRunningSupported() {
		t.Skip("no /proc")
	}
	child := sibling(t, "TestKeepaliveChild", "NETDIAG_TEST_KEEPALIVE=1500ms")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := make(chan struct{})
	var childEnd time.Time
	go func() { child.Wait(); childEnd = time.Now(); close(childDone) }()
	defer func() { child.Process.Kill(); <-childDone }()
	// Heartbeats for 2s, then the "plugin" dies: no EOF, no more bytes.
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := stdin.Write([]byte{0}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	start := time.Now()
	idle(context.Background(), "/proc", 500*time.Millisecond)
	idleEnd := time.Now()
	var keepaliveEnd time.Time
	select {
	case <-childDone:
		keepaliveEnd = childEnd
	default:
		t.Fatalf("idle --timeout 500ms returned after %v while the keepalive still ran", idleEnd.Sub(start))
	}
	// Heartbeats for ~2s, then 1.5s of silence: the keepalive ends at ~3.5s.
	if d := keepaliveEnd.Sub(start); d < 3*time.Second || d > 6*time.Second {
		t.Errorf("the keepalive ended %v after the start, want about 3.5s (2s of heartbeats + --heartbeat 1.5s)", d)
	}
	if d := idleEnd.Sub(keepaliveEnd); d < 0 || d > 2*time.Second {
		t.Errorf("idle returned %v after the keepalive ended, want within its 500ms timeout (+ scan interval)", d)
	}
}

// TestKeepaliveChild is the keepalive process of TestIdleStaysWhileKeepaliveRuns.
func TestKeepaliveChild(t *testing.T) {
	hb := os.Getenv("NETDIAG_TEST_KEEPALIVE")
	if hb == "" {
		t.Skip("only run as a child process")
	}
	os.Exit(run([]string{"keepalive", "--heartbeat", hb, "--reap-after", "0"}, streams{in: os.Stdin, out: io.Discard, err: os.Stderr}))
}

// TestActive: `active` (the node pod's readiness probe) fails while no
// other helper command runs, and succeeds while one does.
func TestActive(t *testing.T) {
	if !otherHelperRunningSupported() {
		t.Skip("no /proc")
	}
	code, _, errOut := runCLI("active")
	if code != exitError || !strings.Contains(errOut, "no helper command runs in this container") {
		t.Fatalf("active with nothing else running: exit %d, stderr %q; want 1", code, errOut)
	}
	child := sibling(t, "TestKeepaliveChild", "NETDIAG_TEST_KEEPALIVE=10s")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	deadline := time.Now().Add(3 * time.Second)
	for {
		code, _, _ := runCLI("active")
		if code == exitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("active: exit %d while a keepalive ran, want 0", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKeepaliveReapsOrphans: once its plugin is gone and no new keepalive
// starts, keepalive ends the other helper commands of the container (a
// capture blocked on a stream nobody reads would never end by itself).
func TestKeepaliveReapsOrphans(t *testing.T) {
	if !otherHelperRunningSupported() {
		t.Skip("no /proc")
	}
	// The sibling stands in for an orphaned capture: same executable.
	child := sibling(t, "TestSleepHelper", "NETDIAG_TEST_SLEEP=1")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	defer func() { child.Process.Kill(); <-done }()
	for !busyHelperRunning("/proc", os.Getpid()) {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	code, out, errOut := runCLI("keepalive", "--heartbeat", "10s", "--reap-after", "300ms")
	if code != 0 || !strings.HasSuffix(out, `{"type":"done","reason":"stdin-closed","ended":1}`+"\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want done with ended 1", code, out, errOut)
	}
	select {
	case err := <-done:
		done <- err
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("the orphan was ended after %v, before --reap-after 300ms", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the orphaned helper still runs 6s after the keepalive ended")
	}
}

// sibling is a process of this test binary running only test, with env set:
// it stands in for another helper process of the same executable.
func sibling(t *testing.T, test, env string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env)
	return cmd
}

// TestTakeOver: a resumed capture's helper ends the earlier segment's
// helper (same --id) and nothing else.
func TestTakeOver(t *testing.T) {
	if !otherHelperRunningSupported() {
		t.Skip("no /proc")
	}
	start := func(id string) *exec.Cmd {
		c := sibling(t, "TestSleepHelper", "NETDIAG_TEST_SLEEP=1")
		c.Args = append(c.Args, "--", "--id="+id)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	old, other := start("seg-a"), start("seg-b")
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	waited := make(chan error, 1)
	go func() { waited <- old.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for len(processesWithArg("/proc", os.Getpid(), "--id=seg-a")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stand-in never showed up in /proc")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := takeOver("/proc", "seg-a", 2*time.Second); n != 1 {
		t.Errorf("took over %d processes, want 1", n)
	}
	select {
	case <-waited:
	case <-time.After(3 * time.Second):
		t.Fatal("the earlier segment's helper still runs")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("a capture with another --id was ended: %v", err)
	}
}
