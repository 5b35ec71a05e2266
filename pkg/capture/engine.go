package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// ErrTimeout is returned by a PacketSource when no packet arrived within its
// poll interval; the engine then checks its stop conditions and reads again.
var ErrTimeout = errors.New("capture: no packet within the poll interval")

// PacketSource is where the engine reads packets from: the AF_PACKET ring on
// Linux, a fake in tests.
type PacketSource interface {
	// ReadPacket returns the next packet. The data is only valid until the
	// next call. It returns ErrTimeout when nothing arrived for a short
	// while (about 100ms), so the caller can check its stop conditions.
	ReadPacket() ([]byte, gopacket.CaptureInfo, error)
	// KernelDrops is the number of packets the kernel dropped so far
	// because the ring was full.
	KernelDrops() uint64
	// Close releases the source.
	Close() error
}

// Streams are the helper's standard streams.
type Streams struct {
	// Stdin carries heartbeats; EOF on it stops the capture. Nil means no
	// stdin (no EOF, and a --heartbeat fires).
	Stdin io.Reader
	// Stdout receives the pcap/pcapng bytes.
	Stdout io.Writer
	// Stderr receives JSON lines: Run writes the ready line, Capture a
	// progress line every ProgressEvery.
	Stderr io.Writer
	// ProgressEvery is how often Capture writes a protocol.Progress line
	// to Stderr while it runs (--progress); 0 writes none.
	ProgressEvery time.Duration
}

// FlushInterval is the longest time written packets stay in the buffer.
const FlushInterval = 200 * time.Millisecond

// The buffer in front of stdout is written out when the next record would
// take it past outFlushSize: small enough to stay in the CPU's cache
// (copying into a cold megabyte costs more than the extra writes), large
// enough that a write carries hundreds of small packets. Its capacity,
// outBufferSize, holds a whole record of the largest snapshot length.
const (
	outFlushSize  = 64 << 10
	outBufferSize = outFlushSize + MaxSnaplen + 64
)

// Source describes the capture for the file header and the stats line.
type Source struct {
	Interface string
	LinkType  layers.LinkType
}

// blockSource is a PacketSource that also hands out whole TPACKET_V3
// blocks (the ring does), so the engine walks them straight from the ring:
// no call per packet through an interface.
type blockSource interface {
	PacketSource
	// nextBlock returns the next block the kernel handed over. With wait
	// false it returns ErrTimeout at once when there is none; with wait it
	// first waits up to the poll interval (about 100ms). The block stays
	// valid until releaseBlock.
	nextBlock(wait bool) ([]byte, error)
	// releaseBlock hands the block nextBlock returned back to the kernel.
	releaseBlock()
}

// Capture copies packets from src to st.Stdout until a stop condition, and
// returns the stats (the caller prints them as the last stderr line). The file
// header is written and flushed before the first packet. A non-nil error comes
// with Reason "error".
//
// Output is flushed whenever the source has nothing more ready (before the
// engine waits for packets), when outFlushSize bytes are pending, and at
// the latest FlushInterval after the previous flush.
func Capture(ctx context.Context, src PacketSource, info Source, cfg Config, st Streams) (protocol.Stats, error) {
	start := time.Now()
	stats := protocol.Stats{Type: protocol.TypeStats, Interface: info.Interface}
	out := &stickyWriter{w: st.Stdout}
	w := newRecordWriter(out, info, cfg)
	finish := func(reason string, err error) (protocol.Stats, error) {
		stats.Reason = reason
		stats.Packets, stats.Bytes = w.packets, w.bytes
		stats.KernelDrops = src.KernelDrops()
		stats.DurationSeconds = time.Since(start).Seconds()
		return stats, err
	}
	// writeFailed turns a failed write into the stop it means.
	writeFailed := func(err error) (protocol.Stats, error) {
		if out.closed() {
			return finish(ReasonStdoutClosed, nil)
		}
		return finish(ReasonError, fmt.Errorf("write the capture: %w", err))
	}

	if err := w.writeHeader(info, cfg); err != nil {
		return finish(ReasonError, fmt.Errorf("write the file header: %w", err))
	}
	if err := w.flush(); err != nil {
		if out.closed() {
			return finish(ReasonStdoutClosed, nil)
		}
		return finish(ReasonError, fmt.Errorf("write the file header: %w", err))
	}

	// Stop requests from other goroutines: signals (ctx) and stdin.
	stop := make(chan string, 2)
	var lastInput atomic.Int64
	lastInput.Store(start.UnixNano())
	if st.Stdin != nil {
		go watchStdin(st.Stdin, &lastInput, stop)
	}
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		select {
		case <-ctx.Done():
			stop <- ReasonSignal
		case <-watchDone:
		}
	}()

	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}

	// stopWith flushes what is pending and finishes. A broken stdout while
	// flushing is not worth reporting at that point: the reason already
	// says why we stop, and the reader is gone anyway.
	stopWith := func(reason string) (protocol.Stats, error) {
		if err := w.flush(); err != nil && !out.closed() && reason != ReasonStdoutClosed {
			return finish(ReasonError, fmt.Errorf("write the capture: %w", err))
		}
		return finish(reason, nil)
	}
	readFailed := func(err error) (protocol.Stats, error) {
		stats2, _ := stopWith(ReasonError)
		return stats2, fmt.Errorf("read packets from %s: %w", info.Interface, err)
	}

	// Progress is due once per ProgressEvery: one time comparison per
	// block (or packet), against the clock read for the stop conditions.
	nextProgress := start.Add(st.ProgressEvery)
	progress := func(now time.Time) {
		nextProgress = now.Add(st.ProgressEvery)
		// A failed progress line must not end the capture: the stats
		// line will say the same.
		_ = WriteLine(st.Stderr, protocol.Progress{
			Type: protocol.TypeProgress, Packets: w.packets, Bytes: w.bytes,
			KernelDrops: src.KernelDrops(), DurationSeconds: now.Sub(start).Seconds(),
		})
	}
	if st.Stderr == nil {
		st.ProgressEvery = 0
	}

	blocks, _ := src.(blockSource)
	for {
		// Stop conditions and the flush deadline are checked once per
		// block (or packet), and at least every poll interval.
		select {
		case reason := <-stop:
			return stopWith(reason)
		default:
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			return stopWith(ReasonDuration)
		}
		if cfg.Heartbeat > 0 && now.UnixNano()-lastInput.Load() > int64(cfg.Heartbeat) {
			return stopWith(ReasonHeartbeat)
		}
		if st.ProgressEvery > 0 && !now.Before(nextProgress) {
			progress(now)
		}
		if w.pending() && now.Sub(w.lastFlush) >= FlushInterval {
			if err := w.flush(); err != nil {
				return writeFailed(err)
			}
		}

		var reason string
		var err error
		if blocks != nil {
			blk, rerr := blocks.nextBlock(false)
			if rerr == ErrTimeout {
				// Nothing ready: the reader gets what we have before we wait.
				if err := w.flushPending(); err != nil {
					return writeFailed(err)
				}
				blk, rerr = blocks.nextBlock(true)
			}
			if rerr == ErrTimeout {
				continue
			}
			if rerr != nil {
				return readFailed(rerr)
			}
			reason, err = w.writeBlock(blk)
			blocks.releaseBlock()
			var be *blockError
			if errors.As(err, &be) {
				return readFailed(err)
			}
		} else {
			data, ci, rerr := src.ReadPacket()
			if rerr == ErrTimeout {
				if err := w.flushPending(); err != nil {
					return writeFailed(err)
				}
				continue
			}
			if rerr != nil {
				return readFailed(rerr)
			}
			t := ci.Timestamp
			if t.IsZero() {
				t = now
			}
			reason, err = w.write(t.Unix(), uint32(t.Nanosecond()), data, ci.Length)
		}
		if err != nil {
			return writeFailed(err)
		}
		if reason != "" {
			return stopWith(reason)
		}
	}
}

// watchStdin records the time of every byte read and reports EOF (or any
// read error) as a stop request.
func watchStdin(r io.Reader, last *atomic.Int64, stop chan<- string) {
	buf := make([]byte, 512)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
		}
		if err != nil {
			stop <- ReasonStdinEOF
			return
		}
	}
}

// stickyWriter remembers the first write error, so a broken pipe is
// recognised even when a writer above wraps the error without %w.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// closed says whether the reader of the output has gone away.
func (s *stickyWriter) closed() bool {
	return s.err != nil && (errors.Is(s.err, syscall.EPIPE) || errors.Is(s.err, io.ErrClosedPipe))
}

// recordWriter writes the capture file into one buffer in front of the
// output: a record header and the packet bytes per packet, no allocation
// and no call through an interface per packet.
type recordWriter struct {
	out *stickyWriter
	buf []byte // pending output; its capacity is outBufferSize
	ng  bool   // pcapng enhanced packet blocks, else pcap records
	// snaplen cuts packet data; count and maxBytes are the limits (0: none).
	snaplen         int
	count, maxBytes int64
	packets, bytes  uint64
	// vlanTags puts VLAN tags kept beside the packet back into the frame
	// (Ethernet only).
	vlanTags  bool
	scratch   []byte
	lastFlush time.Time
}

// Record overheads: a pcap record header, and a pcapng enhanced packet
// block without options (28 bytes before the data, up to 3 of padding and
// the 4-byte trailing length).
const (
	pcapRecordHeader = 16
	ngEPBHeader      = 28
	ngEPBMaxOverhead = ngEPBHeader + 3 + 4
	ngEPBType        = 6
)

func newRecordWriter(out *stickyWriter, info Source, cfg Config) *recordWriter {
	return &recordWriter{
		out:       out,
		buf:       make([]byte, 0, outBufferSize),
		ng:        cfg.Format == FormatPcapNG,
		snaplen:   cfg.Snaplen,
		count:     cfg.Count,
		maxBytes:  cfg.MaxBytes,
		vlanTags:  info.LinkType == layers.LinkTypeEthernet,
		lastFlush: time.Now(),
	}
}

// writeHeader writes the file header (pcap: microsecond timestamps; pcapng:
// a section header and one interface with nanosecond timestamps) into the
// buffer, with gopacket's pcapgo writers.
func (w *recordWriter) writeHeader(info Source, cfg Config) error {
	var hdr bytes.Buffer
	if w.ng {
		app := cfg.Application
		if app == "" {
			app = "netdiag-helper"
		}
		ng, err := pcapgo.NewNgWriterInterface(&hdr, pcapgo.NgInterface{
			Name:                info.Interface,
			Filter:              cfg.Filter,
			OS:                  "Linux",
			LinkType:            info.LinkType,
			SnapLength:          uint32(cfg.Snaplen),
			TimestampResolution: 9,
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
			OS:          "Linux",
			Application: app,
		}})
		if err != nil {
			return err
		}
		if err := ng.Flush(); err != nil {
			return err
		}
	} else if err := pcapgo.NewWriter(&hdr).WriteFileHeader(uint32(cfg.Snaplen), info.LinkType); err != nil {
		return err
	}
	w.buf = append(w.buf, hdr.Bytes()...)
	return nil
}

// write adds one packet (data as captured, origLen on the wire), cut to the
// snapshot length. It returns the stop reason when a limit is reached:
// --max-bytes counts packet data (not file or record headers) and stops
// *before* it would be exceeded, so the packet that does not fit is not
// written and the file never holds more than N bytes of data.
func (w *recordWriter) write(sec int64, nsec uint32, data []byte, origLen int) (string, error) {
	if len(data) > w.snaplen {
		data = data[:w.snaplen]
	}
	if origLen < len(data) {
		origLen = len(data)
	}
	if w.maxBytes > 0 && int64(w.bytes)+int64(len(data)) > w.maxBytes {
		return ReasonMaxBytes, nil
	}
	if len(w.buf)+ngEPBMaxOverhead+len(data) > outFlushSize && len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return "", err
		}
	}
	n := len(w.buf)
	if w.ng {
		pad := (4 - len(data)&3) & 3
		total := ngEPBHeader + len(data) + pad + 4
		b := w.buf[n : n+total]
		ts := uint64(sec)*1e9 + uint64(nsec)
		binary.LittleEndian.PutUint32(b[0:], ngEPBType)
		binary.LittleEndian.PutUint32(b[4:], uint32(total))
		binary.LittleEndian.PutUint32(b[8:], 0) // the only interface
		binary.LittleEndian.PutUint32(b[12:], uint32(ts>>32))
		binary.LittleEndian.PutUint32(b[16:], uint32(ts))
		binary.LittleEndian.PutUint32(b[20:], uint32(len(data)))
		binary.LittleEndian.PutUint32(b[24:], uint32(origLen))
		copy(b[ngEPBHeader:], data)
		clear(b[ngEPBHeader+len(data) : total-4])
		binary.LittleEndian.PutUint32(b[total-4:], uint32(total))
		w.buf = w.buf[:n+total]
	} else {
		b := w.buf[n : n+pcapRecordHeader+len(data)]
		binary.LittleEndian.PutUint32(b[0:], uint32(sec))
		binary.LittleEndian.PutUint32(b[4:], nsec/1000)
		binary.LittleEndian.PutUint32(b[8:], uint32(len(data)))
		binary.LittleEndian.PutUint32(b[12:], uint32(origLen))
		copy(b[pcapRecordHeader:], data)
		w.buf = w.buf[:n+pcapRecordHeader+len(data)]
	}
	w.packets++
	w.bytes += uint64(len(data))
	if w.count > 0 && int64(w.packets) >= w.count {
		return ReasonCount, nil
	}
	if w.maxBytes > 0 && int64(w.bytes) == w.maxBytes {
		return ReasonMaxBytes, nil
	}
	return "", nil
}

func (w *recordWriter) pending() bool { return len(w.buf) > 0 }

// flushPending writes the buffer out if it holds anything.
func (w *recordWriter) flushPending() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.flush()
}

// flush writes the buffer out (an empty one too: the output's error, if
// any, is reported).
func (w *recordWriter) flush() error {
	w.lastFlush = time.Now()
	if len(w.buf) == 0 {
		return w.out.err
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
