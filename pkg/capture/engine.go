package capture

import (
	"bufio"
	"context"
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
	// Stderr receives JSON lines (only Run writes to it: the ready line).
	Stderr io.Writer
}

// FlushInterval is the longest time written packets stay in the buffer.
const FlushInterval = 200 * time.Millisecond

// outBufferSize is the size of the buffer in front of stdout.
const outBufferSize = 64 << 10

// Source describes the capture for the file header and the stats line.
type Source struct {
	Interface string
	LinkType  layers.LinkType
}

// Capture copies packets from src to st.Stdout until a stop condition, and
// returns the stats (the caller prints them as the last stderr line). The file
// header is written and flushed before the first packet. A non-nil error comes
// with Reason "error".
func Capture(ctx context.Context, src PacketSource, info Source, cfg Config, st Streams) (protocol.Stats, error) {
	start := time.Now()
	stats := protocol.Stats{Type: protocol.TypeStats, Interface: info.Interface}
	finish := func(reason string, err error) (protocol.Stats, error) {
		stats.Reason = reason
		stats.KernelDrops = src.KernelDrops()
		stats.DurationSeconds = time.Since(start).Seconds()
		return stats, err
	}

	out := &stickyWriter{w: st.Stdout}
	bw := bufio.NewWriterSize(out, outBufferSize)
	w, err := newPacketWriter(bw, info, cfg)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
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
	snaplen := cfg.Snaplen
	lastFlush := start
	dirty := false

	// stopWith flushes what is pending and finishes. A broken stdout while
	// flushing is not worth reporting at that point: the reason already
	// says why we stop, and the reader is gone anyway.
	stopWith := func(reason string) (protocol.Stats, error) {
		if err := w.flush(); err != nil && !out.closed() && reason != ReasonStdoutClosed {
			return finish(ReasonError, fmt.Errorf("write the capture: %w", err))
		}
		return finish(reason, nil)
	}

	for {
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
		if dirty && now.Sub(lastFlush) >= FlushInterval {
			if err := w.flush(); err != nil {
				if out.closed() {
					return finish(ReasonStdoutClosed, nil)
				}
				return finish(ReasonError, fmt.Errorf("write the capture: %w", err))
			}
			lastFlush, dirty = now, false
		}

		data, ci, err := src.ReadPacket()
		if err == ErrTimeout {
			continue
		}
		if err != nil {
			stats2, _ := stopWith(ReasonError)
			return stats2, fmt.Errorf("read packets from %s: %w", info.Interface, err)
		}
		if len(data) > snaplen {
			data = data[:snaplen]
		}
		ci.CaptureLength = len(data)
		if ci.Length < ci.CaptureLength {
			ci.Length = ci.CaptureLength
		}
		ci.InterfaceIndex = 0 // the only interface of the file
		// --max-bytes counts packet data (not file or record headers) and
		// stops *before* it would be exceeded: the packet that does not fit
		// is not written, so the file never holds more than N bytes of data.
		if cfg.MaxBytes > 0 && int64(stats.Bytes)+int64(len(data)) > cfg.MaxBytes {
			return stopWith(ReasonMaxBytes)
		}
		if err := w.write(ci, data); err != nil {
			if out.closed() {
				return finish(ReasonStdoutClosed, nil)
			}
			return finish(ReasonError, fmt.Errorf("write the capture: %w", err))
		}
		dirty = true
		stats.Packets++
		stats.Bytes += uint64(len(data))
		if cfg.Count > 0 && int64(stats.Packets) >= cfg.Count {
			return stopWith(ReasonCount)
		}
		if cfg.MaxBytes > 0 && int64(stats.Bytes) == cfg.MaxBytes {
			return stopWith(ReasonMaxBytes)
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

// packetWriter writes one of the two file formats.
type packetWriter struct {
	bw   *bufio.Writer
	pcap *pcapgo.Writer
	ng   *pcapgo.NgWriter
}

func newPacketWriter(bw *bufio.Writer, info Source, cfg Config) (*packetWriter, error) {
	pw := &packetWriter{bw: bw}
	switch cfg.Format {
	case FormatPcapNG:
		app := cfg.Application
		if app == "" {
			app = "netdiag-helper"
		}
		ng, err := pcapgo.NewNgWriterInterface(bw, pcapgo.NgInterface{
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
			return nil, err
		}
		pw.ng = ng
	default:
		pw.pcap = pcapgo.NewWriter(bw)
		if err := pw.pcap.WriteFileHeader(uint32(cfg.Snaplen), info.LinkType); err != nil {
			return nil, err
		}
	}
	return pw, nil
}

func (pw *packetWriter) write(ci gopacket.CaptureInfo, data []byte) error {
	if pw.ng != nil {
		return pw.ng.WritePacket(ci, data)
	}
	return pw.pcap.WritePacket(ci, data)
}

func (pw *packetWriter) flush() error {
	if pw.ng != nil {
		if err := pw.ng.Flush(); err != nil {
			return err
		}
	}
	return pw.bw.Flush()
}
