package checks

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func TestSplitFixArgs(t *testing.T) {
	fix, check := splitFixArgs([]string{"--bridge-up", "cbr0", "--checks", "stale", "--kill=12,13", "--pod-uid", "u", "--grace", "1s"})
	if d := cmp.Diff([]string{"--bridge-up", "cbr0", "--kill=12,13", "--grace", "1s"}, fix); d != "" {
		t.Errorf("fix args (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"--checks", "stale", "--pod-uid", "u"}, check); d != "" {
		t.Errorf("check args (-want +got):\n%s", d)
	}
}

func TestParseFixFlagsErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to do: give --bridge-up, --conntrack-max or --kill"},
		{[]string{"--kill", "1"}, `--kill: "1" is not a PID`},
		{[]string{"--kill", "abc"}, `--kill: "abc" is not a PID`},
		{[]string{"--kill", "123"}, "--kill needs --pod-uid: only stale processes of that pod are ended"},
		{[]string{"--persist-dir", "/etc", "--bridge-up", "x"}, "--persist-dir goes with --conntrack-max"},
		{[]string{"--conntrack-max", "5", "--persist-dir", "etc/../x"}, `--persist-dir must be a clean absolute path, got "etc/../x"`},
	} {
		_, err := parseFixFlags(tt.args, strings.NewReader(""), &bytes.Buffer{})
		got := ""
		if err != nil {
			got = strings.TrimPrefix(err.Error(), "usage: ")
		}
		if got != tt.want {
			t.Errorf("%v:\n got %q\nwant %q", tt.args, got, tt.want)
		}
	}
}

func fixtureRoots(t *testing.T, max string) (proc, host string) {
	t.Helper()
	proc, host = t.TempDir(), t.TempDir()
	dir := filepath.Join(proc, "sys", "net", "netfilter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nf_conntrack_max"), []byte(max+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return proc, host
}

func runFixMain(t *testing.T, args ...string) ([]map[string]any, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := FixMain(args, strings.NewReader(""), &out, &errb)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines, code
}

func TestFixConntrackMax(t *testing.T) {
	proc, host := fixtureRoots(t, "1000")
	lines, code := runFixMain(t, "--conntrack-max", "786432", "--persist-dir", "/etc/sysctl.d", "--proc", proc, "--host-root", host)
	if code != 0 || len(lines) != 4 || lines[0]["type"] != "hello" || lines[3]["type"] != "done" {
		t.Fatalf("exit %d, lines %v", code, lines)
	}
	if lines[1]["result"] != "done" || lines[1]["message"] != "nf_conntrack_max raised from 1000 to 786432" {
		t.Errorf("set: %v", lines[1])
	}
	if lines[2]["result"] != "done" || lines[2]["target"] != "/etc/sysctl.d/90-netdiag-conntrack.conf" {
		t.Errorf("persist: %v", lines[2])
	}
	b, _ := os.ReadFile(filepath.Join(proc, "sys/net/netfilter/nf_conntrack_max"))
	if strings.TrimSpace(string(b)) != "786432" {
		t.Errorf("nf_conntrack_max = %q", b)
	}
	b, _ = os.ReadFile(filepath.Join(host, "etc/sysctl.d/90-netdiag-conntrack.conf"))
	if !strings.HasSuffix(string(b), "\nnet.netfilter.nf_conntrack_max = 786432\n") {
		t.Errorf("persisted: %q", b)
	}
	// Never lowers.
	lines, _ = runFixMain(t, "--conntrack-max", "5", "--proc", proc, "--host-root", host)
	if lines[1]["result"] != "skipped" {
		t.Errorf("lowering: %v", lines[1])
	}
}

func TestFixKillRefusesUnconfirmed(t *testing.T) {
	proc, host := fixtureRoots(t, "1000")
	// PID 4242 runs in the pod's cgroup but in a container the API knows:
	// not stale, so it is not signalled.
	pdir := filepath.Join(proc, "4242")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	cid := strings.Repeat("ab", 32)
	_ = os.WriteFile(filepath.Join(pdir, "cgroup"), []byte("4:memory:/kubepods/besteffort/pod1111-2222/"+cid+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(pdir, "cmdline"), []byte("nc\x00-l\x00"), 0o644)
	var actions []protocol.Action
	cfg, err := parseFixFlags([]string{"--kill", "4242,4343", "--pod-uid", "1111-2222", "--known-containers", "containerd://" + cid, "--proc", proc, "--host-root", host}, strings.NewReader(""), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	RunFix(context.Background(), cfg, func(a protocol.Action) { actions = append(actions, a) })
	if len(actions) != 2 {
		t.Fatalf("actions %+v", actions)
	}
	for _, a := range actions {
		if a.Result != protocol.ActionRefused || !strings.Contains(a.Message, "is not a stale process of pod UID 1111-2222: not signalled") {
			t.Errorf("action %+v", a)
		}
	}
}
