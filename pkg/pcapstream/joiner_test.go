package pcapstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// helperStream writes a stream the way the helper does (pkg/capture's
// packetWriter: pcapgo, one interface, nanosecond pcapng timestamps).
func helperStream(t *testing.T, format Format, iface string, snap int, start time.Time, sizes ...int) []byte {
	t.Helper()
	var b bytes.Buffer
	write := func(ci gopacket.CaptureInfo, data []byte) error { return nil }
	switch format {
	case FormatPcapNG:
		ng, err := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{
			Name: iface, Filter: "tcp port 8080", OS: "Linux", LinkType: layers.LinkTypeEthernet,
			SnapLength: uint32(snap), TimestampResolution: 9,
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{OS: "Linux", Application: "netdiag-helper"}})
		if err != nil {
			t.Fatal(err)
		}
		write = func(ci gopacket.CaptureInfo, data []byte) error {
			if err := ng.WritePacket(ci, data); err != nil {
				return err
			}
			return ng.Flush()
		}
	default:
		w := pcapgo.NewWriter(&b)
		if err := w.WriteFileHeader(uint32(snap), layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		write = w.WritePacket
	}
	for i, n := range sizes {
		data := payload(n, byte(i))
		caplen := n
		if caplen > snap {
			caplen = snap
		}
		ci := gopacket.CaptureInfo{Timestamp: start.Add(time.Duration(i) * 100 * time.Millisecond), CaptureLength: caplen, Length: n}
		if err := write(ci, data[:caplen]); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// records reads a joined output back and counts its record types.
func records(t *testing.T, out []byte) (map[RecordType]int, []readPacket) {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("re-reading the output: %v", err)
	}
	counts := map[RecordType]int{}
	var pkts []readPacket
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return counts, pkts
		}
		if err != nil {
			t.Fatalf("re-reading the output: %v", err)
		}
		counts[rec.Type]++
		if p := rec.Packet; p != nil {
			pkts = append(pkts, readPacket{p.Timestamp, p.CaptureLength, p.Length, p.InterfaceID, append([]byte(nil), p.Data...), p.Comments()})
		}
	}
}

var t0 = time.Date(2026, 11, 30, 12, 1, 0, 0, time.UTC)

// joinBroken joins segment 1, segment 2 cut inside its third packet (a
// broken stream), a gap, and segment 3.
func joinBroken(t *testing.T, format Format) ([]byte, *Joiner, string) {
	t.Helper()
	s1 := helperStream(t, format, "eth0", 262144, t0, 60, 1514, 74)
	s2full := helperStream(t, format, "eth0", 262144, t0.Add(5*time.Second), 60, 60, 1514)
	s2 := s2full[:len(s2full)-700] // the stream broke inside the 1514-byte packet
	s3 := helperStream(t, format, "eth0", 262144, t0.Add(19*time.Second), 66, 66)

	var out bytes.Buffer
	j := NewJoiner(&out)
	if st, err := j.Copy(bytes.NewReader(s1)); err != nil || st.Packets != 3 || st.Partial {
		t.Fatalf("segment 1: %+v, %v", st, err)
	}
	st, err := j.Copy(bytes.NewReader(s2))
	if !errors.Is(err, ErrTruncated) || !st.Partial || st.Packets != 2 {
		t.Fatalf("segment 2 (broken): %+v, %v; want 2 packets and ErrTruncated", st, err)
	}
	if !strings.Contains(err.Error(), "capture segment 2: the capture stream ended in the middle of a record") {
		t.Errorf("segment 2 error = %q", err)
	}
	if !st.Last.Equal(t0.Add(5*time.Second + 100*time.Millisecond)) {
		t.Errorf("segment 2 last packet at %v", st.Last)
	}
	comment := j.Gap(st.Last, t0.Add(19*time.Second))
	if st, err := j.Copy(bytes.NewReader(s3)); err != nil || st.Packets != 2 {
		t.Fatalf("segment 3: %+v, %v", st, err)
	}
	return out.Bytes(), j, comment
}

func TestJoinPcapNG(t *testing.T) {
	out, j, comment := joinBroken(t, FormatPcapNG)
	counts, pkts := records(t, out)
	if counts[RecordSection] != 1 || counts[RecordInterface] != 1 {
		t.Errorf("output has %d section headers and %d interfaces, want 1 and 1", counts[RecordSection], counts[RecordInterface])
	}
	if len(pkts) != 7 {
		t.Fatalf("output has %d packets, want 3+2+2", len(pkts))
	}
	want := "stream broke at 12:01:05, resumed at 12:01:19 (14s later): packets in between were not captured"
	if comment != want {
		t.Errorf("gap comment = %q, want %q", comment, want)
	}
	for i, p := range pkts {
		var wantC []string
		if i == 5 { // the first packet of segment 3
			wantC = []string{want}
		}
		if strings.Join(p.comment, "|") != strings.Join(wantC, "|") {
			t.Errorf("packet %d comments = %q, want %q", i, p.comment, wantC)
		}
		if p.iface != 0 {
			t.Errorf("packet %d on interface %d", i, p.iface)
		}
	}
	if !pkts[5].ts.Equal(t0.Add(19*time.Second)) || !bytes.Equal(pkts[5].data, payload(66, 0)) {
		t.Errorf("packet 5 = %+v", pkts[5])
	}
	s := j.Summary()
	if s.Segments != 3 || s.Packets != 7 || s.Gaps != 1 || s.GapTotal != 13900*time.Millisecond || s.Partial != 1 {
		t.Errorf("summary = %+v", s)
	}
	// The helper's first segment is copied as is (its section length was
	// already "unspecified").
	s1 := helperStream(t, FormatPcapNG, "eth0", 262144, t0, 60, 1514, 74)
	if !bytes.HasPrefix(out, s1) {
		t.Error("the output does not start with segment 1 unchanged")
	}
	// The whole output also reads with gopacket's own reader.
	ngr, err := pcapgo.NewNgReader(bytes.NewReader(out), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, _, err := ngr.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapgo: packet %d: %v", n, err)
		}
		n++
	}
	if n != 7 {
		t.Errorf("pcapgo reads %d packets, want 7", n)
	}
}

func TestJoinPcap(t *testing.T) {
	out, j, _ := joinBroken(t, FormatPcap)
	// One 24-byte header, then only records: 7 packets, no second header.
	wantLen := 24
	for _, n := range []int{60, 1514, 74, 60, 60, 66, 66} {
		wantLen += 16 + n
	}
	if len(out) != wantLen {
		t.Errorf("output is %d bytes, want %d (one header and 7 records)", len(out), wantLen)
	}
	counts, pkts := records(t, out)
	if counts[RecordSection] != 1 || len(pkts) != 7 {
		t.Errorf("output: %d headers, %d packets", counts[RecordSection], len(pkts))
	}
	if !pkts[5].ts.Equal(t0.Add(19 * time.Second)) {
		t.Errorf("packet 5 at %v", pkts[5].ts)
	}
	if s := j.Summary(); s.Gaps != 1 || s.Segments != 3 || s.Packets != 7 {
		t.Errorf("summary = %+v", s)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 7 {
		t.Errorf("pcapgo reads %d packets", n)
	}
}

// TestJoinPcapNGMapping: a later segment in the other byte order, with
// another timestamp resolution and its interfaces in another order, is
// mapped onto the first's interfaces; its blocks are handled as documented.
func mappedJoin(t *testing.T) []byte {
	out, _ := mappedJoiner(t)
	return out
}

func mappedJoiner(t *testing.T) ([]byte, *Joiner) {
	t.Helper()
	le, be := binary.LittleEndian, binary.BigEndian
	s1 := newNg(le, opt{4, []byte("netdiag-helper")}).
		idb(1, 262144, opt{2, []byte("eth0")}, opt{9, u8(9)}).
		idb(1, 100, opt{2, []byte("lo")}, opt{9, u8(9)}).
		epb(0, 1_000_000_000, payload(10, 1), 10).
		epb(1, 2_000_000_000, payload(20, 2), 20).bytes()
	s2 := newNg(be).
		idb(1, 262144, opt{2, []byte("lo")}, opt{9, u8(6)}).
		idb(1, 262144, opt{2, []byte("eth0")}).
		epb(1, 3_000_000, payload(30, 3), 30, opt{1, []byte("kept")}, opt{2, u64(be, 7)[:4]}).
		epb(0, 4_000_001, payload(200, 4), 300). // longer than the output's lo snaplen
		isb(0).
		bytes()
	s3 := newNg(le).
		idb(1, 262144, opt{2, []byte("lo")}, opt{9, u8(9)}).
		isb(0).
		spb(payload(8, 5), 8).bytes()
	var out bytes.Buffer
	j := NewJoiner(&out)
	for i, s := range [][]byte{s1, s2, s3} {
		if i == 2 {
			j.Gap(time.Unix(5, 0), time.Unix(6, 0))
		}
		if _, err := j.Copy(bytes.NewReader(s)); err != nil {
			t.Fatalf("segment %d: %v", i+1, err)
		}
	}
	return out.Bytes(), j
}

func TestJoinPcapNGMapping(t *testing.T) {
	out, j := mappedJoiner(t)
	le := binary.LittleEndian
	counts, pkts := records(t, out)
	if counts[RecordSection] != 1 || counts[RecordInterface] != 2 {
		t.Errorf("output: %v", counts)
	}
	if len(pkts) != 5 {
		t.Fatalf("%d packets, want 5", len(pkts))
	}
	want := []struct {
		iface  int
		ts     time.Time
		caplen int
		c      string
	}{
		{0, time.Unix(1, 0), 10, ""},
		{1, time.Unix(2, 0), 20, ""},
		{0, time.Unix(3, 0), 30, "kept"},                                      // eth0 of s2 → 0; µs → ns; only the comment option survives the byte-order change
		{1, time.Unix(4, 1000), 100, ""},                                      // lo of s2 → 1, cut to lo's snaplen 100
		{1, time.Unix(0, 0), 8, GapComment(time.Unix(5, 0), time.Unix(6, 0))}, // s3's simple packet on lo → an EPB on 1 with the gap comment
	}
	for i, w := range want {
		p := pkts[i]
		if p.iface != w.iface || !p.ts.Equal(w.ts) || p.caplen != w.caplen || strings.Join(p.comment, "|") != w.c {
			t.Errorf("packet %d = iface %d ts %v caplen %d comments %q; want %+v", i, p.iface, p.ts, p.caplen, p.comment, w)
		}
	}
	if pkts[3].length != 300 || !bytes.Equal(pkts[3].data, payload(200, 4)[:100]) {
		t.Errorf("truncated packet: length %d data %x", pkts[3].length, pkts[3].data)
	}
	s := j.Summary()
	if s.Truncated != 1 || s.DroppedBlocks != 1 || s.Segments != 3 || s.Packets != 5 {
		t.Errorf("summary = %+v (want 1 truncated, 1 dropped: s2's statistics block in the other byte order)", s)
	}
	// s3's statistics block (same byte order) is passed through with its
	// interface id mapped: lo is 0 in s3, 1 in the output.
	rd, _ := NewReader(bytes.NewReader(out))
	for {
		rec, err := rd.Next()
		if err != nil {
			t.Fatal("no statistics block in the output")
		}
		if rec.BlockType == blockISB {
			if id := le.Uint32(rec.Raw[8:]); id != 1 {
				t.Errorf("statistics block for interface %d, want 1", id)
			}
			break
		}
	}
}

func TestJoinIncompatible(t *testing.T) {
	le := binary.LittleEndian
	pcapEth := newPcap(le, false, 65535, 1).packet(1, 0, payload(10, 1), 10).bytes()
	for _, tc := range []struct {
		name        string
		first, next []byte
		want        string
	}{
		{"pcap then pcapng", pcapEth, ngSample(le), "capture segment 2 is pcapng but the output is pcap"},
		{"pcapng then pcap", ngSample(le), pcapEth, "capture segment 2 is pcap but the output is pcapng"},
		{"link type", pcapEth, newPcap(le, false, 65535, 113).bytes(), "capture segment 2 has link type 113 but the output has 1"},
		{"interface", ngSample(le), newNg(le).idb(1, 0, opt{2, []byte("eth1")}).bytes(),
			`capture segment 2's interface 0 (eth1, link type 1) matches no interface of the output (eth0, link type 1; lo, link type 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			j := NewJoiner(&out)
			if _, err := j.Copy(bytes.NewReader(tc.first)); err != nil {
				t.Fatal(err)
			}
			before := out.Len()
			_, err := j.Copy(bytes.NewReader(tc.next))
			if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want ErrIncompatible containing %q", err, tc.want)
			}
			if out.Len() != before {
				t.Errorf("an incompatible segment wrote %d bytes", out.Len()-before)
			}
		})
	}
}

// TestJoinPcapSnaplen: a later pcap segment with a larger snaplen is cut
// to the first's.
func TestJoinPcapSnaplen(t *testing.T) {
	le := binary.LittleEndian
	s1 := newPcap(le, false, 64, 1).packet(1, 0, payload(64, 1), 1500).bytes()
	s2 := newPcap(binary.BigEndian, true, 65535, 1).packet(2, 500, payload(1000, 2), 1000).bytes()
	var out bytes.Buffer
	j := NewJoiner(&out)
	for _, s := range [][]byte{s1, s2} {
		if _, err := j.Copy(bytes.NewReader(s)); err != nil {
			t.Fatal(err)
		}
	}
	_, pkts := records(t, out.Bytes())
	if len(pkts) != 2 || pkts[1].caplen != 64 || pkts[1].length != 1000 || !pkts[1].ts.Equal(time.Unix(2, 0)) {
		t.Fatalf("packets = %+v (want the second cut to 64 bytes, its ns timestamp in µs)", pkts)
	}
	if s := j.Summary(); s.Truncated != 1 || s.Bytes != 128 {
		t.Errorf("summary = %+v", s)
	}
}

// TestJoinFirstSegmentWithoutHeader: a segment that broke before its
// header was complete writes nothing; the next one becomes the first.
func TestJoinFirstSegmentWithoutHeader(t *testing.T) {
	s := helperStream(t, FormatPcapNG, "eth0", 262144, t0, 60)
	var out bytes.Buffer
	j := NewJoiner(&out)
	st, err := j.Copy(bytes.NewReader(s[:20]))
	if !errors.Is(err, ErrTruncated) || !st.Partial || out.Len() != 0 {
		t.Fatalf("half a header: %+v, %v, %d bytes written", st, err, out.Len())
	}
	if _, err := j.Copy(bytes.NewReader(s)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), s) {
		t.Error("the first complete segment is not copied as is")
	}
	if sum := j.Summary(); sum.Segments != 1 || sum.Partial != 1 {
		t.Errorf("summary = %+v", sum)
	}
}

func TestJoinGarbage(t *testing.T) {
	var out bytes.Buffer
	j := NewJoiner(&out)
	_, err := j.Copy(strings.NewReader("Error from server: container not found\n"))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `capture segment 1: the capture stream is corrupt: not a pcap or pcapng stream: it starts with 45 72 72 6f ("Erro")`) {
		t.Fatalf("error = %v", err)
	}
}

// TestJoinLive: each packet reaches the output as soon as its last byte
// was read, before the stream goes on or ends; a stream that then breaks
// mid-packet leaves the output valid, and the next segment continues it.
func TestJoinLive(t *testing.T) {
	s := helperStream(t, FormatPcapNG, "eth0", 262144, t0, 100, 200)
	epb1 := len(helperStream(t, FormatPcapNG, "eth0", 262144, t0, 100)) // header and packet 1
	hdrLen := epb1 - (28 + 100 + 4)
	pr, pw := io.Pipe()
	out := &notifyWriter{ch: make(chan int, 10)}
	j := NewJoiner(out)
	done := make(chan error, 1)
	go func() {
		_, err := j.Copy(pr)
		done <- err
	}()
	if _, err := pw.Write(s[:epb1-1]); err != nil { // all but the last byte of packet 1
		t.Fatal(err)
	}
	if n := waitFor(t, out, hdrLen); n != hdrLen {
		t.Fatalf("output has %d bytes before packet 1 is complete, want the %d-byte header", n, hdrLen)
	}
	if _, err := pw.Write(s[epb1-1 : epb1+10]); err != nil { // its last byte and 10 of packet 2
		t.Fatal(err)
	}
	if n := waitFor(t, out, epb1); n != epb1 {
		t.Fatalf("output has %d bytes, want %d (header and packet 1)", n, epb1)
	}
	cause := errors.New("websocket: close 1006 (abnormal closure): unexpected EOF")
	pw.CloseWithError(cause)
	err := <-done
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, cause) {
		t.Fatalf("Copy = %v, want ErrTruncated wrapping the stream's error", err)
	}
	j.Gap(t0.Add(time.Second), t0.Add(3*time.Second))
	if _, err := j.Copy(bytes.NewReader(helperStream(t, FormatPcapNG, "eth0", 262144, t0.Add(3*time.Second), 50))); err != nil {
		t.Fatal(err)
	}
	counts, pkts := records(t, out.bytes())
	if counts[RecordSection] != 1 || len(pkts) != 2 || len(pkts[1].comment) != 1 {
		t.Errorf("output: %v, packets %+v", counts, pkts)
	}
}

type notifyWriter struct {
	buf bytes.Buffer
	ch  chan int
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	w.ch <- w.buf.Len()
	return len(p), nil
}

func (w *notifyWriter) bytes() []byte { return w.buf.Bytes() }

// waitFor waits until the output has at least n bytes (or 100ms pass
// without a write) and returns how many it has.
func waitFor(t *testing.T, w *notifyWriter, n int) int {
	t.Helper()
	got := 0
	for got < n {
		select {
		case got = <-w.ch:
		case <-time.After(2 * time.Second):
			return got
		}
	}
	select {
	case got = <-w.ch:
	case <-time.After(100 * time.Millisecond):
	}
	return got
}

func TestGapComment(t *testing.T) {
	for _, tc := range []struct {
		from, to time.Time
		want     string
	}{
		{t0.Add(7 * time.Second), t0.Add(19 * time.Second), "stream broke at 12:01:07, resumed at 12:01:19 (12s later): packets in between were not captured"},
		{t0, t0.Add(250 * time.Millisecond), "stream broke at 12:01:00, resumed at 12:01:00 (250ms later): packets in between were not captured"},
		{time.Date(2026, 11, 30, 23, 59, 50, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 5, 0, time.UTC),
			"stream broke at 2026-11-30 23:59:50, resumed at 2026-12-01 00:00:05 (15s later): packets in between were not captured"},
	} {
		if got := GapComment(tc.from, tc.to); got != tc.want {
			t.Errorf("GapComment = %q, want %q", got, tc.want)
		}
	}
}

// TestJoinFirstSegmentBrokeAfterSectionHeader: the first segment broke
// inside its interface description; the next segment's interface is the
// output's.
func TestJoinFirstSegmentBrokeAfterSectionHeader(t *testing.T) {
	s := helperStream(t, FormatPcapNG, "eth0", 262144, t0, 60)
	shb := int(binary.LittleEndian.Uint32(s[4:]))
	var out bytes.Buffer
	j := NewJoiner(&out)
	if _, err := j.Copy(bytes.NewReader(s[:shb+10])); !errors.Is(err, ErrTruncated) {
		t.Fatalf("segment 1: %v, want ErrTruncated", err)
	}
	if _, err := j.Copy(bytes.NewReader(s)); err != nil {
		t.Fatal(err)
	}
	counts, pkts := records(t, out.Bytes())
	if counts[RecordSection] != 1 || counts[RecordInterface] != 1 || len(pkts) != 1 {
		t.Errorf("output: %v, %d packets", counts, len(pkts))
	}
}

// TestJoinSecondSectionInOneSegment: a stream with two sections (the
// second in the other byte order) becomes one section.
func TestJoinSecondSectionInOneSegment(t *testing.T) {
	in := append(ngSample(binary.LittleEndian), ngSample(binary.BigEndian)...)
	var out bytes.Buffer
	j := NewJoiner(&out)
	if _, err := j.Copy(bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	counts, pkts := records(t, out.Bytes())
	if counts[RecordSection] != 1 || counts[RecordInterface] != 2 || len(pkts) != 6 {
		t.Errorf("output: %v, %d packets", counts, len(pkts))
	}
	if s := j.Summary(); s.Segments != 1 || s.Packets != 6 {
		t.Errorf("summary = %+v", s)
	}
	if pkts[4].iface != 1 || string(pkts[4].data) != string(payload(128, 2)) {
		t.Errorf("packet 4 = %+v", pkts[4])
	}
}
