package pcapstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is an output a test reads while the merger writes it.
type syncBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	err error // returned by every Write once set
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	return s.b.Write(p)
}

func (s *syncBuffer) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// merged is a merged output as read back.
type merged struct {
	ifaces  []Interface
	descr   []string
	packets []mergedPacket
}

type mergedPacket struct {
	iface    int
	ts       time.Time
	seed     byte // first data byte: which source and packet
	comments []string
}

func readMerged(t *testing.T, b []byte) merged {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("merged output: %v", err)
	}
	var m merged
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("merged output: %v", err)
		}
		if rec.Type == RecordSection && rd.Header().ByteOrder != binary.LittleEndian {
			t.Errorf("output byte order %v", rd.Header().ByteOrder)
		}
		if rec.Type == RecordPacket {
			p := rec.Packet
			m.packets = append(m.packets, mergedPacket{iface: p.InterfaceID, ts: p.Timestamp, seed: p.Data[0], comments: p.Comments()})
		}
	}
	m.ifaces = rd.Interfaces()
	for _, i := range m.ifaces {
		d := ""
		for _, o := range i.Options {
			if o.Code == optIfDescription {
				d = string(o.Value)
			}
		}
		m.descr = append(m.descr, d)
	}
	return m
}

func describeAs(pod string) func(string) string {
	return func(ifName string) string { return ifName + " of " + pod + " on node node-1" }
}

var mt0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// podStream is a helper's pcapng: nanosecond interface eth0, packets at
// mt0 + offsets (ms), the data's first byte seed+i.
func podStream(bo binary.ByteOrder, seed byte, offsetsMS ...int) []byte {
	n := newNg(bo, opt{4, []byte("netdiag-helper")}).idb(1, 262144, opt{2, []byte("eth0")}, opt{9, u8(9)}, opt{12, []byte("Linux")})
	for i, ms := range offsetsMS {
		ts := mt0.Add(time.Duration(ms) * time.Millisecond)
		n.epb(0, uint64(ts.UnixNano()), payload(60, seed+byte(i)), 60)
	}
	return n.bytes()
}

func TestMergeOrderAndInterfaces(t *testing.T) {
	var out syncBuffer
	m, err := NewMergeWriter(&out, MergeOptions{Application: "kubectl-netdiag"})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Add(MergeInfo{Name: "shop/web-0", Describe: describeAs("shop/web-0")})
	b := m.Add(MergeInfo{Name: "shop/web-1", Describe: describeAs("shop/web-1")})
	// A microsecond pcapng (no if_tsresol) in the other byte order, with a
	// comment on its packet.
	c := m.Add(MergeInfo{Name: "shop/web-2", Describe: describeAs("shop/web-2")})
	empty := m.Add(MergeInfo{Name: "shop/web-3"})

	if _, err := a.Write(podStream(binary.LittleEndian, 10, 0, 20, 40, 60)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(podStream(binary.LittleEndian, 20, 10, 30, 50)); err != nil {
		t.Fatal(err)
	}
	cs := newNg(binary.BigEndian).idb(1, 128, opt{2, []byte("eth0")})
	cs.epb(0, uint64(mt0.Add(35*time.Millisecond).UnixMicro()), payload(60, 30), 60, opt{1, []byte("gap")})
	if _, err := c.Write(cs.bytes()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []io.WriteCloser{a, b, c, empty} {
		if err := s.Close(); err != nil {
			t.Errorf("source Close: %v", err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got := readMerged(t, out.bytes())
	// Interfaces are numbered as their descriptions arrive.
	byName := map[string]int{}
	for k, i := range got.ifaces {
		byName[i.Name] = k
		want := "eth0 of " + i.Name + " on node node-1"
		if got.descr[k] != want {
			t.Errorf("interface %d (%s): description %q, want %q", k, i.Name, got.descr[k], want)
		}
	}
	if len(got.ifaces) != 3 || len(byName) != 3 {
		t.Fatalf("interfaces %+v, want shop/web-0, shop/web-1, shop/web-2", got.ifaces)
	}
	if web0, web2 := got.ifaces[byName["shop/web-0"]], got.ifaces[byName["shop/web-2"]]; web0.Resolution != 1e9 || web2.Resolution != 1e6 || web2.SnapLen != 128 {
		t.Errorf("interfaces keep their resolution and snaplen: %+v", got.ifaces)
	}
	var order []string
	for _, p := range got.packets {
		order = append(order, fmt.Sprintf("%s:%d@%d", got.ifaces[p.iface].Name, p.seed, p.ts.Sub(mt0).Milliseconds()))
	}
	want := "shop/web-0:10@0 shop/web-1:20@10 shop/web-0:11@20 shop/web-1:21@30 shop/web-2:30@35 shop/web-0:12@40 shop/web-1:22@50 shop/web-0:13@60"
	if strings.Join(order, " ") != want {
		t.Errorf("merged order\n got %s\nwant %s", strings.Join(order, " "), want)
	}
	if p := got.packets[4]; fmt.Sprint(p.comments) != "[gap]" {
		t.Errorf("the comment of the other byte order's packet: %q", p.comments)
	}
	sum := m.Summary()
	if sum.Sources != 4 || sum.Interfaces != 3 || sum.Packets != 8 || sum.Bytes != 480 || sum.Late != 0 {
		t.Errorf("summary %+v", sum)
	}
	if st := m.SourceStats(0); st.Packets != 4 || st.Bytes != 240 || st.Err != nil {
		t.Errorf("source 0 stats %+v", st)
	}
}

// waitPackets waits until the output holds n packets.
func waitPackets(t *testing.T, out *syncBuffer, n int, within time.Duration) merged {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := readPartial(t, out.bytes())
		if len(got.packets) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d packets in the output after %s, want %d", len(got.packets), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readPartial reads a live output so far.
func readPartial(t *testing.T, b []byte) merged {
	t.Helper()
	var m merged
	if len(b) == 0 {
		return m // nothing yet
	}
	rd, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("live output does not start with a section header: %v", err)
	}
	for {
		p, err := rd.NextPacket()
		if err != nil {
			break
		}
		m.packets = append(m.packets, mergedPacket{iface: p.InterfaceID, ts: p.Timestamp, seed: p.Data[0]})
	}
	m.ifaces = rd.Interfaces()
	return m
}

// A quiet source does not stall the others: a packet is written within
// the window while another source stays open without a packet.
func TestMergeQuietSourceDoesNotStall(t *testing.T) {
	var out syncBuffer
	m, err := NewMergeWriter(&out, MergeOptions{Window: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.bytes()); n != 0 {
		t.Fatalf("%d bytes written before any source", n)
	}
	busy := m.Add(MergeInfo{Name: "shop/busy"})
	quiet := m.Add(MergeInfo{Name: "shop/quiet"})
	if _, err := quiet.Write(newNg(binary.LittleEndian).idb(1, 262144, opt{2, []byte("eth0")}).bytes()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := busy.Write(podStream(binary.LittleEndian, 1, 0)); err != nil {
		t.Fatal(err)
	}
	got := waitPackets(t, &out, 1, 2*time.Second)
	if held := time.Since(start); held < 40*time.Millisecond {
		t.Errorf("the packet was written after %s, before the 50ms window", held)
	}
	if len(got.ifaces) != 2 {
		t.Errorf("both interfaces are described while the capture runs: %d", len(got.ifaces))
	}
	_ = busy.Close()
	_ = quiet.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// Packets that arrive within the window of each other come out in
// timestamp order, live; with every source holding a packet, the earliest
// goes out at once.
func TestMergeLiveReorder(t *testing.T) {
	var out syncBuffer
	m, err := NewMergeWriter(&out, MergeOptions{Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Add(MergeInfo{Name: "shop/a"})
	b := m.Add(MergeInfo{Name: "shop/b"})
	if _, err := a.Write(podStream(binary.LittleEndian, 10, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(podStream(binary.LittleEndian, 20, 50, 150)); err != nil {
		t.Fatal(err)
	}
	// b@50 and a@100 are safe (each source has a later packet or is the
	// earliest); b@150 waits for a's next packet.
	got := waitPackets(t, &out, 2, 2*time.Second)
	time.Sleep(50 * time.Millisecond)
	got = readPartial(t, out.bytes())
	if len(got.packets) != 2 || got.packets[0].seed != 20 || got.packets[1].seed != 10 {
		t.Errorf("live packets %+v, want b@50 then a@100 (b@150 held)", got.packets)
	}
	_ = a.Close() // a ended: nothing can come before b@150
	waitPackets(t, &out, 3, 2*time.Second)
	_ = b.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// A source more than the window behind is written late, not dropped.
func TestMergeLatePacket(t *testing.T) {
	var out syncBuffer
	m, err := NewMergeWriter(&out, MergeOptions{Window: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Add(MergeInfo{Name: "shop/a"})
	b := m.Add(MergeInfo{Name: "shop/b"})
	if _, err := a.Write(podStream(binary.LittleEndian, 10, 100)); err != nil {
		t.Fatal(err)
	}
	waitPackets(t, &out, 1, 2*time.Second)
	if _, err := b.Write(podStream(binary.LittleEndian, 20, 50)); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_ = b.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got := readMerged(t, out.bytes())
	if len(got.packets) != 2 || got.packets[1].seed != 20 {
		t.Errorf("packets %+v", got.packets)
	}
	if s := m.Summary(); s.Late != 1 || s.Packets != 2 {
		t.Errorf("summary %+v, want 1 late of 2", s)
	}
}

// When the output fails (its reader went away), every source's writes
// fail with that error, so each capture stops.
func TestMergeOutputFailureReachesSources(t *testing.T) {
	out := &syncBuffer{}
	m, err := NewMergeWriter(out, MergeOptions{Window: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Add(MergeInfo{Name: "shop/a"})
	b := m.Add(MergeInfo{Name: "shop/b"})
	out.mu.Lock()
	out.err = syscall.EPIPE
	out.mu.Unlock()
	if _, err := a.Write(podStream(binary.LittleEndian, 10, 0)); err != nil {
		t.Fatalf("the first write (before the output was written): %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := b.Write(podStream(binary.LittleEndian, 20, 0))
		if errors.Is(err, syscall.EPIPE) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source write after the output failed: %v, want EPIPE", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = a.Close()
	_ = b.Close()
	if err := m.Close(); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Close: %v, want EPIPE", err)
	}
}

// A classic pcap source and a corrupt one.
func TestMergePcapAndCorruptSources(t *testing.T) {
	var out syncBuffer
	m, err := NewMergeWriter(&out, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Add(MergeInfo{Name: "shop/p", Describe: describeAs("shop/p")})
	bad := m.Add(MergeInfo{Name: "shop/bad"})
	sec := uint32(mt0.Unix())
	if _, err := p.Write(newPcap(binary.LittleEndian, false, 65535, 1).packet(sec, 5, payload(40, 7), 40).bytes()); err != nil {
		t.Fatal(err)
	}
	_, _ = bad.Write([]byte("exec: netdiag-helper: not found\n"))
	if err := p.Close(); err != nil {
		t.Errorf("pcap source: %v", err)
	}
	if err := bad.Close(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt source Close: %v, want ErrCorrupt", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got := readMerged(t, out.bytes())
	if len(got.ifaces) != 1 || got.ifaces[0].Name != "shop/p" || got.descr[0] != " of shop/p on node node-1" || got.ifaces[0].SnapLen != 65535 {
		t.Errorf("interfaces %+v %q", got.ifaces, got.descr)
	}
	if len(got.packets) != 1 || !got.packets[0].ts.Equal(mt0.Add(5*time.Microsecond)) {
		t.Errorf("packets %+v", got.packets)
	}
}

// Wireshark lists each source as a named interface.
func TestMergedOutputInWireshark(t *testing.T) {
	tshark := needTool(t, "tshark")
	capinfos := needTool(t, "capinfos")
	var out syncBuffer
	m, err := NewMergeWriter(&out, MergeOptions{Application: "kubectl-netdiag"})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Add(MergeInfo{Name: "shop/web-0", Describe: describeAs("shop/web-0")})
	b := m.Add(MergeInfo{Name: "shop/web-1", Describe: describeAs("shop/web-1")})
	_, _ = a.Write(podStream(binary.LittleEndian, 10, 0, 20))
	_, _ = b.Write(podStream(binary.BigEndian, 20, 10))
	_ = a.Close()
	_ = b.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "merged.pcapng")
	if err := os.WriteFile(f, out.bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	fields := run(t, tshark, "-r", f, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description")
	want := "shop/web-0\teth0 of shop/web-0 on node node-1\nshop/web-1\teth0 of shop/web-1 on node node-1\nshop/web-0\teth0 of shop/web-0 on node node-1\n"
	if fields != want {
		t.Errorf("tshark:\n%s\nwant:\n%s", fields, want)
	}
	info := run(t, capinfos, "-I", f)
	for _, s := range []string{"Number of interfaces in file: 2", "Name = shop/web-0", "Name = shop/web-1", "Description = eth0 of shop/web-1 on node node-1"} {
		if !strings.Contains(info, s) {
			t.Errorf("capinfos -I lacks %q:\n%s", s, info)
		}
	}
}
