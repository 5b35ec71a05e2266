package pcapstream

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
)

// readSHB reads a section header block whose first bytes (4 or 8) are in
// head, and makes it the current section.
func (r *Reader) readSHB(head []byte) ([]byte, error) {
	start := r.offset - int64(len(head))
	fixed := make([]byte, 12)
	copy(fixed, head)
	if err := r.readFull(fixed[len(head):], "a section header block", len(head)); err != nil {
		return nil, err
	}
	var bo binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint32(fixed[8:]) == ngBOM:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(fixed[8:]) == ngBOM:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: the section header block at offset %d has byte-order magic % x, not 1a2b3c4d in either byte order", ErrCorrupt, start, fixed[8:12])
	}
	length, err := r.blockLength(bo.Uint32(fixed[4:]), 28, "section header", start)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, length)
	copy(raw, fixed)
	if err := r.readFull(raw[12:], fmt.Sprintf("a %d-byte section header block", length), 12); err != nil {
		return nil, err
	}
	if err := checkTrailer(raw, bo, "section header", start); err != nil {
		return nil, err
	}
	h := Header{
		Format:       FormatPcapNG,
		ByteOrder:    bo,
		VersionMajor: bo.Uint16(raw[12:]),
		VersionMinor: bo.Uint16(raw[14:]),
	}
	if h.VersionMajor != 1 {
		return nil, fmt.Errorf("%w: pcapng version %d.%d at offset %d is not supported (only 1.x)", ErrCorrupt, h.VersionMajor, h.VersionMinor, start)
	}
	if h.Options, err = parseOptions(raw[24:length-4], bo); err != nil {
		return nil, fmt.Errorf("%w: section header at offset %d: %v", ErrCorrupt, start, err)
	}
	r.hdr = h
	r.ifaces = nil
	return raw, nil
}

// blockLength checks a block's total length.
func (r *Reader) blockLength(length uint32, min int, what string, start int64) (int, error) {
	if length < uint32(min) || length%4 != 0 || length > maxRecord {
		return 0, fmt.Errorf("%w: the %s block at offset %d has length %d (must be a multiple of 4 between %d and %d)", ErrCorrupt, what, start, length, min, maxRecord)
	}
	return int(length), nil
}

func checkTrailer(raw []byte, bo binary.ByteOrder, what string, start int64) error {
	lead, trail := bo.Uint32(raw[4:]), bo.Uint32(raw[len(raw)-4:])
	if lead != trail {
		return fmt.Errorf("%w: the %s block at offset %d has length %d but its trailer says %d", ErrCorrupt, what, start, lead, trail)
	}
	return nil
}

func (r *Reader) nextBlock() (Record, error) {
	start := r.offset
	var headArr [8]byte
	head := headArr[:]
	if err := r.startRecord(head, "a block header"); err != nil {
		return Record{}, err
	}
	if binary.LittleEndian.Uint32(head) == blockSHB {
		raw, err := r.readSHB(head)
		if err != nil {
			return Record{}, err
		}
		return Record{Type: RecordSection, BlockType: blockSHB, Raw: raw}, nil
	}
	bo := r.hdr.ByteOrder
	typ := bo.Uint32(head)
	length, err := r.blockLength(bo.Uint32(head[4:]), 12, blockName(typ), start)
	if err != nil {
		return Record{}, err
	}
	raw := r.grow(length)
	copy(raw, head)
	if err := r.readFull(raw[8:], fmt.Sprintf("a %d-byte %s block", length, blockName(typ)), 8); err != nil {
		return Record{}, err
	}
	if err := checkTrailer(raw, bo, blockName(typ), start); err != nil {
		return Record{}, err
	}
	body := raw[8 : length-4]
	rec := Record{Type: RecordBlock, BlockType: typ, Raw: raw}
	switch typ {
	case blockIDB:
		// Interfaces outlive the record: their options must not point
		// into the read buffer.
		ifc, err := parseIDB(append([]byte(nil), body...), bo)
		if err != nil {
			return Record{}, fmt.Errorf("%w: interface description block at offset %d: %v", ErrCorrupt, start, err)
		}
		r.ifaces = append(r.ifaces, ifc)
		rec.Type = RecordInterface
	case blockEPB, blockOPB:
		if err := r.parsePacket(typ, body, bo); err != nil {
			return Record{}, fmt.Errorf("%w: %s block at offset %d: %v", ErrCorrupt, blockName(typ), start, err)
		}
		rec.Type, rec.Packet = RecordPacket, &r.pkt
	case blockSPB:
		if len(body) < 4 {
			return Record{}, fmt.Errorf("%w: simple packet block at offset %d is too short", ErrCorrupt, start)
		}
		if len(r.ifaces) == 0 {
			return Record{}, fmt.Errorf("%w: simple packet block at offset %d before any interface description block", ErrCorrupt, start)
		}
		orig := bo.Uint32(body)
		caplen := uint32(len(body) - 4)
		if orig < caplen {
			caplen = orig
		}
		if s := r.ifaces[0].SnapLen; s != 0 && caplen > s {
			caplen = s
		}
		r.pkt = Packet{CaptureLength: int(caplen), Length: int(orig), Data: body[4 : 4+caplen], Simple: true}
		rec.Type, rec.Packet = RecordPacket, &r.pkt
	}
	return rec, nil
}

func (r *Reader) parsePacket(typ uint32, body []byte, bo binary.ByteOrder) error {
	if len(body) < 20 {
		return fmt.Errorf("too short (%d bytes)", len(body))
	}
	var id int
	if typ == blockEPB {
		id = int(bo.Uint32(body))
	} else {
		id = int(bo.Uint16(body))
	}
	if id >= len(r.ifaces) {
		return fmt.Errorf("interface %d is not described (the section has %d interfaces)", id, len(r.ifaces))
	}
	units := uint64(bo.Uint32(body[4:]))<<32 | uint64(bo.Uint32(body[8:]))
	caplen, orig := bo.Uint32(body[12:]), bo.Uint32(body[16:])
	padded := (int(caplen) + 3) &^ 3
	if caplen > maxRecord || 20+padded > len(body) {
		return fmt.Errorf("captured length %d does not fit in the block", caplen)
	}
	opts, err := parseOptions(body[20+padded:], bo)
	if err != nil {
		return err
	}
	ifc := &r.ifaces[id]
	r.pkt = Packet{
		Timestamp:     unitsToTime(units, ifc),
		CaptureLength: int(caplen),
		Length:        int(orig),
		InterfaceID:   id,
		Data:          body[20 : 20+caplen],
		Options:       opts,
		units:         units,
	}
	return nil
}

func parseIDB(body []byte, bo binary.ByteOrder) (Interface, error) {
	if len(body) < 8 {
		return Interface{}, fmt.Errorf("too short (%d bytes)", len(body))
	}
	ifc := Interface{LinkType: bo.Uint16(body), SnapLen: bo.Uint32(body[4:]), Resolution: 1e6, tsresol: 6}
	opts, err := parseOptions(body[8:], bo)
	if err != nil {
		return Interface{}, err
	}
	ifc.Options = opts
	for _, o := range opts {
		switch o.Code {
		case optIfName:
			ifc.Name = string(o.Value)
		case optIfTSResol:
			if len(o.Value) != 1 {
				return Interface{}, fmt.Errorf("if_tsresol has %d bytes, not 1", len(o.Value))
			}
			res, ok := resolution(o.Value[0])
			if !ok {
				return Interface{}, fmt.Errorf("if_tsresol %#x is out of range", o.Value[0])
			}
			ifc.tsresol, ifc.Resolution = o.Value[0], res
		case optIfTSOffset:
			if len(o.Value) != 8 {
				return Interface{}, fmt.Errorf("if_tsoffset has %d bytes, not 8", len(o.Value))
			}
			ifc.Offset = int64(bo.Uint64(o.Value))
		}
	}
	return ifc, nil
}

// resolution turns if_tsresol into units per second (at most 2^63).
func resolution(b byte) (uint64, bool) {
	n := int(b & 0x7f)
	if b&0x80 != 0 {
		if n > 63 {
			return 0, false
		}
		return 1 << n, true
	}
	if n > 18 {
		return 0, false
	}
	res := uint64(1)
	for i := 0; i < n; i++ {
		res *= 10
	}
	return res, true
}

// parseOptions splits an options area (values point into b).
func parseOptions(b []byte, bo binary.ByteOrder) ([]Option, error) {
	var opts []Option
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%d stray bytes after the options", len(b))
		}
		code, n := bo.Uint16(b), int(bo.Uint16(b[2:]))
		if code == optEndOfOpt {
			break
		}
		padded := (n + 3) &^ 3
		if 4+padded > len(b) {
			return nil, fmt.Errorf("option %d of %d bytes does not fit in the block", code, n)
		}
		opts = append(opts, Option{Code: code, Value: b[4 : 4+n]})
		b = b[4+padded:]
	}
	return opts, nil
}

// unitsToTime converts a timestamp in an interface's units to a time.
func unitsToTime(units uint64, ifc *Interface) time.Time {
	res := ifc.Resolution
	sec := units / res
	rem := units % res
	// rem * 1e9 / res without overflow.
	hi, lo := bits.Mul64(rem, 1e9)
	ns, _ := bits.Div64(hi, lo, res)
	return time.Unix(int64(sec)+ifc.Offset, int64(ns)).UTC()
}

// timeToUnits converts a time to an interface's units (rounded down).
func timeToUnits(t time.Time, ifc *Interface) uint64 {
	sec := t.Unix() - ifc.Offset
	if sec < 0 {
		return 0
	}
	ns := uint64(t.Nanosecond())
	hi, lo := bits.Mul64(ns, ifc.Resolution)
	frac, _ := bits.Div64(hi, lo, 1e9)
	return uint64(sec)*ifc.Resolution + frac
}

func blockName(typ uint32) string {
	switch typ {
	case blockSHB:
		return "section header"
	case blockIDB:
		return "interface description"
	case blockOPB:
		return "packet (obsolete)"
	case blockSPB:
		return "simple packet"
	case blockISB:
		return "interface statistics"
	case blockEPB:
		return "enhanced packet"
	case 0x00000004:
		return "name resolution"
	case 0x0000000A:
		return "decryption secrets"
	}
	return fmt.Sprintf("type %#x", typ)
}
