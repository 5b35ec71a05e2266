package pcapstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrIncompatible: a later segment cannot continue the output (another
// format, link type or interface).
var ErrIncompatible = errors.New("the capture segment cannot continue the output")

// Joiner writes the segments of one capture — the streams of successive
// helper runs, e.g. before and after a broken exec stream was reconnected —
// to one io.Writer as one valid capture file.
//
// The first segment is copied as is, header included (pcapng: its section
// length is set to "unspecified", since the section grows past it). Every
// later segment must be the same format, and:
//
//   - pcap: the same link type. Its header is not written again. Its
//     snaplen may differ: the output keeps the first segment's, and a packet
//     longer than that is cut to it (its original length is kept), so the
//     file stays consistent (Summary.Truncated counts them).
//   - pcapng: its section header and interface descriptions are not written
//     again; each of its interfaces is mapped onto the output's interface
//     with the same link type and name (if_name), and its packets are
//     rewritten to that interface id, in the output's byte order and
//     timestamp resolution, cut to that interface's snaplen. An interface
//     that matches none is ErrIncompatible. Other blocks are passed through
//     (interface statistics with their interface id mapped); a later
//     segment in the other byte order keeps only its packets and their
//     comments, since other options and blocks hold numbers whose byte
//     order is block-specific (Summary.DroppedBlocks counts them).
//
// Every record is written with one Write call as soon as its last byte was
// read: the output is live (a pipe into Wireshark sees each packet at once;
// wrap a file in a bufio.Writer yourself if you want fewer writes).
//
// A Joiner is for one goroutine, except Summary, which may be called from
// any goroutine.
type Joiner struct {
	w       io.Writer
	started bool
	out     Header
	ifaces  []Interface // the output's interfaces
	comment string      // for the next packet (pcapng)
	buf     bytes.Buffer

	mu  sync.Mutex
	sum Summary
}

// Summary is what a Joiner wrote so far.
type Summary struct {
	// Segments whose header was read (an empty or header-less segment does
	// not count).
	Segments int
	// Packets and Bytes (packet data) written.
	Packets int64
	Bytes   int64
	// Gaps told to Gap and their total length.
	Gaps     int
	GapTotal time.Duration
	// Truncated: packets cut to the output's snaplen.
	Truncated int64
	// Partial: segments that ended inside a record (whose partial last
	// record was dropped).
	Partial int
	// DroppedBlocks: pcapng blocks of later segments not carried over.
	DroppedBlocks int64
}

// SegmentStats is what Copy did with one segment.
type SegmentStats struct {
	Packets int64
	Bytes   int64
	// First and Last are the timestamps of its first and last packet (zero
	// when it had none with a timestamp).
	First, Last time.Time
	// Partial: the segment ended inside a record, which was dropped.
	Partial bool
}

// NewJoiner returns a Joiner writing to w.
func NewJoiner(w io.Writer) *Joiner { return &Joiner{w: w} }

// Format is the output's format (0 before the first segment's header).
func (j *Joiner) Format() Format { return j.out.Format }

// Summary returns the totals so far.
func (j *Joiner) Summary() Summary {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sum
}

// GapComment is the text that marks a gap: "stream broke at 12:01:07,
// resumed at 12:01:19 (12s later): packets in between were not captured".
// The times are shown in their own location (with the date when the gap
// spans midnight).
func GapComment(from, to time.Time) string {
	layout := "15:04:05"
	if y1, m1, d1 := from.Date(); true {
		if y2, m2, d2 := to.Date(); y1 != y2 || m1 != m2 || d1 != d2 {
			layout = "2006-01-02 15:04:05"
		}
	}
	d := to.Sub(from)
	if d >= time.Second {
		d = d.Round(time.Second)
	} else {
		d = d.Round(time.Millisecond)
	}
	return fmt.Sprintf("stream broke at %s, resumed at %s (%s later): packets in between were not captured",
		from.Format(layout), to.Format(layout), d)
}

// Gap records that nothing was captured from `from` to `to` (call it
// between two segments). In pcapng the first packet written after it
// carries GapComment(from, to) as an opt_comment; classic pcap has no
// comments, so there it is only counted. It returns the comment.
func (j *Joiner) Gap(from, to time.Time) string {
	c := GapComment(from, to)
	if j.comment != "" {
		c = j.comment + "; " + c // two gaps without a packet between them
	}
	j.comment = c
	j.mu.Lock()
	j.sum.Gaps++
	if to.After(from) {
		j.sum.GapTotal += to.Sub(from)
	}
	j.mu.Unlock()
	return GapComment(from, to)
}

// segment is the state of one Copy.
type segment struct {
	n       int  // 1-based, for messages
	counted bool // its header was counted in Summary.Segments
	rd      *Reader
	define  bool // this pcapng section's interfaces define the output's
	same    bool // same byte order as the output
	mapping []int
	stats   SegmentStats
}

// Copy reads one segment from r to its end and writes it. A segment that
// ends inside a record (a broken stream) returns an error wrapping
// ErrTruncated (and r's error, if any) after writing everything before
// that record: the output is still valid and the next segment can follow.
// A segment that is not a capture stream is ErrCorrupt; one that cannot
// continue the output is ErrIncompatible; nothing of it is written after
// the point where that was found.
func (j *Joiner) Copy(r io.Reader) (SegmentStats, error) {
	n := j.Summary().Segments + 1
	rd, err := NewReader(r)
	if err != nil {
		st := SegmentStats{Partial: errors.Is(err, ErrTruncated)}
		j.countPartial(st.Partial)
		return st, fmt.Errorf("capture segment %d: %w", n, err)
	}
	s := &segment{n: n, rd: rd}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return s.stats, nil
		}
		if err != nil {
			s.stats.Partial = errors.Is(err, ErrTruncated)
			j.countPartial(s.stats.Partial)
			return s.stats, fmt.Errorf("capture segment %d: %w", n, err)
		}
		if err := j.record(s, rec); err != nil {
			return s.stats, err
		}
	}
}

func (j *Joiner) countPartial(p bool) {
	if p {
		j.mu.Lock()
		j.sum.Partial++
		j.mu.Unlock()
	}
}

func (j *Joiner) record(s *segment, rec Record) error {
	switch rec.Type {
	case RecordSection:
		return j.section(s, rec)
	case RecordInterface:
		return j.iface(s, rec)
	case RecordPacket:
		return j.packet(s, rec)
	default:
		return j.block(s, rec)
	}
}

func (j *Joiner) section(s *segment, rec Record) error {
	h := s.rd.Header()
	first := !j.started
	if first {
		j.out = h
		raw := rec.Raw
		if h.Format == FormatPcapNG {
			raw = append([]byte(nil), raw...)
			h.ByteOrder.PutUint64(raw[16:], ^uint64(0)) // section length: unspecified
		}
		if err := j.write(raw); err != nil {
			return err
		}
		j.started = true
		if h.Format == FormatPcap {
			j.ifaces = append([]Interface(nil), s.rd.Interfaces()...)
		}
	} else if h.Format != j.out.Format {
		return fmt.Errorf("capture segment %d is %s but the output is %s: %w (resume with the same --format)", s.n, h.Format, j.out.Format, ErrIncompatible)
	} else if h.Format == FormatPcap && h.LinkType != j.out.LinkType {
		return fmt.Errorf("capture segment %d has link type %d but the output has %d: %w (it must capture the same interface)", s.n, h.LinkType, j.out.LinkType, ErrIncompatible)
	}
	if !s.counted { // the segment's own header, not a later section in it
		s.counted = true
		j.mu.Lock()
		j.sum.Segments++
		j.mu.Unlock()
	}
	s.define = first && h.Format == FormatPcapNG
	s.same = h.ByteOrder == j.out.ByteOrder
	s.mapping = s.mapping[:0]
	return nil
}

func (j *Joiner) iface(s *segment, rec Record) error {
	ifcs := s.rd.Interfaces()
	in := ifcs[len(ifcs)-1]
	// The first section defines the output's interfaces; so does a later
	// one while the output has none (the first segment broke right after
	// its section header).
	if s.define || (len(j.ifaces) == 0 && s.same) {
		j.ifaces = append(j.ifaces, in)
		s.mapping = append(s.mapping, len(j.ifaces)-1)
		return j.write(rec.Raw)
	}
	for i, o := range j.ifaces {
		if o.LinkType != in.LinkType || o.Name != in.Name || contains(s.mapping, i) {
			continue
		}
		s.mapping = append(s.mapping, i)
		return nil
	}
	return fmt.Errorf("capture segment %d's interface %d (%s) matches no interface of the output (%s): %w (it must capture the same interface)",
		s.n, len(ifcs)-1, describe(in), describeAll(j.ifaces), ErrIncompatible)
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func describe(i Interface) string {
	name := i.Name
	if name == "" {
		name = "no name"
	}
	return fmt.Sprintf("%s, link type %d", name, i.LinkType)
}

func describeAll(is []Interface) string {
	var b bytes.Buffer
	for k, i := range is {
		if k > 0 {
			b.WriteString("; ")
		}
		b.WriteString(describe(i))
	}
	return b.String()
}

func (j *Joiner) packet(s *segment, rec Record) error {
	p := rec.Packet
	var err error
	trunc := false
	if j.out.Format == FormatPcap {
		trunc, err = j.pcapPacket(s, rec)
	} else {
		trunc, err = j.ngPacket(s, rec)
	}
	if err != nil {
		return err
	}
	n := p.CaptureLength
	if trunc {
		n = j.snapOf(s, p)
	}
	s.stats.Packets++
	s.stats.Bytes += int64(n)
	if !p.Simple {
		if s.stats.First.IsZero() {
			s.stats.First = p.Timestamp
		}
		s.stats.Last = p.Timestamp
	}
	j.mu.Lock()
	j.sum.Packets++
	j.sum.Bytes += int64(n)
	if trunc {
		j.sum.Truncated++
	}
	j.mu.Unlock()
	return nil
}

// outIface is the output interface a packet goes to.
func (j *Joiner) outIface(s *segment, p *Packet) (int, error) {
	if j.out.Format == FormatPcap {
		return 0, nil
	}
	if p.InterfaceID >= len(s.mapping) {
		return 0, fmt.Errorf("capture segment %d: a packet on interface %d, which has no description: %w", s.n, p.InterfaceID, ErrCorrupt)
	}
	return s.mapping[p.InterfaceID], nil
}

func (j *Joiner) snapOf(s *segment, p *Packet) int {
	id, _ := j.outIface(s, p)
	return int(j.ifaces[id].SnapLen)
}

func (j *Joiner) pcapPacket(s *segment, rec Record) (bool, error) {
	p := rec.Packet
	snap := int(j.out.SnapLen)
	trunc := snap > 0 && p.CaptureLength > snap
	j.comment = "" // pcap has no comments: the gap is only counted
	if s.same && s.rd.Header().Nanosecond == j.out.Nanosecond && !trunc {
		return false, j.write(rec.Raw)
	}
	data := p.Data
	if trunc {
		data = data[:snap]
	}
	bo := j.out.ByteOrder
	frac := uint32(p.Timestamp.Nanosecond())
	if !j.out.Nanosecond {
		frac /= 1000
	}
	j.buf.Reset()
	var h [16]byte
	bo.PutUint32(h[0:], uint32(p.Timestamp.Unix()))
	bo.PutUint32(h[4:], frac)
	bo.PutUint32(h[8:], uint32(len(data)))
	bo.PutUint32(h[12:], uint32(p.Length))
	j.buf.Write(h[:])
	j.buf.Write(data)
	return trunc, j.write(j.buf.Bytes())
}

func (j *Joiner) ngPacket(s *segment, rec Record) (bool, error) {
	p := rec.Packet
	id, err := j.outIface(s, p)
	if err != nil {
		return false, err
	}
	out := &j.ifaces[id]
	in := &s.rd.Interfaces()[p.InterfaceID]
	snap := int(out.SnapLen)
	trunc := snap > 0 && p.CaptureLength > snap
	sameClock := in.tsresol == out.tsresol && in.Offset == out.Offset
	if s.same && id == p.InterfaceID && sameClock && !trunc && j.comment == "" &&
		(rec.BlockType == blockEPB || rec.BlockType == blockSPB) {
		return false, j.write(rec.Raw)
	}
	data := p.Data
	if trunc {
		data = data[:snap]
	}
	var units uint64
	switch {
	case p.Simple:
		units = 0
	case sameClock:
		units = p.units
	default:
		units = timeToUnits(p.Timestamp, out)
	}
	var opts []Option
	if j.comment != "" {
		opts = append(opts, Option{Code: OptComment, Value: []byte(j.comment)})
	}
	for _, o := range p.Options {
		if s.same || o.Code == OptComment {
			opts = append(opts, o)
		}
	}
	bo := j.out.ByteOrder
	j.buf.Reset()
	var h [28]byte
	bo.PutUint32(h[0:], blockEPB)
	bo.PutUint32(h[8:], uint32(id))
	bo.PutUint32(h[12:], uint32(units>>32))
	bo.PutUint32(h[16:], uint32(units))
	bo.PutUint32(h[20:], uint32(len(data)))
	bo.PutUint32(h[24:], uint32(p.Length))
	j.buf.Write(h[:])
	j.buf.Write(data)
	pad(&j.buf)
	writeOptions(&j.buf, opts, bo)
	j.buf.Write([]byte{0, 0, 0, 0}) // trailer, set below
	b := j.buf.Bytes()
	bo.PutUint32(b[4:], uint32(len(b)))
	bo.PutUint32(b[len(b)-4:], uint32(len(b)))
	if err := j.write(b); err != nil {
		return false, err
	}
	j.comment = ""
	return trunc, nil
}

func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

func writeOptions(b *bytes.Buffer, opts []Option, bo binary.ByteOrder) {
	if len(opts) == 0 {
		return
	}
	var h [4]byte
	for _, o := range opts {
		v := o.Value
		if len(v) > 0xffff {
			v = v[:0xffff]
		}
		bo.PutUint16(h[0:], o.Code)
		bo.PutUint16(h[2:], uint16(len(v)))
		b.Write(h[:])
		b.Write(v)
		pad(b)
	}
	b.Write([]byte{0, 0, 0, 0}) // opt_endofopt
}

func (j *Joiner) block(s *segment, rec Record) error {
	if s.define {
		return j.write(rec.Raw)
	}
	if !s.same {
		j.dropped()
		return nil
	}
	if rec.BlockType != blockISB {
		return j.write(rec.Raw)
	}
	bo := j.out.ByteOrder
	if len(rec.Raw) < 16 {
		j.dropped()
		return nil
	}
	id := int(bo.Uint32(rec.Raw[8:]))
	if id >= len(s.mapping) {
		j.dropped()
		return nil
	}
	raw := append(j.buf.Bytes()[:0], rec.Raw...)
	bo.PutUint32(raw[8:], uint32(s.mapping[id]))
	return j.write(raw)
}

func (j *Joiner) dropped() {
	j.mu.Lock()
	j.sum.DroppedBlocks++
	j.mu.Unlock()
}

func (j *Joiner) write(b []byte) error {
	if _, err := j.w.Write(b); err != nil {
		return fmt.Errorf("write the capture: %w", err)
	}
	return nil
}
