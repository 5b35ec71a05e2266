package pcapstream

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultMergeWindow is how long a MergeWriter holds a packet at most,
// waiting for an earlier one from another source.
const DefaultMergeWindow = 300 * time.Millisecond

// defaultMaxHeld bounds the packet bytes a MergeWriter holds: above it, it
// writes the earliest packets at once instead of waiting out the window.
const defaultMaxHeld = 32 << 20

// Option codes of an interface description block.
const (
	optIfDescription = 3
)

// MergeOptions configure a MergeWriter.
type MergeOptions struct {
	// Window is the bounded reorder window (default DefaultMergeWindow): a
	// packet is written at the latest Window after it arrived, after every
	// packet with an earlier timestamp that arrived by then. A packet of a
	// source that was slower than that comes later than its timestamp says
	// (MergeSummary.Late counts them); nothing is dropped.
	Window time.Duration
	// Application is the output's shb_userappl ("" for none).
	Application string
	// MaxHeld bounds the packet bytes held back (default 32 MiB).
	MaxHeld int
}

// MergeInfo names a source in the output.
type MergeInfo struct {
	// Name is the if_name of the source's interface in the output, e.g.
	// "shop/web-1". A source with several interfaces gets "NAME (IF)" for
	// every one after its first.
	Name string
	// Describe, when set, gives the if_description of the interface whose
	// if_name in the source was ifName (e.g. "eth0 of shop/web-1 on node
	// node-1").
	Describe func(ifName string) string
}

// MergeWriter merges the capture streams of several sources (pcapng, as
// the helper or a Joiner writes it; classic pcap too) into one live pcapng
// stream: one section, its own section header, an interface description
// block per interface of each source (named after the source), and the
// packets of all in timestamp order, their interface ids rewritten.
//
// Merging is live: it never waits for every source to have a packet (a
// quiet source would stall the output). A packet is held for at most the
// window after it arrived, then written after every held packet with an
// earlier timestamp; when every open source has a packet waiting, the
// earliest is written at once. Interface descriptions are written as soon
// as they arrive, before any packet that refers to them.
//
// Add a source, write its stream into it and close it; Close the
// MergeWriter when every source is closed.
type MergeWriter struct {
	w    io.Writer
	opts MergeOptions

	mu      sync.Mutex
	cond    *sync.Cond // signalled when held bytes go down or err is set
	pre     [][]byte   // interface descriptions to write before any packet
	held    entryHeap
	fifo    []*entry // held entries in arrival order
	heldN   int
	seq     uint64
	nIfaces int
	sources []*mergeSource
	closing bool
	err     error
	sum     MergeSummary
	kick    chan struct{}
	done    chan struct{}
	lastTS  time.Time // of the last packet written (emitter only)
	// shb is the section header, written before the first interface.
	shb []byte
}

// MergeSummary is what a MergeWriter wrote.
type MergeSummary struct {
	Sources    int
	Interfaces int
	Packets    int64
	Bytes      int64
	// Late: packets written after a packet with a later timestamp (their
	// source was more than the window behind).
	Late int64
	// DroppedBlocks: blocks other than packets, interfaces and interface
	// statistics, or from a source in the other byte order, not carried
	// over.
	DroppedBlocks int64
}

// MergeSourceStats is what a MergeWriter took from one source.
type MergeSourceStats struct {
	Packets int64
	Bytes   int64
	// Err is why the source's stream could not be read to its end (nil
	// for a clean end).
	Err error
}

type entry struct {
	ts      time.Time
	seq     uint64
	arrived time.Time
	data    []byte
	packet  bool
	size    int
	src     *mergeSource
	done    bool
	index   int
}

type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].ts.Equal(h[j].ts) {
		return h[i].ts.Before(h[j].ts)
	}
	return h[i].seq < h[j].seq
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// outBO is the output's byte order.
var outBO = binary.LittleEndian

// NewMergeWriter starts merging into w. The output's section header block
// is written with the first interface description: an output no source
// wrote to stays empty.
func NewMergeWriter(w io.Writer, opts MergeOptions) (*MergeWriter, error) {
	if opts.Window <= 0 {
		opts.Window = DefaultMergeWindow
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = defaultMaxHeld
	}
	m := &MergeWriter{w: w, opts: opts, kick: make(chan struct{}, 1), done: make(chan struct{})}
	m.cond = sync.NewCond(&m.mu)
	var b bytes.Buffer
	body := make([]byte, 16)
	outBO.PutUint32(body[0:], ngBOM)
	outBO.PutUint16(body[4:], 1)
	outBO.PutUint64(body[8:], ^uint64(0)) // section length: unspecified
	b.Write(body)
	var opt []Option
	if opts.Application != "" {
		opt = append(opt, Option{Code: optShbUserAppl, Value: []byte(opts.Application)})
	}
	writeOptions(&b, opt, outBO)
	m.shb = ngBlock(blockSHB, b.Bytes())
	go m.emitter()
	return m, nil
}

// ngBlock frames body (padded to 4 bytes) as a pcapng block.
func ngBlock(typ uint32, body []byte) []byte {
	n := 12 + (len(body)+3)&^3
	b := make([]byte, n)
	outBO.PutUint32(b[0:], typ)
	outBO.PutUint32(b[4:], uint32(n))
	copy(b[8:], body)
	outBO.PutUint32(b[n-4:], uint32(n))
	return b
}

// mergeSource is one source: a pipe whose reader parses the stream.
type mergeSource struct {
	m    *MergeWriter
	info MergeInfo
	pw   *io.PipeWriter
	pr   *io.PipeReader
	done chan struct{}

	// Owned by the reader goroutine.
	rd      *Reader
	same    bool
	mapping []int
	ifaces  int // interfaces described so far (all sections)
	lastTS  time.Time

	// Under m.mu.
	pending  int // entries held
	finished bool
	stats    MergeSourceStats
}

// Add adds a source and returns where to write its stream. Close it at
// the end of the stream: its held packets are then written without
// waiting for it, and Close returns why the stream could not be read, if
// it could not. A write returns the output's error once writing the output
// failed (e.g. its reader went away).
func (m *MergeWriter) Add(info MergeInfo) io.WriteCloser {
	pr, pw := io.Pipe()
	s := &mergeSource{m: m, info: info, pw: pw, pr: pr, done: make(chan struct{})}
	m.mu.Lock()
	m.sources = append(m.sources, s)
	m.sum.Sources++
	if m.err != nil {
		_ = pr.CloseWithError(m.err)
	}
	m.mu.Unlock()
	go s.read()
	return s
}

func (s *mergeSource) Write(p []byte) (int, error) { return s.pw.Write(p) }

func (s *mergeSource) Close() error {
	_ = s.pw.Close()
	<-s.done
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.stats.Err
}

// SourceStats returns what was taken from the i-th source added so far.
func (m *MergeWriter) SourceStats(i int) MergeSourceStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sources[i].stats
}

// Summary returns the totals so far.
func (m *MergeWriter) Summary() MergeSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sum
}

func (s *mergeSource) read() {
	defer close(s.done)
	err := s.parse()
	// Whatever is not parsed is drained: the writer must never block.
	_, _ = io.Copy(io.Discard, s.pr)
	m := s.m
	m.mu.Lock()
	if err != nil && m.err == nil && !errors.Is(err, errMergeOutput) {
		s.stats.Err = err
	}
	s.finished = true
	m.mu.Unlock()
	m.wake()
}

// errMergeOutput: the output failed; the source stops parsing.
var errMergeOutput = errors.New("the merged output failed")

func (s *mergeSource) parse() error {
	cr := &countingReader{r: s.pr}
	rd, err := NewReader(cr)
	if err != nil {
		if cr.n == 0 && errors.Is(err, ErrTruncated) {
			return nil // nothing was written: a source that never started
		}
		return err
	}
	s.rd = rd
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.record(rec); err != nil {
			return err
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (s *mergeSource) record(rec Record) error {
	switch rec.Type {
	case RecordSection:
		h := s.rd.Header()
		s.same = h.ByteOrder == outBO
		s.mapping = s.mapping[:0]
		if h.Format == FormatPcap {
			return s.iface(s.rd.Interfaces()[0])
		}
		return nil
	case RecordInterface:
		ifcs := s.rd.Interfaces()
		return s.iface(ifcs[len(ifcs)-1])
	case RecordPacket:
		return s.packet(rec)
	default:
		return s.block(rec)
	}
}

// iface describes a source's interface in the output.
func (s *mergeSource) iface(in Interface) error {
	name := s.info.Name
	if s.ifaces > 0 {
		name = fmt.Sprintf("%s (%s)", s.info.Name, in.Name)
	}
	s.ifaces++
	opts := []Option{{Code: optIfName, Value: []byte(name)}}
	if s.info.Describe != nil {
		if d := s.info.Describe(in.Name); d != "" {
			opts = append(opts, Option{Code: optIfDescription, Value: []byte(d)})
		}
	}
	opts = append(opts, Option{Code: optIfTSResol, Value: []byte{in.tsresol}})
	if s.same {
		for _, o := range in.Options {
			switch o.Code {
			case optIfName, optIfDescription, optIfTSResol, optIfTSOffset:
			default:
				opts = append(opts, o)
			}
		}
	}
	var b bytes.Buffer
	var h [8]byte
	outBO.PutUint16(h[0:], in.LinkType)
	outBO.PutUint32(h[4:], in.SnapLen)
	b.Write(h[:])
	writeOptions(&b, opts, outBO)
	raw := ngBlock(blockIDB, b.Bytes())

	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return errMergeOutput
	}
	s.mapping = append(s.mapping, m.nIfaces)
	m.nIfaces++
	m.sum.Interfaces++
	m.pre = append(m.pre, raw)
	m.wakeLocked()
	return nil
}

func (s *mergeSource) packet(rec Record) error {
	p := rec.Packet
	id := 0
	if s.rd.Header().Format == FormatPcapNG {
		if p.InterfaceID >= len(s.mapping) {
			return fmt.Errorf("%w: a packet on interface %d, which has no description", ErrCorrupt, p.InterfaceID)
		}
		id = s.mapping[p.InterfaceID]
	} else if len(s.mapping) > 0 {
		id = s.mapping[0]
	}
	in := &s.rd.Interfaces()[p.InterfaceID]
	ts := p.Timestamp
	if p.Simple || ts.IsZero() {
		ts = s.lastTS
	}
	s.lastTS = ts
	var units uint64
	switch {
	case p.Simple:
	case s.rd.Header().Format == FormatPcapNG && in.Offset == 0:
		units = p.units
	default:
		out := Interface{Resolution: in.Resolution}
		units = timeToUnits(ts, &out)
	}
	var opts []Option
	for _, o := range p.Options {
		if s.same || o.Code == OptComment {
			opts = append(opts, o)
		}
	}
	var b bytes.Buffer
	b.Grow(28 + len(p.Data) + 8)
	var h [20]byte
	outBO.PutUint32(h[0:], uint32(id))
	outBO.PutUint32(h[4:], uint32(units>>32))
	outBO.PutUint32(h[8:], uint32(units))
	outBO.PutUint32(h[12:], uint32(len(p.Data)))
	outBO.PutUint32(h[16:], uint32(p.Length))
	b.Write(h[:])
	b.Write(p.Data)
	pad(&b)
	writeOptions(&b, opts, outBO)
	return s.push(&entry{ts: ts, data: ngBlock(blockEPB, b.Bytes()), packet: true, size: len(p.Data)})
}

func (s *mergeSource) block(rec Record) error {
	if !s.same || rec.BlockType != blockISB || len(rec.Raw) < 16 {
		s.m.mu.Lock()
		s.m.sum.DroppedBlocks++
		s.m.mu.Unlock()
		return nil
	}
	id := int(outBO.Uint32(rec.Raw[8:]))
	if id >= len(s.mapping) {
		s.m.mu.Lock()
		s.m.sum.DroppedBlocks++
		s.m.mu.Unlock()
		return nil
	}
	raw := append([]byte(nil), rec.Raw...)
	outBO.PutUint32(raw[8:], uint32(s.mapping[id]))
	// After the source's packets so far.
	return s.push(&entry{ts: s.lastTS, data: raw})
}

// push holds an entry, waiting while too much is held.
func (s *mergeSource) push(e *entry) error {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.err == nil && m.heldN > m.opts.MaxHeld {
		m.cond.Wait()
	}
	if m.err != nil {
		_ = s.pr.CloseWithError(m.err)
		return errMergeOutput
	}
	m.seq++
	e.seq, e.src, e.arrived = m.seq, s, time.Now()
	heap.Push(&m.held, e)
	m.fifo = append(m.fifo, e)
	m.heldN += len(e.data)
	s.pending++
	m.wakeLocked()
	return nil
}

func (m *MergeWriter) wake() {
	m.mu.Lock()
	m.wakeLocked()
	m.mu.Unlock()
}

func (m *MergeWriter) wakeLocked() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// ready takes what can be written now (under m.mu): the interface
// descriptions, then the held entries whose time has come. It returns when
// to look again (zero: when woken).
func (m *MergeWriter) ready(now time.Time) ([][]byte, []*entry, time.Time) {
	out := m.pre
	m.pre = nil
	var ents []*entry
	for m.held.Len() > 0 {
		for len(m.fifo) > 0 && m.fifo[0].done {
			m.fifo[0] = nil
			m.fifo = m.fifo[1:]
		}
		due := m.fifo[0].arrived.Add(m.opts.Window)
		if !m.closing && m.heldN <= m.opts.MaxHeld && due.After(now) && !m.allWaiting() {
			return out, ents, due
		}
		e := heap.Pop(&m.held).(*entry)
		e.done = true
		m.heldN -= len(e.data)
		e.src.pending--
		ents = append(ents, e)
	}
	return out, ents, time.Time{}
}

// allWaiting says whether every open source has a packet held: then the
// earliest held one cannot be preceded by anything still to come.
func (m *MergeWriter) allWaiting() bool {
	for _, s := range m.sources {
		if !s.finished && s.pending == 0 {
			return false
		}
	}
	return true
}

func (m *MergeWriter) emitter() {
	defer close(m.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.mu.Lock()
		closing := m.closing
		pre, ents, next := m.ready(time.Now())
		failed := m.err != nil
		m.mu.Unlock()
		if !failed {
			m.write(pre, ents)
		}
		m.mu.Lock()
		m.cond.Broadcast()
		finished := closing && m.held.Len() == 0 && len(m.pre) == 0
		m.mu.Unlock()
		if finished {
			return
		}
		var wait <-chan time.Time
		if !next.IsZero() {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(time.Until(next))
			wait = timer.C
		}
		select {
		case <-m.kick:
		case <-wait:
		}
	}
}

// write writes blocks to the output; the first failure is kept, and every
// source then stops.
func (m *MergeWriter) write(pre [][]byte, ents []*entry) {
	var err error
	if m.shb != nil && len(pre)+len(ents) > 0 {
		_, err = m.w.Write(m.shb)
		m.shb = nil
	}
	for _, b := range pre {
		if err != nil {
			break
		}
		if _, err = m.w.Write(b); err != nil {
			break
		}
	}
	var packets, bytes, late int64
	for _, e := range ents {
		if err != nil {
			break
		}
		if _, err = m.w.Write(e.data); err != nil {
			break
		}
		if !e.packet {
			continue
		}
		if e.ts.Before(m.lastTS) {
			late++
		} else {
			m.lastTS = e.ts
		}
		packets++
		bytes += int64(e.size)
		m.mu.Lock()
		e.src.stats.Packets++
		e.src.stats.Bytes += int64(e.size)
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.sum.Packets += packets
	m.sum.Bytes += bytes
	m.sum.Late += late
	if err != nil && m.err == nil {
		m.err = err
		for _, s := range m.sources {
			_ = s.pr.CloseWithError(err)
		}
		m.cond.Broadcast()
	}
	m.mu.Unlock()
}

// Close writes every packet still held and stops merging; call it when
// every source is closed. It returns the output's first write error.
func (m *MergeWriter) Close() error {
	m.mu.Lock()
	m.closing = true
	m.wakeLocked()
	m.mu.Unlock()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return fmt.Errorf("write the capture: %w", m.err)
	}
	return nil
}
