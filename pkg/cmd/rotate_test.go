package cmd

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"100": 100_000_000, "1": 1_000_000, "0.5": 500_000, "10MB": 10_000_000, "10mb": 10_000_000, "500kB": 500_000,
		"1GB": 1_000_000_000, "1MiB": 1 << 20, "64KiB": 64 << 10, "2GiB": 2 << 30, "5k": 5 << 10, "10M": 10 << 20,
		"1g": 1 << 30, "4096B": 4096, "1.5MB": 1_500_000, " 3 MB ": 3_000_000,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "x", "10XB", "0", "0B", "-1", "1e3", "0.1B"} {
		if n, err := parseSize(in); err == nil || !strings.Contains(err.Error(), "-C/--rotate-size") {
			t.Errorf("parseSize(%q) = %d, %v; want an error naming -C", in, n, err)
		}
	}
}

func TestParseEvery(t *testing.T) {
	for in, want := range map[string]time.Duration{"600": 10 * time.Minute, "1": time.Second, "10m": 10 * time.Minute, "1h30m": 90 * time.Minute, "90s": 90 * time.Second} {
		if got, err := parseEvery(in); err != nil || got != want {
			t.Errorf("parseEvery(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ten", "10 min"} {
		if _, err := parseEvery(in); err == nil || !strings.Contains(err.Error(), "-G/--rotate-every") {
			t.Errorf("parseEvery(%q): %v, want an error naming -G", in, err)
		}
	}
}

func TestRotationValidate(t *testing.T) {
	for _, tt := range []struct {
		rot       rotation
		output    string
		wireshark bool
		want      string
	}{
		{rotation{Size: 1}, "web.pcap", false, ""},
		{rotation{Every: time.Minute, Files: 5}, "web-%Y%m%d%H%M%S.pcap", false, ""},
		{rotation{}, "-", false, ""},
		{rotation{Size: 1}, "-", false, "-C and -G write a series of files: name them with -w FILE (they cannot go to stdout or --wireshark)"},
		{rotation{Size: 1}, "", false, "-C and -G write a series of files"},
		{rotation{Every: time.Minute}, "", true, "cannot go to stdout or --wireshark"},
		{rotation{Files: 3}, "web.pcap", false, "-W/--rotate-files keeps the last N files of a rotation: add -C SIZE or -G DURATION"},
		{rotation{Size: 1, Files: -1}, "web.pcap", false, "-W/--rotate-files must not be negative, got -1"},
		{rotation{Every: 10 * time.Millisecond}, "web.pcap", false, "-G/--rotate-every must be at least 1s, got 10ms"},
		{rotation{Every: time.Minute}, "web-%Q.pcap", false, "%Q is not a time conversion this plugin knows"},
		{rotation{Every: time.Minute}, "web-%", false, "ends in a lone %"},
	} {
		err := tt.rot.validate(tt.output, tt.wireshark)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v -w %q: %v", tt.rot, tt.output, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v -w %q: %v, want %q", tt.rot, tt.output, err, tt.want)
		}
	}
}

func TestStrftimeAndDigits(t *testing.T) {
	at := time.Date(2026, 3, 7, 9, 5, 3, 0, time.Local)
	got, err := strftime("web-%Y%m%d-%H%M%S-%y-%j-%F_%T-100%%.pcap", at)
	if want := "web-20260307-090503-26-066-2026-03-07_09:05:03-100%.pcap"; err != nil || got != want {
		t.Errorf("strftime = %q, %v; want %q", got, err, want)
	}
	for n, want := range map[int]int{1: 0, 2: 1, 10: 1, 11: 2, 100: 2, 101: 3} {
		if got := digits(n); got != want {
			t.Errorf("digits(%d) = %d, want %d (tcpdump: the width of N-1)", n, got, want)
		}
	}
}

// pcapOf is a pcap stream of n 60-byte packets numbered from 1.
func pcapOf(t *testing.T, n int) []byte {
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 0), CaptureLength: 60, Length: 60}, packetNumbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// pcapngOf is the same as pcapng (a section header and an interface).
func pcapngOf(t *testing.T, n int) []byte {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 0), CaptureLength: 60, Length: 60}, packetNumbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func packetNumbered(i int) []byte {
	p := make([]byte, 60)
	binary.BigEndian.PutUint32(p[56:], uint32(i))
	return p
}

// readNumbers reads a file with pcapstream's Reader and returns the
// numbers of its packets; readAll also with tshark, when it is installed.
func readNumbers(t *testing.T, path string, format pcapstream.Format) []int {
	t.Helper()
	return read(t, path, format, false)
}

func readAll(t *testing.T, path string, format pcapstream.Format) []int {
	t.Helper()
	return read(t, path, format, true)
}

func read(t *testing.T, path string, format pcapstream.Format, withTshark bool) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	r, err := pcapstream.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Header().Format != format {
		t.Errorf("%s is %s, want %s", path, r.Header().Format, format)
	}
	var nums []int
	for {
		p, err := r.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s after %d packets: %v", path, len(nums), err)
		}
		nums = append(nums, int(binary.BigEndian.Uint32(p.Data[56:])))
	}
	if tshark, err := exec.LookPath("tshark"); err == nil && withTshark {
		out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "frame.number").Output()
		if lines := strings.Fields(string(out)); err != nil || len(lines) != len(nums) {
			t.Errorf("tshark -r %s: %v, %d frames, want %d:\n%s", path, err, len(lines), len(nums), out)
		}
	}
	return nums
}

// rotate writes stream through a rotator into dir/web.pcap (in chunks
// that cut records, as the exec stream does) and returns the files left
// in dir.
func rotate(t *testing.T, dir, name string, rot rotation, now func() time.Time, stream []byte) []string {
	t.Helper()
	r := newRotator(filepath.Join(dir, name), rot, now, nil)
	for len(stream) > 0 {
		n := min(len(stream), 37)
		if _, err := r.Write(stream[:n]); err != nil {
			t.Fatalf("write: %v", err)
		}
		stream = stream[n:]
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestRotateBySize(t *testing.T) {
	// A pcap record is 16+60 bytes; the header 24. With -C 200B a file
	// takes packets while it is at most 200 bytes: 24+3*76 = 252 > 200
	// after the third, so three packets a file.
	for _, tt := range []struct {
		name   string
		rot    rotation
		stream func(*testing.T, int) []byte
		format pcapstream.Format
		files  map[string][]int
	}{
		{"no -W: FILE, FILE1, …", rotation{Size: 200}, pcapOf, pcapstream.FormatPcap,
			map[string][]int{"web.pcap": {1, 2, 3}, "web.pcap1": {4, 5, 6}, "web.pcap2": {7, 8, 9}, "web.pcap3": {10}}},
		{"-W 3: a ring of web.pcap0..2", rotation{Size: 200, Files: 3}, pcapOf, pcapstream.FormatPcap,
			map[string][]int{"web.pcap0": {10}, "web.pcap1": {4, 5, 6}, "web.pcap2": {7, 8, 9}}},
		{"-W 2 keeps the last two", rotation{Size: 200, Files: 2}, pcapOf, pcapstream.FormatPcap,
			map[string][]int{"web.pcap0": {7, 8, 9}, "web.pcap1": {10}}},
		{"-W 12: two digits", rotation{Size: 200, Files: 12}, pcapOf, pcapstream.FormatPcap,
			map[string][]int{"web.pcap00": {1, 2, 3}, "web.pcap01": {4, 5, 6}, "web.pcap02": {7, 8, 9}, "web.pcap03": {10}}},
		// pcapng: a section header and an interface block start each
		// file; an enhanced packet block of 60 bytes is 92: three
		// packets a file (set below).
		{"pcapng", rotation{Size: -1, Files: 10}, pcapngOf, pcapstream.FormatPcapNG,
			map[string][]int{"web.pcap0": {1, 2, 3}, "web.pcap1": {4, 5, 6}, "web.pcap2": {7, 8, 9}, "web.pcap3": {10}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.rot.Size < 0 {
				tt.rot.Size = int64(len(pcapngOf(t, 0)) + 2*92 + 46)
			}
			names := rotate(t, dir, "web.pcap", tt.rot, nil, tt.stream(t, 10))
			var want []string
			for n := range tt.files {
				want = append(want, n)
			}
			sort.Strings(want)
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Fatalf("files %v, want %v (no temporary file left)", names, want)
			}
			for name, nums := range tt.files {
				if got := readAll(t, filepath.Join(dir, name), tt.format); !equalInts(got, nums) {
					t.Errorf("%s holds packets %v, want %v", name, got, nums)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fakeClock advances by step at every reading: the rotator reads it when
// a file opens and before each packet that may go into the current one.
func fakeClock(start time.Time, step time.Duration) func() time.Time {
	n := -1
	return func() time.Time {
		n++
		return start.Add(time.Duration(n) * step)
	}
}

func TestRotateByTime(t *testing.T) {
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.Local)
	// Readings 4s apart and -G 10s: the first file opens with the first
	// packet at 0s, the next packets are checked at 4s and 8s, the one at
	// 12s goes into a new file (opened at 16s), and so on: three packets
	// a file.
	dir := t.TempDir()
	names := rotate(t, dir, "web-%H%M%S.pcap", rotation{Every: 10 * time.Second}, fakeClock(start, 4*time.Second), pcapOf(t, 10))
	want := map[string][]int{"web-100000.pcap": {1, 2, 3}, "web-100016.pcap": {4, 5, 6}, "web-100032.pcap": {7, 8, 9}, "web-100048.pcap": {10}}
	if len(names) != len(want) {
		t.Fatalf("files %v, want %d", names, len(want))
	}
	for name, nums := range want {
		if got := readNumbers(t, filepath.Join(dir, name), pcapstream.FormatPcap); !equalInts(got, nums) {
			t.Errorf("%s holds %v, want %v", name, got, nums)
		}
	}

	// -W 2 with time names: the oldest go.
	dir = t.TempDir()
	names = rotate(t, dir, "web-%H%M%S.pcap", rotation{Every: 10 * time.Second, Files: 2}, fakeClock(start, 4*time.Second), pcapOf(t, 10))
	if strings.Join(names, " ") != "web-100032.pcap web-100048.pcap" {
		t.Errorf("files %v, want the last two", names)
	}

	// Names that repeat (no conversion finer than the rotation) get a
	// number, as tcpdump's do.
	dir = t.TempDir()
	names = rotate(t, dir, "web-%Y.pcap", rotation{Every: 10 * time.Second}, fakeClock(start, 4*time.Second), pcapOf(t, 7))
	if strings.Join(names, " ") != "web-2026.pcap web-2026.pcap1 web-2026.pcap2" {
		t.Errorf("files %v", names)
	}
}

func TestRotateEdges(t *testing.T) {
	// Nothing came: no file.
	dir := t.TempDir()
	if names := rotate(t, dir, "web.pcap", rotation{Size: 100}, nil, nil); len(names) != 0 {
		t.Errorf("files %v from an empty stream", names)
	}
	// A header and no packet: one file, with the header.
	dir = t.TempDir()
	if names := rotate(t, dir, "web.pcap", rotation{Size: 100, Files: 3}, nil, pcapOf(t, 0)); strings.Join(names, " ") != "web.pcap0" {
		t.Errorf("files %v from a capture of no packet, want web.pcap0", names)
	} else if got := readNumbers(t, filepath.Join(dir, "web.pcap0"), pcapstream.FormatPcap); len(got) != 0 {
		t.Errorf("packets %v", got)
	}
	// A stream cut inside a record: the last file ends before it.
	dir = t.TempDir()
	s := pcapOf(t, 4)
	// 24+76 = 100 is not past -C 100B; 176 is: two packets a file.
	names := rotate(t, dir, "web.pcap", rotation{Size: 100}, nil, s[:len(s)-10])
	if strings.Join(names, " ") != "web.pcap web.pcap1" {
		t.Fatalf("files %v", names)
	}
	if got := readNumbers(t, filepath.Join(dir, "web.pcap1"), pcapstream.FormatPcap); !equalInts(got, []int{3}) {
		t.Errorf("last file holds %v, want [3] (4 was cut)", got)
	}
	// A file that cannot be written stops the stream with an error.
	dir = t.TempDir()
	r := newRotator(filepath.Join(dir, "missing", "web.pcap"), rotation{Size: 100}, nil, nil)
	var werr error
	for s := pcapOf(t, 2000); werr == nil && len(s) > 0; s = s[min(len(s), 37):] {
		_, werr = r.Write(s[:min(len(s), 37)])
	}
	cerr := r.Close()
	if werr == nil || cerr == nil || !strings.Contains(cerr.Error(), "cannot create a file") {
		t.Errorf("write %v, close %v: want both to fail naming the file", werr, cerr)
	}
	// describe names the files.
	dir = t.TempDir()
	r = newRotator(filepath.Join(dir, "web.pcap"), rotation{Size: 200, Files: 2}, nil, nil)
	_, _ = r.Write(pcapOf(t, 10))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := "2 files, " + filepath.Join(dir, "web.pcap0") + " … " + filepath.Join(dir, "web.pcap1") + " (2 older files dropped, -W 2)"
	if got := r.describe(); got != want {
		t.Errorf("describe() = %q, want %q", got, want)
	}
}

// Through the command: -C/-W make a ring of files, and the summary names
// them.
func TestCaptureRotates(t *testing.T) {
	dir := t.TempDir()
	o, errOut := fileCapture(t, filepath.Join(dir, "web.pcap"), &helperExec{stdout: pcapOf(t, 10), stderr: helperStats("count")})
	o.Rotate = rotation{Size: 200, Files: 3}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := o.run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dirEntries(t, dir), " "); got != "web.pcap0 web.pcap1 web.pcap2" {
		t.Errorf("files %s, want web.pcap0 web.pcap1 web.pcap2", got)
	}
	for name, nums := range map[string][]int{"web.pcap0": {10}, "web.pcap1": {4, 5, 6}, "web.pcap2": {7, 8, 9}} {
		if got := readNumbers(t, filepath.Join(dir, name), pcapstream.FormatPcap); !equalInts(got, nums) {
			t.Errorf("%s holds %v, want %v", name, got, nums)
		}
	}
	want := "→ 3 files, " + filepath.Join(dir, "web.pcap1") + " … " + filepath.Join(dir, "web.pcap0") + " (1 older file dropped, -W 3); stopped: --count reached\n"
	if !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("stderr %q, want it to end with %q", errOut.String(), want)
	}
}
