package checks

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Fix and check flags are parsed by one flag set: a value that looks like
// a fix flag stays a value.
func TestParseFixFlagsValueIsNeverAFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--bridge-up", "cbr0", "--bridge", "--persist-dir=/etc"},
		{"--bridge-up", "cbr0", "--bridge=--persist-dir=/etc"},
	} {
		cfg, err := parseFixFlags(args, strings.NewReader(""), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if cfg.PersistDir != "" || cfg.Check.Bridge != "--persist-dir=/etc" || cfg.BridgeUp != "cbr0" {
			t.Errorf("%v: persist %q, bridge %q, bridge-up %q", args, cfg.PersistDir, cfg.Check.Bridge, cfg.BridgeUp)
		}
	}
	cfg, err := parseFixFlags([]string{"--kill=12:5000,13", "--checks", "stale", "--pod-uid", "u", "--grace", "1s", "--known-containers", "--kill=99"}, strings.NewReader(""), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]int{12, 13}, cfg.Kill); d != "" {
		t.Errorf("kill (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[int]uint64{12: 5000}, cfg.KillStart); d != "" {
		t.Errorf("kill start (-want +got):\n%s", d)
	}
	if cfg.Grace != time.Second || cfg.Check.PodUID != "u" || len(cfg.Check.KnownContainers) != 1 || cfg.Check.KnownContainers[0] != "--kill=99" {
		t.Errorf("got %+v", cfg)
	}
}

func TestParseFixFlagsErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to do: give --bridge-up, --conntrack-max or --kill"},
		{[]string{"--kill", "1"}, `--kill: "1" is not a PID (want PID[:STARTTICKS],...)`},
		{[]string{"--kill", "abc"}, `--kill: "abc" is not a PID (want PID[:STARTTICKS],...)`},
		{[]string{"--kill", "123:x"}, `--kill: "123:x": the start time after the colon must be the clock ticks the stale check reports in data.startTicks`},
		{[]string{"--kill", "123:0"}, `--kill: "123:0": the start time after the colon must be the clock ticks the stale check reports in data.startTicks`},
		{[]string{"--bridge-up", "x", "extra"}, `unexpected argument "extra"`},
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

// runFix parses a fix command line as the helper does and runs it; the
// actions come back as their JSON objects.
func runFix(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	cfg, err := parseFixFlags(args, strings.NewReader(""), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var actions []map[string]any
	RunFix(context.Background(), cfg, func(a protocol.Action) { actions = append(actions, asJSON(t, a)) })
	return actions
}

func TestFixConntrackMax(t *testing.T) {
	proc, host := fixtureRoots(t, "1000")
	if err := os.MkdirAll(filepath.Join(host, "etc", "sysctl.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	lines := runFix(t, "--conntrack-max", "786432", "--persist-dir", "/etc/sysctl.d", "--proc", proc, "--host-root", host)
	if len(lines) != 2 {
		t.Fatalf("actions %v", lines)
	}
	if lines[0]["result"] != "done" || lines[0]["message"] != "nf_conntrack_max raised from 1000 to 786432" {
		t.Errorf("set: %v", lines[0])
	}
	if lines[1]["result"] != "done" || lines[1]["target"] != "/etc/sysctl.d/90-netdiag-conntrack.conf" {
		t.Errorf("persist: %v", lines[1])
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
	lines = runFix(t, "--conntrack-max", "5", "--proc", proc, "--host-root", host)
	if lines[0]["result"] != "skipped" {
		t.Errorf("lowering: %v", lines[0])
	}
}

// The persisted file is written through a temp file in the same directory
// and renamed: nothing else is left there, a symlink at the final name is
// replaced (not followed), and a missing directory is not created.
func TestFixConntrackPersistAtomic(t *testing.T) {
	proc, host := fixtureRoots(t, "1000")
	dir := filepath.Join(host, "etc", "sysctl.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, ConntrackPersistFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-other.conf"), []byte("x=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := persistConntrackMax(Config{Proc: proc, HostRoot: host}, "/etc/sysctl.d", 4242)
	if a.Result != protocol.ActionDone {
		t.Fatalf("persist: %+v", a)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep\n" {
		t.Errorf("the symlink was followed: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, ConntrackPersistFile))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("persisted file: %v %v", fi, err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if d := cmp.Diff([]string{"10-other.conf", ConntrackPersistFile}, names); d != "" {
		t.Errorf("directory (-want +got):\n%s", d)
	}

	// No /etc/sysctl.d on the node: failed, and nothing created.
	host2 := t.TempDir()
	a = persistConntrackMax(Config{Proc: proc, HostRoot: host2}, "/etc/sysctl.d", 4242)
	if a.Result != protocol.ActionFailed || !strings.Contains(a.Message, "not persisted") {
		t.Errorf("missing dir: %+v", a)
	}
	if _, err := os.Stat(filepath.Join(host2, "etc")); err == nil {
		t.Error("the missing directory was created")
	}
	// A read-only directory: failed, no temp file left.
	if os.Geteuid() != 0 {
		ro := filepath.Join(t.TempDir(), "etc", "sysctl.d")
		_ = os.MkdirAll(ro, 0o555)
		a = persistConntrackMax(Config{Proc: proc, HostRoot: filepath.Dir(filepath.Dir(ro))}, "/etc/sysctl.d", 1)
		if a.Result != protocol.ActionFailed {
			t.Errorf("read-only dir: %+v", a)
		}
	}
}

func TestCreateUniqueTemp(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]bool{}
	for range 20 {
		name, f, err := createUniqueTemp(dir, ".x.")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if seen[name] || filepath.Dir(name) != dir {
			t.Fatalf("name %s", name)
		}
		seen[name] = true
	}
}
