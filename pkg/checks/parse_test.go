package checks

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	fixtureUID = "7c0a6f5e-8d2b-4c1e-9f3a-2b5d6e7f8a90"
	fixtureCID = "3f1c2b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
)

func openFixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseCgroupBothDrivers(t *testing.T) {
	for _, tc := range []struct {
		file      string
		wantLines int
	}{
		{"parsers/cgroup-cgroupfs.txt", 5},
		{"parsers/cgroup-systemd.txt", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			lines, err := parseCgroup(openFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != tc.wantLines {
				t.Fatalf("got %d lines, want %d: %+v", len(lines), tc.wantLines, lines)
			}
			p, ok := podProcessFromCgroup(lines)
			if !ok {
				t.Fatal("no pod found in the cgroup lines")
			}
			if p.PodUID != fixtureUID || p.ContainerID != fixtureCID {
				t.Errorf("got pod %q container %q, want %q %q", p.PodUID, p.ContainerID, fixtureUID, fixtureCID)
			}
		})
	}
}

func TestParseCgroupLineFields(t *testing.T) {
	lines, err := parseCgroup(strings.NewReader("3:cpu,cpuacct:/a/b\n0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []cgroupLine{{ID: 3, Controllers: []string{"cpu", "cpuacct"}, Path: "/a/b"}, {ID: 0, Path: "/"}}
	if d := cmp.Diff(want, lines); d != "" {
		t.Error(d)
	}
	if _, err := parseCgroup(strings.NewReader("garbage\n")); err == nil {
		t.Error("a line without colons parsed")
	}
}

func TestParseCgroupPath(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		path, uid, cid string
	}{
		{"/kubepods/besteffort/pod" + fixtureUID + "/" + id, fixtureUID, id},
		{"/kubepods/pod" + fixtureUID + "/" + id, fixtureUID, id},
		{"/kubepods/burstable/pod" + fixtureUID, fixtureUID, ""},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(fixtureUID, "-", "_") + ".slice/cri-containerd-" + id + ".scope", fixtureUID, id},
		{"/kubepods.slice/kubepods-pod" + strings.ReplaceAll(fixtureUID, "-", "_") + ".slice/crio-" + id + ".scope", fixtureUID, id},
		{"/kubepods.slice/kubepods-pod" + strings.ReplaceAll(fixtureUID, "-", "_") + ".slice/docker-" + id + ".scope", fixtureUID, id},
		{"/kubepods.slice/kubepods-pod" + strings.ReplaceAll(fixtureUID, "-", "_") + ".slice/crio-conmon-" + id + ".scope", fixtureUID, ""},
		// static pods have a 32-hex UID (their config hash)
		{"/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + id, "0123456789abcdef0123456789abcdef", id},
		{"/system.slice/ssh.service", "", ""},
		{"/", "", ""},
		// a container ID outside a pod is not a pod's container
		{"/docker/" + id, "", ""},
		{"/kubepods/besteffort/podnot-a-uid/" + id, "", ""},
	} {
		uid, cid := parseCgroupPath(tc.path)
		if uid != tc.uid || cid != tc.cid {
			t.Errorf("parseCgroupPath(%q) = %q, %q; want %q, %q", tc.path, uid, cid, tc.uid, tc.cid)
		}
	}
}

func TestParseProcNet(t *testing.T) {
	tcp, err := parseProcNet(openFixture(t, "parsers/tcp"))
	if err != nil {
		t.Fatal(err)
	}
	want := []socketEntry{
		{Local: netip.MustParseAddrPort("0.0.0.0:6379"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: tcpListen, UID: 999, Inode: 3333},
		{Local: netip.MustParseAddrPort("10.244.0.5:6379"), Remote: netip.MustParseAddrPort("10.244.0.6:50000"), State: 1, UID: 999, Inode: 3334},
		{Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: tcpListen, UID: 0, Inode: 1111},
	}
	if d := cmp.Diff(want, tcp, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
		t.Errorf("tcp (-want +got):\n%s", d)
	}

	tcp6, err := parseProcNet(openFixture(t, "parsers/tcp6"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tcp6) != 2 || tcp6[0].Local != netip.MustParseAddrPort("[::]:6379") || tcp6[1].Local != netip.MustParseAddrPort("[::1]:8081") || tcp6[1].Inode != 1112 {
		t.Errorf("tcp6: got %+v", tcp6)
	}

	udp, err := parseProcNet(openFixture(t, "parsers/udp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(udp) != 2 || udp[0].Local != netip.MustParseAddrPort("0.0.0.0:5353") || udp[0].State != 7 || udp[0].Inode != 3335 ||
		udp[1].Remote != netip.MustParseAddrPort("10.96.0.10:53") {
		t.Errorf("udp: got %+v", udp)
	}

	if _, err := parseProcNet(strings.NewReader("hdr\n 0: nothex:0000 00000000:0000 0A 0 0 0 0 0 1\n")); err == nil {
		t.Error("a bad address parsed")
	}
}

func TestParseMeminfo(t *testing.T) {
	mi, err := parseMeminfo(openFixture(t, "parsers/meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	if mi["MemTotal"] != 25165824 || mi["MemAvailable"] != 8388608 || mi["HugePages_Total"] != 0 || mi["Hugepagesize"] != 2048 {
		t.Errorf("got %v", mi)
	}
}

func TestParseConntrackStat(t *testing.T) {
	st, err := parseConntrackStat(openFixture(t, "parsers/nf_conntrack_stat"))
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUs != 2 {
		t.Errorf("CPUs = %d, want 2", st.CPUs)
	}
	for k, want := range map[string]uint64{
		"entries": 238901, "drop": 0x10 + 0x20, "insert_failed": 5, "early_drop": 1, "invalid": 0x1a + 4, "search_restart": 12,
	} {
		if st.Totals[k] != want {
			t.Errorf("%s = %d, want %d", k, st.Totals[k], want)
		}
	}
	if _, err := parseConntrackStat(strings.NewReader("a b\n1\n")); err == nil {
		t.Error("a short line parsed")
	}
	if _, err := parseConntrackStat(strings.NewReader("")); err == nil {
		t.Error("an empty file parsed")
	}
}

func TestParseKmsg(t *testing.T) {
	recs, err := parseKmsg(openFixture(t, "parsers/kmsg.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 { // the " SUBSYSTEM=net" continuation is not a record
		t.Fatalf("got %d records: %+v", len(recs), recs)
	}
	want := kmsgRecord{Priority: 4, Seq: 1202, Usec: 1500123, Message: "nf_conntrack: nf_conntrack: table full, dropping packet"}
	if recs[1] != want {
		t.Errorf("record 1 = %+v, want %+v", recs[1], want)
	}

	recs, err = parseKmsg(openFixture(t, "parsers/dmesg.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int64, len(recs))
	for i, r := range recs {
		got[i] = r.Usec
	}
	if d := cmp.Diff([]int64{0, 1500123456, 12345500000, -1, -1}, got); d != "" {
		t.Errorf("dmesg times (-want +got):\n%s", d)
	}
	if recs[1].Message != "nf_conntrack: nf_conntrack: table full, dropping packet" {
		t.Errorf("dmesg message = %q", recs[1].Message)
	}
	if recs[3].Message != "no timestamp at all; with a semicolon" {
		t.Errorf("plain line = %q", recs[3].Message)
	}
}

func TestScanTableFull(t *testing.T) {
	recs, err := parseKmsg(openFixture(t, "kmsg-old.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s := scanTableFull(recs, 100000.25, true, DefaultRecent)
	if s.Events != 3 || s.Recent != 0 {
		t.Errorf("old log: %+v, want 3 events, 0 recent", s)
	}
	// Without the uptime nothing says the events are old.
	if s := scanTableFull(recs, 0, false, DefaultRecent); s.Recent != 3 {
		t.Errorf("no uptime: %+v, want 3 recent", s)
	}
}

func TestParseUptimeAndCmdline(t *testing.T) {
	up, err := parseUptime(strings.NewReader("1421.03 370.38\n"))
	if err != nil || up != 1421.03 {
		t.Errorf("uptime = %v, %v", up, err)
	}
	if _, err := parseUptime(strings.NewReader("")); err == nil {
		t.Error("empty uptime parsed")
	}
	if got := parseCmdline([]byte("/app/server\x00--port\x008080\x00")); got != "/app/server --port 8080" {
		t.Errorf("cmdline = %q", got)
	}
}

func TestParseSocketLink(t *testing.T) {
	for in, want := range map[string]uint64{"socket:[3333]": 3333, "pipe:[3]": 0, "socket:[x]": 0, "/dev/null": 0} {
		got, ok := parseSocketLink(in)
		if got != want || ok != (want != 0) {
			t.Errorf("parseSocketLink(%q) = %d, %v", in, got, ok)
		}
	}
}

func TestParsePodFlagAndJSON(t *testing.T) {
	cfg, err := parseFlags([]string{"--pod", "default/redis-0," + fixtureUID + ",10.244.0.5,02:42:ac:11:00:02"}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Pods[0]; p.Label() != "default/redis-0" || p.UID != fixtureUID || p.IP.String() != "10.244.0.5" || p.MAC != "02:42:ac:11:00:02" {
		t.Errorf("got %+v", p)
	}
	if _, err := parseFlags([]string{"--pod", "redis-0,uid"}, nil, &bytes.Buffer{}); err == nil {
		t.Error("a short --pod parsed")
	}
	in := `[{"namespace":"default","name":"web","uid":"` + fixtureUID + `","ip":"10.244.0.7","containers":["containerd://` + fixtureCID + `"]}]`
	cfg, err = parseFlags([]string{"--pods-json", "-", "--checks", "arp,stale", "--pod-ip", "10.244.0.7"}, strings.NewReader(in), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pods) != 1 || cfg.Pods[0].Name != "web" || len(cfg.Checks) != 2 {
		t.Errorf("got %+v", cfg)
	}
	ts := cfg.targets()
	if len(ts) != 1 || ts[0].UID != fixtureUID || ts[0].Name != "web" || normalizeContainerID(ts[0].Containers[0]) != fixtureCID {
		t.Errorf("targets = %+v", ts)
	}
	for _, bad := range [][]string{{"--checks", "nope"}, {"--pod-ip", "x"}, {"--port", "70000"}, {"extra"}} {
		if _, err := parseFlags(bad, nil, &bytes.Buffer{}); err == nil {
			t.Errorf("%v parsed", bad)
		}
	}
}

// Fuzz tests: the parsers read files a hostile or broken node may write;
// they must return errors, never panic.

func addSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseCgroup(f *testing.F) {
	addSeeds(f, "parsers/cgroup-cgroupfs.txt", "parsers/cgroup-systemd.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := parseCgroup(bytes.NewReader(b))
		if err != nil {
			return
		}
		podProcessFromCgroup(lines)
	})
}

func FuzzParseProcNet(f *testing.F) {
	addSeeds(f, "parsers/tcp", "parsers/tcp6", "parsers/udp")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseProcNet(bytes.NewReader(b)) })
}

func FuzzParseMeminfo(f *testing.F) {
	addSeeds(f, "parsers/meminfo")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseMeminfo(bytes.NewReader(b)) })
}

func FuzzParseConntrackStat(f *testing.F) {
	addSeeds(f, "parsers/nf_conntrack_stat")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseConntrackStat(bytes.NewReader(b)) })
}

func FuzzParseKmsg(f *testing.F) {
	addSeeds(f, "parsers/kmsg.txt", "parsers/dmesg.txt", "kmsg-recent.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := parseKmsg(bytes.NewReader(b))
		if err != nil {
			return
		}
		scanTableFull(recs, 100, true, DefaultRecent)
	})
}

func FuzzParseUptime(f *testing.F) {
	f.Add([]byte("1421.03 370.38\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseUptime(bytes.NewReader(b)) })
}
