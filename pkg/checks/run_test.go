//go:build linux

package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func runChecks(t *testing.T, cfg Config) []protocol.Finding {
	t.Helper()
	var out []protocol.Finding
	if err := Run(context.Background(), cfg, func(f protocol.Finding) { out = append(out, f) }); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out
}

// asJSON round-trips data the way the plugin sees it.

func conntrackConfig(kmsg string) Config {
	return Config{
		Proc:   "testdata/proc-conntrack",
		Sys:    "testdata/none",
		Kmsg:   kmsg,
		Checks: []string{CheckConntrack},
		Now:    func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
		sleep:  func(time.Duration) {},
	}
}

// The contract's example: 91 % full, old "table full" messages → warn.
func TestRunConntrackContractExample(t *testing.T) {
	fs := runChecks(t, conntrackConfig("testdata/kmsg-old.txt"))
	if len(fs) != 1 {
		t.Fatalf("got %d findings: %+v", len(fs), fs)
	}
	f := fs[0]
	if f.Check != "conntrack" || f.Severity != protocol.SeverityWarn || f.Subject != "node" {
		t.Errorf("got check %q severity %q subject %q", f.Check, f.Severity, f.Subject)
	}
	if want := "conntrack table 91% full (238901 of 262144)"; f.Message != want {
		t.Errorf("message = %q, want %q", f.Message, want)
	}
	if want := "raise net.netfilter.nf_conntrack_max to 786432 (MemTotal/32) or spread the workload"; f.Remedy != want {
		t.Errorf("remedy = %q, want %q", f.Remedy, want)
	}
	d := asJSON(t, f.Data)
	for k, want := range map[string]float64{
		"count": 238901, "max": 262144, "recommendedMax": 786432, "tableFullEvents": 3,
		"recentTableFullEvents": 0, "drop": 48, "insertFailed": 5, "earlyDrop": 1, "percent": 91,
	} {
		if d[k] != want {
			t.Errorf("data.%s = %v, want %v", k, d[k], want)
		}
	}
	// the newest old event: 1.6 s after boot, uptime 100000.25 s: 99998.65 s before Now
	if want := "2024-12-31T23:17:26Z"; d["lastTableFull"] != want {
		t.Errorf("data.lastTableFull = %v, want %s", d["lastTableFull"], want)
	}
}

// conntrackTree copies testdata/proc-conntrack to change it in a test.
func conntrackTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir("testdata/proc-conntrack", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/proc-conntrack", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(root, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func setCount(t *testing.T, proc string, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(proc, "sys/net/netfilter/nf_conntrack_count"), []byte(fmt.Sprintf("%d\n", n)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A "table full" line 10 s ago, the table 91 % full, nothing dropped
// during the check: warn, with the age; not fail.
func TestRunConntrackPastTableFullWarns(t *testing.T) {
	fs := runChecks(t, conntrackConfig("testdata/kmsg-recent.txt"))
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityWarn {
		t.Fatalf("got %+v, want one warn", fs)
	}
	want := `conntrack table 91% full (238901 of 262144); the kernel dropped packets: 1 "nf_conntrack: table full, dropping packet" messages in the last 1h0m0s, last 10 s ago; the max at that time is not known`
	if fs[0].Message != want {
		t.Errorf("message\n got %q\nwant %q", fs[0].Message, want)
	}
	if d := asJSON(t, fs[0].Data); d["tableFullEvents"] != 1.0 || d["recentTableFullEvents"] != 1.0 || d["dropsDuringCheck"] != 0.0 || d["sampleSeconds"] != 1.0 {
		t.Errorf("data = %v", d)
	}
	// A dmesg line without a timestamp cannot be dated: warn too.
	dir := t.TempDir()
	p := filepath.Join(dir, "dmesg")
	if err := os.WriteFile(p, []byte("nf_conntrack: nf_conntrack: table full, dropping packet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fs := runChecks(t, conntrackConfig(p)); fs[0].Severity != protocol.SeverityWarn || !strings.Contains(fs[0].Message, "(undated: their age is unknown)") {
		t.Errorf("undated table full: %+v", fs[0])
	}
}

// A past "table full" on a table that is now nearly empty: warn, says the
// usage is far below the max, and says the max was raised when netdiag's
// persisted file is newer than the message.
func TestRunConntrackPastTableFullMaxRaised(t *testing.T) {
	cfg := conntrackConfig("testdata/kmsg-recent.txt")
	cfg.Proc = conntrackTree(t)
	setCount(t, cfg.Proc, 1000)
	cfg.HostRoot = t.TempDir()
	fs := runChecks(t, cfg)
	if fs[0].Severity != protocol.SeverityWarn || !strings.HasSuffix(fs[0].Message, "last 10 s ago; the max at that time is not known; usage is now far below the max (0%)") {
		t.Errorf("got %s %q", fs[0].Severity, fs[0].Message)
	}
	dir := filepath.Join(cfg.HostRoot, "etc", "sysctl.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, ConntrackPersistFile)
	if err := os.WriteFile(file, []byte("net.netfilter.nf_conntrack_max = 786432\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := cfg.Now()
	if err := os.Chtimes(file, now.Add(-5*time.Second), now.Add(-5*time.Second)); err != nil {
		t.Fatal(err)
	}
	fs = runChecks(t, cfg)
	if !strings.Contains(fs[0].Message, "last 10 s ago; nf_conntrack_max was raised since (by kubectl netdiag, 5 s ago); usage is now far below the max (0%)") {
		t.Errorf("got %q", fs[0].Message)
	}
	// Persisted before the message: not known to be raised since.
	if err := os.Chtimes(file, now.Add(-time.Minute), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if fs = runChecks(t, cfg); !strings.Contains(fs[0].Message, "the max at that time is not known") {
		t.Errorf("got %q", fs[0].Message)
	}
}

// Drops rising between the two reads: fail, whatever the usage and the
// kernel log say.
func TestRunConntrackDropsNowFail(t *testing.T) {
	cfg := conntrackConfig("testdata/kmsg-old.txt")
	cfg.Proc = conntrackTree(t)
	setCount(t, cfg.Proc, 1000)
	stat := filepath.Join(cfg.Proc, "net/stat/nf_conntrack")
	b, _ := os.ReadFile(stat)
	var slept time.Duration
	cfg.sleep = func(d time.Duration) {
		slept = d
		// drop 0x10 → 0x17 on CPU 0, insert_failed 2 → 3 on CPU 1
		s := strings.Replace(string(b), "00000003 00000010", "00000003 00000017", 1)
		s = strings.Replace(s, "00000002 00000020", "00000003 00000020", 1)
		if err := os.WriteFile(stat, []byte(s), 0o644); err != nil {
			t.Error(err)
		}
	}
	fs := runChecks(t, cfg)
	if slept != time.Second {
		t.Errorf("slept %s between the reads, want 1s", slept)
	}
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityFail {
		t.Fatalf("got %+v, want fail", fs)
	}
	if want := "conntrack table 0% full (1000 of 262144); the kernel is dropping now: +7 drop, +1 insert_failed, +0 early_drop in 1s"; fs[0].Message != want {
		t.Errorf("message\n got %q\nwant %q", fs[0].Message, want)
	}
	if d := asJSON(t, fs[0].Data); d["dropsDuringCheck"] != 7.0 || d["insertFailedDuringCheck"] != 1.0 || d["earlyDropDuringCheck"] != 0.0 || d["drop"] != 55.0 {
		t.Errorf("data = %v", d)
	}
}

// Usage at 95 % fails; a healthy table with old "table full" lines and
// drops since boot (but none now) is ok, and says so.
func TestRunConntrackFullAndHealthy(t *testing.T) {
	cfg := conntrackConfig("testdata/kmsg-old.txt")
	cfg.Proc = conntrackTree(t)
	setCount(t, cfg.Proc, 262144*95/100+1)
	if fs := runChecks(t, cfg); fs[0].Severity != protocol.SeverityFail {
		t.Errorf("95%%: %+v", fs[0])
	}
	setCount(t, cfg.Proc, 1000)
	fs := runChecks(t, cfg)
	want := `conntrack table 0% full (1000 of 262144); no drops during the check (48 drop, 1 early_drop, 5 insert_failed since boot); 3 older "nf_conntrack: table full, dropping packet" messages in the kernel log (last 27 h 46 min ago)`
	if fs[0].Severity != protocol.SeverityOK || fs[0].Message != want {
		t.Errorf("healthy: %s\n got %q\nwant %q", fs[0].Severity, fs[0].Message, want)
	}
	// Counters read once (--drop-sample negative): said, not guessed.
	cfg.DropSample = -1
	fs = runChecks(t, cfg)
	if fs[0].Severity != protocol.SeverityOK || !strings.Contains(fs[0].Message, "whether drops happen now is unknown") {
		t.Errorf("one read: %+v", fs[0])
	}
	if _, ok := asJSON(t, fs[0].Data)["dropsDuringCheck"]; ok {
		t.Errorf("one read reported drops during the check: %v", fs[0].Data)
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{40 * time.Second: "40 s", 12*time.Minute + 5*time.Second: "12 min", 3*time.Hour + 5*time.Minute: "3 h 5 min"} {
		if got := ago(d); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestRunConntrackNotLoaded(t *testing.T) {
	cfg := conntrackConfig("testdata/kmsg-old.txt")
	cfg.Proc = t.TempDir()
	fs := runChecks(t, cfg)
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityInfo || !strings.Contains(fs[0].Message, "not loaded") {
		t.Errorf("got %+v", fs)
	}
}

func TestRunConntrackTopIPs(t *testing.T) {
	cfg := conntrackConfig("testdata/kmsg-old.txt")
	cfg.Top = 2
	_, cidr, _ := net.ParseCIDR("10.244.0.0/24")
	cfg.PodCIDRs = []*net.IPNet{cidr}
	cfg.Pods = []PodInfo{{Namespace: "default", Name: "web", IP: net.ParseIP("10.244.0.7")}}
	a := netip.MustParseAddr
	flow := func(src, dst string) flowAddrs {
		return flowAddrs{a(src), a(dst), a(dst), a(src)}
	}
	cfg.dumpConntrack = func() ([]flowAddrs, error) {
		return []flowAddrs{
			flow("10.244.0.7", "1.1.1.1"), flow("10.244.0.7", "8.8.8.8"), flow("10.244.0.7", "10.244.0.9"),
			flow("10.244.0.9", "8.8.8.8"), flow("10.244.0.8", "8.8.8.8"), flow("192.168.1.1", "8.8.8.8"),
		}, nil
	}
	fs := runChecks(t, cfg)
	got := asJSON(t, fs[0].Data)["topIPs"]
	want := []any{
		map[string]any{"ip": "10.244.0.7", "entries": 3.0, "pod": "default/web"},
		map[string]any{"ip": "10.244.0.9", "entries": 2.0},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("topIPs (-want +got):\n%s", d)
	}

	cfg.dumpConntrack = func() ([]flowAddrs, error) { return nil, errors.New("operation not permitted") }
	if d := asJSON(t, runChecks(t, cfg)[0].Data); d["topIPsError"] != "operation not permitted" {
		t.Errorf("dump error not reported: %v", d)
	}
}

// staleTree copies testdata/proc-stale into a temporary /proc and creates
// the fd symlinks each PID's "fds" file lists ("FD TARGET" lines).
func staleTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	src := "testdata/proc-stale"
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if d.Name() == "fds" {
			fdDir := filepath.Join(filepath.Dir(dst), "fd")
			if err := os.MkdirAll(fdDir, 0o755); err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := bufio.NewScanner(bytes.NewReader(b))
			for s.Scan() {
				fd, target, ok := strings.Cut(s.Text(), " ")
				if !ok {
					continue
				}
				if err := os.Symlink(target, filepath.Join(fdDir, fd)); err != nil {
					return err
				}
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	sandboxID = strings.Repeat("a", 64)
	knownID   = strings.Repeat("b", 64)
	staleID   = strings.Repeat("c", 64)
	idleID    = strings.Repeat("e", 64)
)

func staleConfig(t *testing.T) Config {
	return Config{
		Proc:     staleTree(t),
		Sys:      t.TempDir(),
		HostRoot: t.TempDir(), // no runtime socket
		Checks:   []string{CheckStale},
		PodUID:   fixtureUID,
		Port:     6379,
	}
}

func byPID(fs []protocol.Finding) map[int]protocol.Finding {
	out := map[int]protocol.Finding{}
	for _, f := range fs {
		var d protocol.StaleData
		if f.DecodeData(&d) == nil && d.PID > 0 {
			out[d.PID] = f
		}
	}
	return out
}

func checkStaleFindings(t *testing.T, fs []protocol.Finding) {
	t.Helper()
	procs := byPID(fs)
	if len(procs) != 2 {
		t.Fatalf("want findings for PIDs 300 and 600 only, got %+v", fs)
	}
	holder := procs[300]
	if holder.Severity != protocol.SeverityFail {
		t.Errorf("pid 300: severity %q, want fail: %s", holder.Severity, holder.Message)
	}
	d := asJSON(t, holder.Data)
	for k, want := range map[string]any{"pid": 300.0, "containerID": staleID, "port": 6379.0, "protocol": "tcp", "address": "0.0.0.0", "cmdline": "redis-server *:6379", "podUID": fixtureUID} {
		if d[k] != want {
			t.Errorf("pid 300: data.%s = %v, want %v", k, d[k], want)
		}
	}
	if ls, _ := d["listeners"].([]any); len(ls) != 2 { // tcp 6379 and udp 5353; not the established 3334
		t.Errorf("pid 300 listeners = %v", d["listeners"])
	}
	if !strings.Contains(holder.Message, "holds tcp port 6379") {
		t.Errorf("message = %q", holder.Message)
	}
	if f := procs[600]; f.Severity != protocol.SeverityWarn || asJSON(t, f.Data)["containerID"] != idleID {
		t.Errorf("pid 600: %+v, want warn for %s", f, idleID)
	}
	for _, f := range fs {
		if strings.Contains(f.Message, sandboxID[:12]) || strings.Contains(f.Message, knownID[:12]) {
			t.Errorf("sandbox or known container reported: %s", f.Message)
		}
	}
}

func fakeRuntimeState(containers ...string) runtimeLister {
	return func(context.Context) (runtimeState, error) {
		st := runtimeState{Endpoint: "fake", Containers: map[string]bool{}, Sandboxes: map[string]string{sandboxID: fixtureUID}}
		for _, c := range containers {
			st.Containers[c] = true
		}
		return st, nil
	}
}

// Without a runtime nothing is called stale, whatever the API knows: a
// container that just restarted is not in the API's list yet. The check
// warns, lists what runs, and names the port holder.
func TestRunStaleNoRuntimeCallsNothingStale(t *testing.T) {
	for _, known := range [][]string{nil, {"containerd://" + knownID}} {
		cfg := staleConfig(t)
		cfg.KnownContainers = known
		fs := runChecks(t, cfg)
		if len(fs) != 1 {
			t.Fatalf("known %v: got %d findings: %+v", known, len(fs), fs)
		}
		f := fs[0]
		if f.Severity != protocol.SeverityWarn || !strings.HasPrefix(f.Message, RuntimeUnreachable+" (") {
			t.Errorf("known %v: got %s %q", known, f.Severity, f.Message)
		}
		if len(byPID(fs)) != 0 {
			t.Errorf("known %v: a PID was reported as stale: %+v", known, f.Data)
		}
		d := asJSON(t, f.Data)
		if d["runtimeReachable"] != false || d["runtimeError"] == "" {
			t.Errorf("known %v: data %v", known, d)
		}
		h := d["portHolder"].(map[string]any)
		if h["pid"] != 300.0 || h["containerID"] != staleID {
			t.Errorf("portHolder = %v", h)
		}
		procs := d["processes"].([]any)
		if len(procs) != 4 {
			t.Fatalf("processes = %v", procs)
		}
		if p := procs[2].(map[string]any); p["pid"] != 300.0 || p["startTicks"] != 300050.0 || p["started"] != "2023-11-14T23:03:20Z" {
			t.Errorf("process 300 = %v", p)
		}
	}
}

// With a runtime: its containers and sandboxes are live; the stale ones
// carry what the user must see before approving a kill.
func TestRunStaleWithRuntime(t *testing.T) {
	cfg := staleConfig(t)
	cfg.runtime = fakeRuntimeState(knownID)
	fs := runChecks(t, cfg)
	checkStaleFindings(t, fs)
	for _, f := range fs {
		if f.Severity == protocol.SeverityInfo {
			t.Errorf("unexpected info finding: %s", f.Message)
		}
	}
	d := asJSON(t, byPID(fs)[300].Data)
	// btime 1700000000 (22:13:20) + 300050 ticks / 100 (50 min)
	for k, want := range map[string]any{"startTicks": 300050.0, "started": "2023-11-14T23:03:20Z", "runtimeEndpoint": "fake"} {
		if d[k] != want {
			t.Errorf("data.%s = %v, want %v", k, d[k], want)
		}
	}
}

// The crash-loop case: the container restarted, the API still lists the
// old ID (or none), the runtime knows the new one: not stale.
func TestRunStaleRestartedContainerIsNotStale(t *testing.T) {
	cfg := staleConfig(t)
	cfg.Port = 6379
	cfg.KnownContainers = []string{"containerd://" + strings.Repeat("f", 64)}
	cfg.runtime = fakeRuntimeState(knownID, staleID, idleID)
	fs := runChecks(t, cfg)
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityOK {
		t.Fatalf("got %+v", fs)
	}
	if h := asJSON(t, fs[0].Data)["portHolder"].(map[string]any); h["pid"] != 300.0 {
		t.Errorf("portHolder = %v", h)
	}
}

// A runtime that errors is as good as none.
func TestRunStaleRuntimeError(t *testing.T) {
	cfg := staleConfig(t)
	cfg.runtime = func(context.Context) (runtimeState, error) {
		return runtimeState{}, errors.New("runtime socket /run/containerd/containerd.sock: ListContainers: unavailable")
	}
	fs := runChecks(t, cfg)
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityWarn || !strings.Contains(fs[0].Message, "ListContainers: unavailable") || len(byPID(fs)) != 0 {
		t.Fatalf("got %+v", fs)
	}
}

// All live: ok, and the known holder of the port is named.
func TestRunStaleAllKnown(t *testing.T) {
	cfg := staleConfig(t)
	cfg.Port = 8080
	cfg.runtime = fakeRuntimeState(knownID, staleID, idleID)
	fs := runChecks(t, cfg)
	last := fs[len(fs)-1]
	if last.Severity != protocol.SeverityOK {
		t.Fatalf("got %+v", fs)
	}
	if h := asJSON(t, last.Data)["portHolder"].(map[string]any); h["pid"] != 200.0 {
		t.Errorf("portHolder = %v", h)
	}
}
