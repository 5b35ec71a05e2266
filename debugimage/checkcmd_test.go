package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func lineTypes(t *testing.T, out string) []string {
	t.Helper()
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		pl, err := protocol.ParseLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, pl.Type)
	}
	return types
}

func TestCheckStream(t *testing.T) {
	code, out, errOut := runCLI("check", "--checks", "conntrack", "--proc", "../pkg/checks/testdata/proc-conntrack", "--kmsg", "../pkg/checks/testdata/kmsg-old.txt", "--top", "0")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if d := cmp.Diff([]string{"hello", "finding", "done"}, lineTypes(t, out)); d != "" {
		t.Error(d)
	}
	if !strings.Contains(out, `"findings":1`) || !strings.Contains(out, `"protocol":1`) {
		t.Errorf("hello/done: %q", out)
	}

	code, out, _ = runCLI("check", "--checks", "bogus")
	if code != exitUsage || !strings.Contains(out, `"type":"error"`) || strings.Contains(out, `"type":"done"`) {
		t.Errorf("usage error: exit %d, stream %q", code, out)
	}

	// An internal error: an error line, exit 1, and no done line.
	code, out, _ = runCLI("check", "--netns", "/nonexistent/netns", "--checks", "bridge")
	if code != exitError || !strings.Contains(out, `"type":"error","message":"`) || !strings.Contains(out, "/nonexistent/netns") || strings.Contains(out, `"type":"done"`) {
		t.Errorf("internal error: exit %d, stream %q", code, out)
	}
}

func TestFixStream(t *testing.T) {
	code, out, errOut := runCLI("fix", "--kill=12")
	if code != exitUsage || !strings.Contains(errOut, "netdiag-helper fix: --kill needs --pod-uid") {
		t.Errorf("usage error: exit %d, stderr %q", code, errOut)
	}
	if d := cmp.Diff([]string{"hello", "error"}, lineTypes(t, out)); d != "" {
		t.Error(d)
	}
	if code, _, _ := runCLI("fix", "--help"); code != exitOK {
		t.Errorf("--help: exit %d", code)
	}
}
