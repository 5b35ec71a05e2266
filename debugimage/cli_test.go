package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
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
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary stands in for the helper: a sibling running the same
	// executable, as an exec'd capture would.
	child := exec.Command(exe, "-test.run=^TestSleepHelper$")
	child.Env = append(os.Environ(), "NETDIAG_TEST_SLEEP=1")
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
