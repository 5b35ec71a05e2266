package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"pcapng", func(c *Config) { c.Format = FormatPcapNG }, ""},
		{"snaplen max", func(c *Config) { c.Snaplen = MaxSnaplen }, ""},
		{"snaplen small", func(c *Config) { c.Snaplen = 64 }, ""},
		{"snaplen zero", func(c *Config) { c.Snaplen = 0 }, "--snaplen must be between 1 and 262144, not 0"},
		{"snaplen negative", func(c *Config) { c.Snaplen = -5 }, "--snaplen must be between 1 and 262144, not -5"},
		{"snaplen too big", func(c *Config) { c.Snaplen = MaxSnaplen + 1 }, "--snaplen must be between 1 and 262144, not 262145"},
		{"bad format", func(c *Config) { c.Format = "json" }, `--format must be pcap or pcapng, not "json"`},
		{"negative count", func(c *Config) { c.Count = -1 }, "--count must not be negative, not -1"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "--duration must not be negative, not -1s"},
		{"negative max-bytes", func(c *Config) { c.MaxBytes = -1 }, "--max-bytes must not be negative, not -1"},
		{"negative heartbeat", func(c *Config) { c.Heartbeat = -time.Second }, "--heartbeat must not be negative, not -1s"},
		{"empty interface", func(c *Config) { c.Interface = "" }, "--interface must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// fakeSource hands out its packets, then reports timeouts (or blocks until
// more are pushed).
type fakeSource struct {
	mu      sync.Mutex
	packets [][]byte
	drops   uint64
	reads   int
	closed  bool
}

func (f *fakeSource) push(p ...[]byte) {
	f.mu.Lock()
	f.packets = append(f.packets, p...)
	f.mu.Unlock()
}

func (f *fakeSource) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	f.mu.Lock()
	if len(f.packets) == 0 {
		f.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return nil, gopacket.CaptureInfo{}, ErrTimeout
	}
	p := f.packets[0]
	f.packets = f.packets[1:]
	f.reads++
	f.mu.Unlock()
	return p, gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(p), Length: len(p), InterfaceIndex: 7}, nil
}

func (f *fakeSource) KernelDrops() uint64 { return f.drops }
func (f *fakeSource) Close() error        { f.closed = true; return nil }

func packet(i, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, uint32(i))
	return p
}

func packets(n, size int) [][]byte {
	var ps [][]byte
	for i := 0; i < n; i++ {
		ps = append(ps, packet(i, size))
	}
	return ps
}

var info = Source{Interface: "eth0", LinkType: layers.LinkTypeEthernet}

// openStdin is a stdin that never ends nor speaks.
func openStdin(t *testing.T) io.Reader {
	r, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	return r
}

func run(t *testing.T, src PacketSource, cfg Config, st Streams) (statsReason string, pkts int, out *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	if st.Stdout == nil {
		st.Stdout = &buf
	}
	if st.Stdin == nil {
		st.Stdin = openStdin(t)
	}
	done := make(chan struct{})
	var reason string
	var n uint64
	var err error
	go func() {
		defer close(done)
		s, e := Capture(context.Background(), src, info, cfg, st)
		reason, n, err = s.Reason, s.Packets, e
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not stop")
	}
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	return reason, int(n), &buf
}

func readPcap(t *testing.T, b []byte) [][]byte {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("read pcap header: %v", err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != DefaultSnaplen {
		t.Fatalf("pcap header: link type %v snaplen %d", r.LinkType(), r.Snaplen())
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read packet %d: %v", len(out), err)
		}
		out = append(out, data)
	}
}

func TestStopAfterCount(t *testing.T) {
	src := &fakeSource{packets: packets(10, 60)}
	cfg := DefaultConfig()
	cfg.Count = 4
	reason, n, out := run(t, src, cfg, Streams{})
	if reason != ReasonCount || n != 4 {
		t.Fatalf("reason %q packets %d, want count 4", reason, n)
	}
	got := readPcap(t, out.Bytes())
	if len(got) != 4 {
		t.Fatalf("file holds %d packets, want 4", len(got))
	}
	for i, p := range got {
		if !bytes.Equal(p, packet(i, 60)) {
			t.Errorf("packet %d differs", i)
		}
	}
}

func TestMaxBytesStopsBeforeExceeding(t *testing.T) {
	src := &fakeSource{packets: packets(10, 100)}
	cfg := DefaultConfig()
	cfg.MaxBytes = 350
	var buf bytes.Buffer
	s, err := Capture(context.Background(), src, info, cfg, Streams{Stdin: openStdin(t), Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if s.Reason != ReasonMaxBytes || s.Packets != 3 || s.Bytes != 300 {
		t.Fatalf("stats %+v, want max-bytes after 3 packets / 300 bytes", s)
	}
	if got := readPcap(t, buf.Bytes()); len(got) != 3 {
		t.Fatalf("file holds %d packets, want 3", len(got))
	}

	// Exactly reaching the limit stops at once.
	src = &fakeSource{packets: packets(10, 100)}
	cfg.MaxBytes = 200
	s, _ = Capture(context.Background(), src, info, cfg, Streams{Stdin: openStdin(t), Stdout: io.Discard})
	if s.Reason != ReasonMaxBytes || s.Packets != 2 || src.reads != 2 {
		t.Fatalf("stats %+v after %d reads, want max-bytes after 2 packets and 2 reads", s, src.reads)
	}
}

func TestSnaplenTruncates(t *testing.T) {
	src := &fakeSource{packets: packets(2, 1000)}
	cfg := DefaultConfig()
	cfg.Snaplen = 100
	cfg.Count = 2
	var buf bytes.Buffer
	s, err := Capture(context.Background(), src, info, cfg, Streams{Stdin: openStdin(t), Stdout: &buf})
	if err != nil || s.Bytes != 200 {
		t.Fatalf("stats %+v err %v, want 200 bytes", s, err)
	}
	r, _ := pcapgo.NewReader(&buf)
	data, ci, err := r.ReadPacketData()
	if err != nil || len(data) != 100 || ci.Length != 1000 {
		t.Fatalf("first packet: %d bytes of %d (%v), want 100 of 1000", len(data), ci.Length, err)
	}
}

func TestStdinEOFStops(t *testing.T) {
	src := &fakeSource{packets: packets(3, 60)}
	reason, n, out := run(t, src, DefaultConfig(), Streams{Stdin: strings.NewReader("")})
	if reason != ReasonStdinEOF {
		t.Fatalf("reason %q, want stdin-eof", reason)
	}
	if got := readPcap(t, out.Bytes()); len(got) != n {
		t.Fatalf("file holds %d packets, stats say %d", len(got), n)
	}
}

func TestHeartbeat(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	cfg := DefaultConfig()
	cfg.Heartbeat = 300 * time.Millisecond
	// Heartbeats for a second keep it running; then silence stops it.
	go func() {
		for i := 0; i < 10; i++ {
			if _, err := w.Write([]byte{0}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	start := time.Now()
	reason, _, _ := run(t, &fakeSource{}, cfg, Streams{Stdin: r})
	took := time.Since(start)
	if reason != ReasonHeartbeat {
		t.Fatalf("reason %q, want heartbeat", reason)
	}
	if took < 1*time.Second || took > 2*time.Second {
		t.Fatalf("stopped after %v, want about 1.3s (1s of heartbeats + 300ms)", took)
	}
}

func TestDuration(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration = 200 * time.Millisecond
	start := time.Now()
	reason, _, out := run(t, &fakeSource{}, cfg, Streams{})
	if reason != ReasonDuration || time.Since(start) > time.Second {
		t.Fatalf("reason %q after %v, want duration after ~200ms", reason, time.Since(start))
	}
	if out.Len() != 24 {
		t.Fatalf("empty capture is %d bytes, want a 24-byte pcap header", out.Len())
	}
}

func TestSignalStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &fakeSource{packets: packets(5, 60)}
	var buf bytes.Buffer
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	s, err := Capture(ctx, src, info, DefaultConfig(), Streams{Stdin: openStdin(t), Stdout: &buf})
	if err != nil || s.Reason != ReasonSignal || s.Packets != 5 {
		t.Fatalf("stats %+v err %v, want signal after 5 packets", s, err)
	}
	if got := readPcap(t, buf.Bytes()); len(got) != 5 {
		t.Fatalf("file holds %d packets, want 5 (flushed on stop)", len(got))
	}
}

// brokenPipe accepts limit bytes, then fails like a pipe whose reader left.
type brokenPipe struct {
	n, limit int
}

func (b *brokenPipe) Write(p []byte) (int, error) {
	if b.n+len(p) > b.limit {
		return 0, &writeErr{syscall.EPIPE}
	}
	b.n += len(p)
	return len(p), nil
}

type writeErr struct{ err error }

func (e *writeErr) Error() string { return "write |1: " + e.err.Error() }
func (e *writeErr) Unwrap() error { return e.err }

func TestBrokenStdout(t *testing.T) {
	src := &fakeSource{}
	go func() {
		for i := 0; i < 200; i++ {
			src.push(packet(i, 1500))
			time.Sleep(time.Millisecond)
		}
	}()
	s, err := Capture(context.Background(), src, info, DefaultConfig(), Streams{Stdin: openStdin(t), Stdout: &brokenPipe{limit: 24}})
	if err != nil || s.Reason != ReasonStdoutClosed {
		t.Fatalf("stats %+v err %v, want stdout-closed without error", s, err)
	}

	// A reader gone before the header is written.
	s, err = Capture(context.Background(), &fakeSource{}, info, DefaultConfig(), Streams{Stdin: openStdin(t), Stdout: &brokenPipe{}})
	if err != nil || s.Reason != ReasonStdoutClosed {
		t.Fatalf("stats %+v err %v, want stdout-closed without error", s, err)
	}

	// Other write errors are errors.
	s, err = Capture(context.Background(), &fakeSource{}, info, DefaultConfig(), Streams{Stdin: openStdin(t), Stdout: failWriter{}})
	if err == nil || s.Reason != ReasonError {
		t.Fatalf("stats %+v err %v, want an error", s, err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

// timedWriter records when bytes arrive.
type timedWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes []time.Time
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, time.Now())
	return w.buf.Write(p)
}

func (w *timedWriter) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Len()
}

func TestHeaderAndPeriodicFlush(t *testing.T) {
	for _, format := range []string{FormatPcap, FormatPcapNG} {
		t.Run(format, func(t *testing.T) {
			src := &fakeSource{}
			w := &timedWriter{}
			cfg := DefaultConfig()
			cfg.Format = format
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				Capture(ctx, src, info, cfg, Streams{Stdin: openStdin(t), Stdout: w})
			}()
			defer func() { cancel(); <-done }()

			waitFor(t, 100*time.Millisecond, "the file header", func() bool { return w.len() > 0 })
			header := w.len()

			// One small packet must reach the reader within the flush
			// interval although it is far below the buffer size.
			src.push(packet(1, 60))
			pushed := time.Now()
			waitFor(t, FlushInterval+150*time.Millisecond, "the packet", func() bool { return w.len() > header })
			t.Logf("header %d bytes; packet flushed after %v", header, time.Since(pushed))

			// Many packets in a burst are not written one syscall each.
			w.mu.Lock()
			before := len(w.writes)
			w.mu.Unlock()
			src.push(packets(200, 100)...)
			time.Sleep(FlushInterval + 150*time.Millisecond)
			w.mu.Lock()
			calls := len(w.writes) - before
			w.mu.Unlock()
			if calls > 10 {
				t.Fatalf("200 packets took %d writes", calls)
			}
		})
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not arrive within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPcapNGOutput(t *testing.T) {
	src := &fakeSource{packets: packets(3, 80), drops: 7}
	cfg := DefaultConfig()
	cfg.Format = FormatPcapNG
	cfg.Count = 3
	cfg.Filter = "udp"
	var buf bytes.Buffer
	s, err := Capture(context.Background(), src, info, cfg, Streams{Stdin: openStdin(t), Stdout: &buf})
	if err != nil || s.KernelDrops != 7 || s.Interface != "eth0" {
		t.Fatalf("stats %+v err %v", s, err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, packet(n, 80)) || ci.InterfaceIndex != 0 {
			t.Fatalf("packet %d differs (interface %d)", n, ci.InterfaceIndex)
		}
		n++
	}
	intf, err := r.Interface(0)
	if err != nil || intf.Name != "eth0" || intf.Filter != "udp" || intf.LinkType != layers.LinkTypeEthernet {
		t.Fatalf("interface %+v err %v", intf, err)
	}
	if n != 3 {
		t.Fatalf("%d packets, want 3", n)
	}
}

func TestEmptyFilterKeepsAllCutToSnaplen(t *testing.T) {
	prog, err := CompileFilter(layers.LinkTypeEthernet, 96, "")
	if err != nil || len(prog) != 1 || prog[0].Op != 0x06 || prog[0].K != 96 {
		t.Fatalf("CompileFilter(\"\") = %v, %v; want ret #96", prog, err)
	}
}

func BenchmarkCapture(b *testing.B) {
	p := packet(1, 1500)
	src := &loopSource{data: p, n: b.N}
	cfg := DefaultConfig()
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	Capture(context.Background(), src, info, cfg, Streams{Stdout: io.Discard})
}

// loopSource returns the same packet n times, then EOF-like errors.
type loopSource struct {
	data []byte
	n    int
}

func (l *loopSource) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	if l.n == 0 {
		return nil, gopacket.CaptureInfo{}, io.EOF
	}
	l.n--
	return l.data, gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(l.data), Length: len(l.data)}, nil
}
func (l *loopSource) KernelDrops() uint64 { return 0 }
func (l *loopSource) Close() error        { return nil }

// Progress lines come every ProgressEvery while the capture runs, with the
// counts so far; none unless asked.
func TestProgressLines(t *testing.T) {
	src := &fakeSource{drops: 3}
	src.push(packets(4, 100)...)
	cfg := DefaultConfig()
	cfg.Duration = 300 * time.Millisecond
	var stderr bytes.Buffer
	_, _, _ = run(t, src, cfg, Streams{Stderr: &stderr, ProgressEvery: 50 * time.Millisecond})
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) < 3 || len(lines) > 7 {
		t.Fatalf("%d progress lines in 300ms at one per 50ms, want 3..7:\n%s", len(lines), stderr.String())
	}
	var last protocol.Progress
	for i, l := range lines {
		var p protocol.Progress
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Type != protocol.TypeProgress {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if p.DurationSeconds < last.DurationSeconds || p.Packets < last.Packets {
			t.Errorf("line %d goes back: %+v after %+v", i, p, last)
		}
		last = p
	}
	if last.Packets != 4 || last.Bytes != 400 || last.KernelDrops != 3 {
		t.Errorf("last progress %+v, want 4 packets, 400 bytes, 3 drops", last)
	}

	stderr.Reset()
	src = &fakeSource{}
	src.push(packets(2, 60)...)
	_, _, _ = run(t, src, cfg, Streams{Stderr: &stderr})
	if stderr.Len() != 0 {
		t.Errorf("no --progress, yet stderr got %q", stderr.String())
	}
}
