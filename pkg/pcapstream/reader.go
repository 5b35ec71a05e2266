// Package pcapstream reads a capture stream (classic pcap or pcapng, as the
// helper writes it on stdout) record by record while it arrives, and joins
// the streams of several helper runs (segments) into one valid capture: a
// capture that outlives a broken exec stream is one output with a gap, not
// two files glued together.
//
// Nothing here buffers a whole stream: a record is returned (and, by the
// Joiner, written) as soon as its last byte has been read. A stream that
// ends in the middle of a record — what a broken stream does — yields an
// error wrapping ErrTruncated, and the partial record is dropped.
//
// Pure Go, standard library only.
package pcapstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

var (
	// ErrTruncated: the stream ended (EOF or a read error) in the middle of
	// a record or before its file header was complete. What was read before
	// that record is valid; the partial record is dropped.
	ErrTruncated = errors.New("the capture stream ended in the middle of a record")
	// ErrCorrupt: the bytes are not a pcap or pcapng stream, or a record's
	// framing is impossible (a length that does not fit, a block whose
	// trailing length differs from its leading one).
	ErrCorrupt = errors.New("the capture stream is corrupt")
)

// Format is a capture file format.
type Format int

const (
	// FormatPcap is the classic libpcap format.
	FormatPcap Format = iota + 1
	// FormatPcapNG is pcapng.
	FormatPcapNG
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNG:
		return "pcapng"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// maxRecord bounds one record (or pcapng block): more is garbage, not a
// packet. libpcap's own limit for a packet is 256 KiB.
const maxRecord = 16 << 20

// Classic pcap magic numbers (as read in the file's own byte order).
const (
	magicMicro = 0xa1b2c3d4
	magicNano  = 0xa1b23c4d
)

// pcapng block types.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockOPB = 0x00000002 // obsolete packet block
	blockSPB = 0x00000003
	blockISB = 0x00000005
	blockEPB = 0x00000006
	ngBOM    = 0x1A2B3C4D
)

// Option codes used here.
const (
	// OptComment is opt_comment: a UTF-8 comment, allowed on every block.
	OptComment     = 1
	optEndOfOpt    = 0
	optIfName      = 2
	optIfTSResol   = 9
	optIfTSOffset  = 14
	optShbUserAppl = 4
)

// RecordType says what a Record is.
type RecordType int

const (
	// RecordPacket is a packet (pcap record; pcapng EPB, SPB or obsolete PB).
	RecordPacket RecordType = iota + 1
	// RecordSection is a pcapng section header block (or the pcap file header).
	RecordSection
	// RecordInterface is a pcapng interface description block.
	RecordInterface
	// RecordBlock is any other pcapng block (statistics, name resolution,
	// decryption secrets, custom, unknown types).
	RecordBlock
)

// Option is one pcapng option; Value is in the section's byte order (for
// the options whose value is a number).
type Option struct {
	Code  uint16
	Value []byte
}

// Header is the stream's file header: the pcap global header or the
// current pcapng section header block.
type Header struct {
	Format    Format
	ByteOrder binary.ByteOrder
	// VersionMajor/Minor: 2.4 for pcap, 1.0 for pcapng.
	VersionMajor, VersionMinor uint16
	// Nanosecond: pcap timestamps are in nanoseconds (magic a1b23c4d).
	Nanosecond bool
	// SnapLen and LinkType of a pcap file (pcapng: per Interface).
	SnapLen  uint32
	LinkType uint32
	// Options of a pcapng section header (shb_userappl, shb_os, ...).
	Options []Option
}

// Interface is a pcapng interface description (a pcap file has one,
// made from its header).
type Interface struct {
	LinkType uint16
	SnapLen  uint32
	// Name is if_name ("" when absent).
	Name string
	// Resolution is the number of timestamp units per second (if_tsresol;
	// 1e6 when absent), Offset if_tsoffset in seconds.
	Resolution uint64
	Offset     int64
	// tsresol is the raw if_tsresol byte (6 when absent).
	tsresol byte
	Options []Option
}

// Packet is one captured packet. Data (and Options' values) are valid
// only until the next call to Next.
type Packet struct {
	// Timestamp is zero for a pcapng simple packet block (it has none).
	Timestamp time.Time
	// CaptureLength == len(Data); Length is the packet's length on the wire.
	CaptureLength int
	Length        int
	// InterfaceID is the pcapng interface (index in the section's
	// interfaces); 0 for pcap.
	InterfaceID int
	Data        []byte
	// Options of a pcapng enhanced (or obsolete) packet block.
	Options []Option
	// Simple: read from a pcapng simple packet block (no timestamp, no
	// options, interface 0).
	Simple bool
	// units is the timestamp in the interface's units (pcapng) or the raw
	// seconds<<32|fraction of a pcap record; used to copy it unchanged.
	units uint64
}

// Comments returns the packet's opt_comment options.
func (p *Packet) Comments() []string {
	var c []string
	for _, o := range p.Options {
		if o.Code == OptComment {
			c = append(c, string(o.Value))
		}
	}
	return c
}

// Record is one record of the stream.
type Record struct {
	Type RecordType
	// Packet is set for RecordPacket.
	Packet *Packet
	// BlockType is the pcapng block type (0 for pcap).
	BlockType uint32
	// Raw is the whole record as read, header and trailer included, in the
	// stream's byte order. Valid until the next call to Next.
	Raw []byte
}

// Reader reads a capture stream record by record.
type Reader struct {
	br     *bufio.Reader
	offset int64 // of the next byte to read
	hdr    Header
	ifaces []Interface
	buf    []byte
	pkt    Packet
	// pending: the SHB that NewReader read, returned by the first Next.
	pending []byte
}

// NewReader reads the file header (the pcap global header, or the pcapng
// section header block) and returns a Reader positioned after it. An empty
// stream or one that ends inside the header is ErrTruncated; anything that
// is not pcap or pcapng is ErrCorrupt.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10)}
	head := make([]byte, 4)
	if err := rd.readFull(head, "the file header", 0); err != nil {
		return nil, err
	}
	switch {
	case binary.LittleEndian.Uint32(head) == blockSHB:
		raw, err := rd.readSHB(head)
		if err != nil {
			return nil, err
		}
		rd.pending = raw
		return rd, nil
	case isPcapMagic(head):
		return rd, rd.readPcapHeader(head)
	}
	return nil, fmt.Errorf("%w: not a pcap or pcapng stream: it starts with % x (%q)", ErrCorrupt, head, printable(head))
}

// Header is the pcap file header or the current pcapng section header.
func (r *Reader) Header() Header { return r.hdr }

// Interfaces are the interfaces of the current pcapng section seen so far
// (a pcap stream has one, from its header).
func (r *Reader) Interfaces() []Interface { return r.ifaces }

// Offset is the number of bytes read so far: after a record, where the
// next one starts.
func (r *Reader) Offset() int64 { return r.offset }

// NextPacket returns the next packet, skipping other records. The packet
// is valid until the next call.
func (r *Reader) NextPacket() (*Packet, error) {
	for {
		rec, err := r.Next()
		if err != nil {
			return nil, err
		}
		if rec.Type == RecordPacket {
			return rec.Packet, nil
		}
	}
}

// Next returns the next record; the first one is the file header NewReader
// read (RecordSection: the pcap global header or the pcapng section header
// block). At the clean end of the stream (EOF between
// records) it returns io.EOF; a stream that ends inside a record returns
// an error wrapping ErrTruncated (and the read error, if any).
func (r *Reader) Next() (Record, error) {
	if r.pending != nil {
		raw := r.pending
		r.pending = nil
		rec := Record{Type: RecordSection, Raw: raw}
		if r.hdr.Format == FormatPcapNG {
			rec.BlockType = blockSHB
		}
		return rec, nil
	}
	if r.hdr.Format == FormatPcap {
		return r.nextPcap()
	}
	return r.nextBlock()
}

// readFull reads len(p) bytes of a record whose first done bytes were
// already read. Any end before that is ErrTruncated.
func (r *Reader) readFull(p []byte, what string, done int) error {
	n, err := io.ReadFull(r.br, p)
	r.offset += int64(n)
	if err == nil {
		return nil
	}
	start := r.offset - int64(n+done)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return fmt.Errorf("%w: it ended %d bytes into %s at offset %d; the partial record is dropped",
			ErrTruncated, n+done, what, start)
	}
	return fmt.Errorf("%w: reading %s at offset %d failed after %d bytes (the partial record is dropped): %w",
		ErrTruncated, what, start, n+done, err)
}

// startRecord reads the first bytes of a record: a clean EOF there is the
// end of the stream.
func (r *Reader) startRecord(p []byte, what string) error {
	n, err := io.ReadFull(r.br, p)
	r.offset += int64(n)
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: it ended %d bytes into %s at offset %d; the partial record is dropped",
				ErrTruncated, n, what, r.offset-int64(n))
		}
		if n == 0 {
			return err
		}
		return fmt.Errorf("%w: reading %s at offset %d failed after %d bytes (the partial record is dropped): %w",
			ErrTruncated, what, r.offset-int64(n), n, err)
	}
	return nil
}

func (r *Reader) grow(n int) []byte {
	if cap(r.buf) < n {
		r.buf = make([]byte, n, n+n/4)
	}
	return r.buf[:n]
}

// ----------------------------------------------------------------- pcap

func isPcapMagic(b []byte) bool {
	for _, m := range []uint32{binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b)} {
		if m == magicMicro || m == magicNano {
			return true
		}
	}
	return false
}

func (r *Reader) readPcapHeader(head []byte) error {
	raw := make([]byte, 24)
	copy(raw, head)
	if err := r.readFull(raw[4:], "the 24-byte pcap file header", 4); err != nil {
		return err
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if m := binary.LittleEndian.Uint32(raw); m != magicMicro && m != magicNano {
		bo = binary.BigEndian
	}
	h := Header{
		Format:       FormatPcap,
		ByteOrder:    bo,
		Nanosecond:   bo.Uint32(raw) == magicNano,
		VersionMajor: bo.Uint16(raw[4:]),
		VersionMinor: bo.Uint16(raw[6:]),
		SnapLen:      bo.Uint32(raw[16:]),
		LinkType:     bo.Uint32(raw[20:]),
	}
	if h.VersionMajor != 2 {
		return fmt.Errorf("%w: pcap version %d.%d is not supported (only 2.x)", ErrCorrupt, h.VersionMajor, h.VersionMinor)
	}
	r.hdr = h
	res, tsresol := uint64(1e6), byte(6)
	if h.Nanosecond {
		res, tsresol = 1e9, 9
	}
	r.ifaces = []Interface{{LinkType: uint16(h.LinkType), SnapLen: h.SnapLen, Resolution: res, tsresol: tsresol}}
	r.pending = raw
	return nil
}

func (r *Reader) nextPcap() (Record, error) {
	start := r.offset
	var hdrArr [16]byte
	hdr := hdrArr[:]
	if err := r.startRecord(hdr, "a packet record header"); err != nil {
		return Record{}, err
	}
	bo := r.hdr.ByteOrder
	sec, frac := bo.Uint32(hdr[0:]), bo.Uint32(hdr[4:])
	caplen, length := bo.Uint32(hdr[8:]), bo.Uint32(hdr[12:])
	if caplen > maxRecord {
		return Record{}, fmt.Errorf("%w: the packet record at offset %d claims %d captured bytes (more than %d): not a pcap record", ErrCorrupt, start, caplen, maxRecord)
	}
	raw := r.grow(16 + int(caplen))
	copy(raw, hdr)
	if err := r.readFull(raw[16:], fmt.Sprintf("a %d-byte packet record", 16+caplen), 16); err != nil {
		return Record{}, err
	}
	ns := int64(frac) * 1000
	if r.hdr.Nanosecond {
		ns = int64(frac)
	}
	r.pkt = Packet{
		Timestamp:     time.Unix(int64(sec), ns).UTC(),
		CaptureLength: int(caplen),
		Length:        int(length),
		Data:          raw[16:],
		units:         uint64(sec)<<32 | uint64(frac),
	}
	return Record{Type: RecordPacket, Packet: &r.pkt, Raw: raw}, nil
}

// printable shows the first bytes as text when they look like text (an
// error message written where the capture should be).
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}
