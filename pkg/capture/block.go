package capture

import (
	"encoding/binary"
	"fmt"
)

// The TPACKET_V3 ring (linux/if_packet.h) is a row of blocks. The kernel
// fills a block with packets, then hands it over (block_status gets
// TP_STATUS_USER) when it is full or its retire timeout expires; the reader
// walks it and hands it back (TP_STATUS_KERNEL). All fields are in host
// byte order.
//
// A block starts with struct tpacket_block_desc:
//
//	0  version            u32
//	4  offset_to_priv     u32
//	8  block_status       u32 (tpacket_hdr_v1 from here)
//	12 num_pkts           u32
//	16 offset_to_first_pkt u32
//	20 blk_len            u32
//	24 seq_num            u64
//	32 ts_first_pkt, 40 ts_last_pkt (sec u32, nsec u32)
//
// Each packet starts with struct tpacket3_hdr, at offset_to_first_pkt for
// the first and tp_next_offset further for each next one:
//
//	0  tp_next_offset u32
//	4  tp_sec         u32
//	8  tp_nsec        u32
//	12 tp_snaplen     u32 (bytes in the ring)
//	16 tp_len         u32 (bytes on the wire)
//	20 tp_status      u32
//	24 tp_mac         u16 (packet data, from this header)
//	26 tp_net         u16
//	28 tp_rxhash      u32
//	32 tp_vlan_tci    u32
//	36 tp_vlan_tpid   u16
const (
	bdBlockStatus  = 8
	bdNumPkts      = 12
	bdFirstPkt     = 16
	blockDescLen   = 48
	thNextOffset   = 0
	thSec          = 4
	thNsec         = 8
	thSnaplen      = 12
	thLen          = 16
	thStatus       = 20
	thMac          = 24
	thVlanTCI      = 32
	thVlanTPID     = 36
	tpacket3HdrLen = 48

	tpStatusKernel        = 0
	tpStatusUser          = 0x1
	tpStatusVLANValid     = 0x10
	tpStatusVLANTPIDValid = 0x40

	// ethPVLAN is the 802.1Q tag protocol the kernel means when it gives a
	// VLAN tag without its TPID.
	ethPVLAN = 0x8100
)

var hostEndian = binary.NativeEndian

// blockError says a block from the ring does not hold what its header
// claims: a kernel ABI mismatch, never a property of the traffic.
type blockError struct{ msg string }

func (e *blockError) Error() string { return "malformed TPACKET_V3 block: " + e.msg }

// tpacket is one packet of a block.
type tpacket struct {
	sec, nsec uint32
	// origLen is the length on the wire; data is what the ring holds
	// (at most the filter's snapshot length).
	origLen int
	data    []byte
	status  uint32
	// vlanTCI and vlanTPID are the tag the device took off the frame
	// (status has tpStatusVLANValid).
	vlanTCI, vlanTPID uint16
	// next is tp_next_offset: where the next packet starts, from this one.
	next uint32
}

// blockPackets returns the number of packets in blk and the offset of the
// first.
func blockPackets(blk []byte) (n, first uint32, err error) {
	if len(blk) < blockDescLen {
		return 0, 0, &blockError{fmt.Sprintf("%d bytes, shorter than its %d-byte descriptor", len(blk), blockDescLen)}
	}
	return hostEndian.Uint32(blk[bdNumPkts:]), hostEndian.Uint32(blk[bdFirstPkt:]), nil
}

// packetAt reads the packet whose tpacket3_hdr is at off in blk. The data
// is a slice of blk.
func packetAt(blk []byte, off uint32) (tpacket, error) {
	end := uint64(off) + tpacket3HdrLen
	if end > uint64(len(blk)) {
		return tpacket{}, &blockError{fmt.Sprintf("a packet header at offset %d runs past the block's %d bytes", off, len(blk))}
	}
	h := blk[off:end]
	mac := uint64(off) + uint64(hostEndian.Uint16(h[thMac:]))
	snap := uint64(hostEndian.Uint32(h[thSnaplen:]))
	if mac < end || mac+snap > uint64(len(blk)) {
		return tpacket{}, &blockError{fmt.Sprintf("the packet at offset %d has %d bytes at %d, outside the block's %d bytes", off, snap, mac, len(blk))}
	}
	return tpacket{
		sec:      hostEndian.Uint32(h[thSec:]),
		nsec:     hostEndian.Uint32(h[thNsec:]),
		origLen:  int(hostEndian.Uint32(h[thLen:])),
		data:     blk[mac : mac+snap],
		status:   hostEndian.Uint32(h[thStatus:]),
		vlanTCI:  uint16(hostEndian.Uint32(h[thVlanTCI:])),
		vlanTPID: hostEndian.Uint16(h[thVlanTPID:]),
		next:     hostEndian.Uint32(h[thNextOffset:]),
	}, nil
}

// writeBlock writes every packet of a TPACKET_V3 block, in order, until a
// limit stops the capture (the reason is returned; the packets after it are
// not written). A *blockError means the block is malformed; any other error
// is the output's. This is the engine's per-packet path: the header fields
// are read in place, without packetAt's copy.
func (w *recordWriter) writeBlock(blk []byte) (string, error) {
	n, off, err := blockPackets(blk)
	if err != nil {
		return "", err
	}
	size := uint64(len(blk))
	for i := uint32(0); i < n; i++ {
		end := uint64(off) + tpacket3HdrLen
		if end > size {
			_, err := packetAt(blk, off) // says what is wrong
			return "", err
		}
		h := blk[off:end:end]
		mac := uint64(off) + uint64(hostEndian.Uint16(h[thMac:]))
		snap := uint64(hostEndian.Uint32(h[thSnaplen:]))
		if mac < end || mac+snap > size {
			_, err := packetAt(blk, off)
			return "", err
		}
		data, origLen := blk[mac:mac+snap], int(hostEndian.Uint32(h[thLen:]))
		if status := hostEndian.Uint32(h[thStatus:]); status&tpStatusVLANValid != 0 && w.vlanTags {
			tpid := uint16(ethPVLAN)
			if status&tpStatusVLANTPIDValid != 0 {
				tpid = hostEndian.Uint16(h[thVlanTPID:])
			}
			data, origLen = w.withVLANTag(data, origLen, tpid, uint16(hostEndian.Uint32(h[thVlanTCI:])))
		}
		reason, err := w.write(int64(hostEndian.Uint32(h[thSec:])), hostEndian.Uint32(h[thNsec:]), data, origLen)
		if reason != "" || err != nil {
			return reason, err
		}
		if i+1 < n {
			next := hostEndian.Uint32(h[thNextOffset:])
			if next == 0 {
				return "", &blockError{fmt.Sprintf("packet %d of %d has no next offset", i+1, n)}
			}
			if uint64(off)+uint64(next) > size {
				return "", &blockError{fmt.Sprintf("packet %d of %d points past the block's %d bytes", i+1, n, len(blk))}
			}
			off += next
		}
	}
	return "", nil
}

// withVLANTag puts back the 802.1Q tag the device (or veth's offload) took
// off an Ethernet frame and left beside it in the ring, as libpcap does, so
// the file shows the frame as it was on the wire. Both lengths grow by the
// 4 bytes of the tag; the snapshot length still applies afterwards.
func (w *recordWriter) withVLANTag(data []byte, origLen int, tpid, tci uint16) ([]byte, int) {
	const macs = 12 // destination and source addresses come before the tag
	if len(data) < macs {
		return data, origLen
	}
	s := append(w.scratch[:0], data[:macs]...)
	s = append(s, byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci))
	s = append(s, data[macs:]...)
	w.scratch = s
	return s, origLen + 4
}
