package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// ringPacket is a packet as the kernel leaves it in a TPACKET_V3 block.
type ringPacket struct {
	sec, nsec uint32
	data      []byte // what the ring holds (tp_snaplen bytes)
	origLen   int    // tp_len; 0 means len(data)
	status    uint32
	tci, tpid uint16
	gap       int // extra bytes before the next packet (tp_next_offset)
}

// ringMacOffset is where the kernel puts an Ethernet frame after its
// tpacket3_hdr (the header, a sockaddr_ll, aligned): not right after it.
const ringMacOffset = 82

// buildBlock lays out a block of size bytes the way the kernel does: the
// descriptor, the first packet 48 bytes in, each packet 8-byte aligned and
// chained by tp_next_offset (0 on the last).
func buildBlock(t testing.TB, size int, pkts []ringPacket) []byte {
	t.Helper()
	blk := make([]byte, size)
	hostEndian.PutUint32(blk[0:], 3) // version
	hostEndian.PutUint32(blk[bdBlockStatus:], tpStatusUser)
	hostEndian.PutUint32(blk[bdNumPkts:], uint32(len(pkts)))
	hostEndian.PutUint32(blk[bdFirstPkt:], blockDescLen)
	off := blockDescLen
	for i, p := range pkts {
		n := (ringMacOffset + len(p.data) + 7) &^ 7
		next := n + p.gap
		if i == len(pkts)-1 {
			next = 0
		}
		if off+n > size {
			t.Fatalf("packet %d does not fit in a %d-byte block", i, size)
		}
		h := blk[off:]
		orig := p.origLen
		if orig == 0 {
			orig = len(p.data)
		}
		hostEndian.PutUint32(h[thNextOffset:], uint32(next))
		hostEndian.PutUint32(h[thSec:], p.sec)
		hostEndian.PutUint32(h[thNsec:], p.nsec)
		hostEndian.PutUint32(h[thSnaplen:], uint32(len(p.data)))
		hostEndian.PutUint32(h[thLen:], uint32(orig))
		hostEndian.PutUint32(h[thStatus:], tpStatusUser|p.status)
		hostEndian.PutUint16(h[thMac:], ringMacOffset)
		hostEndian.PutUint16(h[thMac+2:], ringMacOffset+14)
		hostEndian.PutUint32(h[thVlanTCI:], uint32(p.tci))
		hostEndian.PutUint16(h[thVlanTPID:], p.tpid)
		// Poison between the header and the frame: a walker that reads
		// from the wrong offset writes these bytes.
		for j := tpacket3HdrLen; j < ringMacOffset; j++ {
			h[j] = 0xee
		}
		copy(h[ringMacOffset:], p.data)
		off += next
	}
	return blk
}

func frame(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// blockOutput writes the blocks with a recordWriter and returns the file.
func blockOutput(t *testing.T, info Source, cfg Config, blocks ...[]byte) ([]byte, *recordWriter, string) {
	t.Helper()
	var out bytes.Buffer
	w := newRecordWriter(&stickyWriter{w: &out}, info, cfg)
	if err := w.writeHeader(info, cfg); err != nil {
		t.Fatal(err)
	}
	var reason string
	for _, b := range blocks {
		r, err := w.writeBlock(b)
		if err != nil {
			t.Fatalf("writeBlock: %v", err)
		}
		if r != "" {
			reason = r
			break
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), w, reason
}

// wantPacket is a packet as it must come out in the file.
type wantPacket struct {
	ts      time.Time
	data    []byte
	origLen int
}

// referenceFile writes the packets with gopacket's own pcapgo writers: the
// block walker's output must be byte for byte the same.
func referenceFile(t *testing.T, info Source, cfg Config, pkts []wantPacket) []byte {
	t.Helper()
	var buf bytes.Buffer
	if cfg.Format == FormatPcapNG {
		ng, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{
			Name: info.Interface, Filter: cfg.Filter, OS: "Linux", LinkType: info.LinkType,
			SnapLength: uint32(cfg.Snaplen), TimestampResolution: 9,
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{OS: "Linux", Application: "netdiag-helper"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: p.origLen}
			if err := ng.WritePacket(ci, p.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := ng.Flush(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(uint32(cfg.Snaplen), info.LinkType); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: p.origLen}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestWriteBlockMatchesPcapgo(t *testing.T) {
	big := frame(7, 300)
	cut := frame(9, 50) // the filter's snaplen already cut it in the kernel
	pkts := []ringPacket{
		{sec: 1700000000, nsec: 123456789, data: frame(1, 60)},
		{sec: 1700000001, nsec: 999, data: frame(2, 61), gap: 24},          // chained past a hole
		{sec: 1700000002, nsec: 5, data: big},                              // cut by --snaplen
		{sec: 1700000003, nsec: 999999999, data: cut, origLen: 1000},       // already cut
		{sec: 1700000004, nsec: 1000, data: frame(3, 1514), gap: 4096},     // a full frame
		{sec: 1700000005, nsec: 0, data: frame(4, 97), status: 0x8 | 0x80}, // csum statuses: no effect
	}
	want := []wantPacket{
		{time.Unix(1700000000, 123456789), frame(1, 60), 60},
		{time.Unix(1700000001, 999), frame(2, 61), 61},
		{time.Unix(1700000002, 5), big[:100], 300},
		{time.Unix(1700000003, 999999999), cut, 1000},
		{time.Unix(1700000004, 1000), frame(3, 100), 1514},
		{time.Unix(1700000005, 0), frame(4, 97), 97},
	}
	for _, format := range []string{FormatPcap, FormatPcapNG} {
		t.Run(format, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Format = format
			cfg.Snaplen = 100
			cfg.Filter = "udp"
			blk := buildBlock(t, 16<<10, pkts)
			got, w, reason := blockOutput(t, info, cfg, blk)
			if reason != "" {
				t.Fatalf("stopped with %q", reason)
			}
			if w.packets != uint64(len(want)) || w.bytes != 60+61+100+50+100+97 {
				t.Errorf("counted %d packets, %d bytes; want %d, %d", w.packets, w.bytes, len(want), 60+61+100+50+100+97)
			}
			if ref := referenceFile(t, info, cfg, want); !bytes.Equal(got, ref) {
				t.Fatalf("output differs from pcapgo's:\n got %x\nwant %x", got, ref)
			}
		})
	}
}

func TestWriteBlockVLAN(t *testing.T) {
	eth := frame(0x10, 60)
	pkts := []ringPacket{
		{sec: 1, data: eth, status: tpStatusVLANValid, tci: 0x2064},                                  // 802.1Q, TPID implied
		{sec: 2, data: eth, status: tpStatusVLANValid | tpStatusVLANTPIDValid, tci: 7, tpid: 0x88a8}, // 802.1ad
		{sec: 3, data: eth, tci: 0x55},                                                               // tag fields without the status bit: no tag
		{sec: 4, data: eth[:10], status: tpStatusVLANValid, tci: 9},                                  // too short for addresses: as is
	}
	tagged := func(tpid, tci uint16) []byte {
		b := append([]byte{}, eth[:12]...)
		b = append(b, byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci))
		return append(b, eth[12:]...)
	}
	cfg := DefaultConfig()
	got, _, _ := blockOutput(t, info, cfg, buildBlock(t, 4096, pkts))
	want := referenceFile(t, info, cfg, []wantPacket{
		{time.Unix(1, 0), tagged(0x8100, 0x2064), 64},
		{time.Unix(2, 0), tagged(0x88a8, 7), 64},
		{time.Unix(3, 0), eth, 60},
		{time.Unix(4, 0), eth[:10], 10},
	})
	if !bytes.Equal(got, want) {
		t.Fatalf("Ethernet output:\n got %x\nwant %x", got, want)
	}

	// The tag counts against the snapshot length, as in libpcap.
	cfg.Snaplen = 62
	got, _, _ = blockOutput(t, info, cfg, buildBlock(t, 4096, pkts[:1]))
	want = referenceFile(t, info, cfg, []wantPacket{{time.Unix(1, 0), tagged(0x8100, 0x2064)[:62], 64}})
	if !bytes.Equal(got, want) {
		t.Fatalf("snaplen 62:\n got %x\nwant %x", got, want)
	}

	// Frames without a link layer (tun, WireGuard) have no place for a tag.
	raw := Source{Interface: "wg0", LinkType: layers.LinkTypeRaw}
	cfg = DefaultConfig()
	got, _, _ = blockOutput(t, raw, cfg, buildBlock(t, 4096, pkts[:1]))
	want = referenceFile(t, raw, cfg, []wantPacket{{time.Unix(1, 0), eth, 60}})
	if !bytes.Equal(got, want) {
		t.Fatalf("raw IP output:\n got %x\nwant %x", got, want)
	}
}

func TestWriteBlockLimits(t *testing.T) {
	pkts := []ringPacket{{data: frame(1, 100)}, {data: frame(2, 100)}, {data: frame(3, 100)}, {data: frame(4, 100)}}
	cfg := DefaultConfig()
	cfg.Count = 3
	got, w, reason := blockOutput(t, info, cfg, buildBlock(t, 4096, pkts[:2]), buildBlock(t, 4096, pkts[2:]))
	if reason != ReasonCount || w.packets != 3 || len(readPcap(t, got)) != 3 {
		t.Fatalf("--count 3 over two blocks: reason %q, %d packets counted, %d in the file", reason, w.packets, len(readPcap(t, got)))
	}

	cfg = DefaultConfig()
	cfg.MaxBytes = 250
	got, w, reason = blockOutput(t, info, cfg, buildBlock(t, 4096, pkts))
	if reason != ReasonMaxBytes || w.bytes != 200 || len(readPcap(t, got)) != 2 {
		t.Fatalf("--max-bytes 250: reason %q, %d bytes counted, %d packets in the file", reason, w.bytes, len(readPcap(t, got)))
	}
}

func TestWriteBlockEmpty(t *testing.T) {
	got, w, reason := blockOutput(t, info, DefaultConfig(), buildBlock(t, 4096, nil))
	if reason != "" || w.packets != 0 || len(got) != 24 {
		t.Fatalf("empty block: reason %q, %d packets, %d bytes", reason, w.packets, len(got))
	}
}

func TestWriteBlockMalformed(t *testing.T) {
	two := []ringPacket{{data: frame(1, 60)}, {data: frame(2, 60)}}
	tests := []struct {
		name  string
		block func() []byte
		want  string
	}{
		{"shorter than the descriptor", func() []byte { return make([]byte, 20) }, "20 bytes, shorter than its 48-byte descriptor"},
		{"more packets than chained", func() []byte {
			b := buildBlock(t, 4096, two)
			hostEndian.PutUint32(b[blockDescLen+thNextOffset:], 0)
			return b
		}, "packet 1 of 2 has no next offset"},
		{"next offset past the end", func() []byte {
			b := buildBlock(t, 4096, two)
			hostEndian.PutUint32(b[blockDescLen+thNextOffset:], 8192)
			return b
		}, "packet 1 of 2 points past the block's 4096 bytes"},
		{"data past the end", func() []byte {
			b := buildBlock(t, 4096, two)
			hostEndian.PutUint32(b[blockDescLen+thSnaplen:], 5000)
			return b
		}, "the packet at offset 48 has 5000 bytes at 130, outside the block's 4096 bytes"},
		{"data inside the header", func() []byte {
			b := buildBlock(t, 4096, two)
			hostEndian.PutUint16(b[blockDescLen+thMac:], 8)
			return b
		}, "the packet at offset 48 has 60 bytes at 56, outside the block's 4096 bytes"},
		{"header past the end", func() []byte {
			b := buildBlock(t, 4096, two)
			hostEndian.PutUint32(b[bdFirstPkt:], 4090)
			return b
		}, "a packet header at offset 4090 runs past the block's 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRecordWriter(&stickyWriter{w: io.Discard}, info, DefaultConfig())
			_, err := w.writeBlock(tt.block())
			var be *blockError
			if !errors.As(err, &be) || err.Error() != "malformed TPACKET_V3 block: "+tt.want {
				t.Fatalf("writeBlock = %v, want a blockError %q", err, tt.want)
			}
		})
	}
}

// fakeRing hands out blocks like the ring: nextBlock(false) never waits.
type fakeRing struct {
	mu       sync.Mutex
	blocks   [][]byte
	held     bool
	released int
	drops    uint64
}

func (f *fakeRing) push(b ...[]byte) {
	f.mu.Lock()
	f.blocks = append(f.blocks, b...)
	f.mu.Unlock()
}

func (f *fakeRing) nextBlock(wait bool) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held {
		panic("nextBlock with a block still held")
	}
	if len(f.blocks) == 0 {
		if wait {
			f.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			f.mu.Lock()
		}
		return nil, ErrTimeout
	}
	b := f.blocks[0]
	f.blocks = f.blocks[1:]
	f.held = true
	return b, nil
}

func (f *fakeRing) releaseBlock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held {
		panic("releaseBlock without a block")
	}
	f.held = false
	f.released++
}

func (f *fakeRing) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	panic("the engine reads a block source packet by packet")
}
func (f *fakeRing) KernelDrops() uint64 { return f.drops }
func (f *fakeRing) Close() error        { return nil }

func TestCaptureBlocks(t *testing.T) {
	src := &fakeRing{drops: 3}
	src.push(buildBlock(t, 4096, []ringPacket{{data: frame(1, 60)}, {data: frame(2, 60)}}),
		buildBlock(t, 4096, []ringPacket{{data: frame(3, 60)}, {data: frame(4, 60)}, {data: frame(5, 60)}}))
	cfg := DefaultConfig()
	cfg.Count = 4
	var buf bytes.Buffer
	s, err := Capture(context.Background(), src, info, cfg, Streams{Stdin: openStdin(t), Stdout: &buf})
	if err != nil || s.Reason != ReasonCount || s.Packets != 4 || s.Bytes != 240 || s.KernelDrops != 3 {
		t.Fatalf("stats %+v err %v, want count after 4 packets, 240 bytes, 3 drops", s, err)
	}
	got := readPcap(t, buf.Bytes())
	for i, p := range got {
		if !bytes.Equal(p, frame(byte(i+1), 60)) {
			t.Errorf("packet %d differs", i)
		}
	}
	if len(got) != 4 || src.released != 2 || src.held {
		t.Fatalf("%d packets in the file, %d blocks released (held %v); want 4 and 2", len(got), src.released, src.held)
	}

	// A malformed block is a read error naming the interface.
	src = &fakeRing{}
	src.push(make([]byte, 10))
	s, err = Capture(context.Background(), src, info, DefaultConfig(), Streams{Stdin: openStdin(t), Stdout: io.Discard})
	if err == nil || s.Reason != ReasonError || !strings.HasPrefix(err.Error(), "read packets from eth0: malformed TPACKET_V3 block") {
		t.Fatalf("stats %+v err %v, want a read error", s, err)
	}
}

// TestCaptureBlocksFlushBeforeWaiting: a block's packets reach the reader as
// soon as the ring has nothing more, not at the next flush interval; a
// burst of blocks is one write, not one per block.
func TestCaptureBlocksFlushBeforeWaiting(t *testing.T) {
	src := &fakeRing{}
	w := &timedWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Capture(ctx, src, info, DefaultConfig(), Streams{Stdin: openStdin(t), Stdout: w})
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, 100*time.Millisecond, "the file header", func() bool { return w.len() > 0 })
	header := w.len()
	src.push(buildBlock(t, 4096, []ringPacket{{data: frame(1, 60)}}))
	pushed := time.Now()
	waitFor(t, FlushInterval/2, "the packet", func() bool { return w.len() > header })
	t.Logf("packet flushed %v after its block arrived", time.Since(pushed))

	w.mu.Lock()
	before := len(w.writes)
	w.mu.Unlock()
	var burst [][]byte
	for i := 0; i < 20; i++ {
		burst = append(burst, buildBlock(t, 4096, []ringPacket{{data: frame(byte(i), 100)}, {data: frame(byte(i), 200)}}))
	}
	src.push(burst...)
	waitFor(t, FlushInterval, "the burst", func() bool { return w.len() >= header+16+60+20*(32+300) })
	w.mu.Lock()
	calls := len(w.writes) - before
	w.mu.Unlock()
	if calls > 2 {
		t.Fatalf("20 blocks took %d writes", calls)
	}
}

// BenchmarkBlockCapture is the engine's per-packet cost on the ring's path:
// blocks of 106-byte frames (64-byte UDP payloads, the flood of
// BenchmarkCaptureVsTcpdumpFlood) walked and written as pcap.
func BenchmarkBlockCapture(b *testing.B) {
	const frameLen = 14 + 20 + 8 + 64
	n := (256<<10 - blockDescLen) / ((ringMacOffset + frameLen + 7) &^ 7)
	pkts := make([]ringPacket, n)
	for i := range pkts {
		pkts[i] = ringPacket{sec: 1700000000, nsec: uint32(i), data: frame(byte(i), frameLen)}
	}
	blk := buildBlock(b, 256<<10, pkts)
	src := &loopRing{blk: blk, n: (b.N + n - 1) / n}
	cfg := DefaultConfig()
	b.ReportAllocs()
	b.SetBytes(frameLen)
	b.ResetTimer()
	s, _ := Capture(context.Background(), src, info, cfg, Streams{Stdout: io.Discard})
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(s.Packets), "ns/pkt")
}

// loopRing hands out the same block n times, then fails.
type loopRing struct {
	blk []byte
	n   int
}

func (l *loopRing) nextBlock(bool) ([]byte, error) {
	if l.n == 0 {
		return nil, io.EOF
	}
	l.n--
	return l.blk, nil
}
func (l *loopRing) releaseBlock() {}
func (l *loopRing) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, io.EOF
}
func (l *loopRing) KernelDrops() uint64 { return 0 }
func (l *loopRing) Close() error        { return nil }
