package checks

// Streaming aggregation of a conntrack table dump. The kernel answers an
// IPCTNL_MSG_CT_GET dump in batches (one recvmsg each, up to 32 KiB of
// netlink messages); each entry is reduced to the addresses of its two
// tuples and counted at once, so neither the raw messages nor decoded flows
// of the whole table are ever held in memory. This file holds the decoding,
// independent of the socket, so it can be fed recorded or synthetic bytes.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"syscall"
)

// Netlink and ctnetlink numbers (linux/netlink.h,
// linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_conntrack.h).
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nlaHdrLen   = 4  // struct nlattr
	nfgenmsgLen = 4  // struct nfgenmsg

	nlmsgNoop    = 0x1
	nlmsgError   = 0x2
	nlmsgDone    = 0x3
	nlmsgOverrun = 0x4

	nlmFDumpIntr = 0x10 // NLM_F_DUMP_INTR

	nlaTypeMask = 0x3fff // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)

	nfnlSubsysCTNetlink = 1 // NFNL_SUBSYS_CTNETLINK
	ipctnlMsgCtNew      = 0 // IPCTNL_MSG_CT_NEW: each entry of a dump
	ipctnlMsgCtGet      = 1 // IPCTNL_MSG_CT_GET: the dump request

	ctaTupleOrig  = 1 // CTA_TUPLE_ORIG
	ctaTupleReply = 2 // CTA_TUPLE_REPLY
	ctaTupleIP    = 1 // CTA_TUPLE_IP
	ctaIPv4Src    = 1 // CTA_IP_V4_SRC
	ctaIPv4Dst    = 2 // CTA_IP_V4_DST
	ctaIPv6Src    = 3 // CTA_IP_V6_SRC
	ctaIPv6Dst    = 4 // CTA_IP_V6_DST
)

// ctEntryType is the netlink message type of one conntrack entry.
const ctEntryType = nfnlSubsysCTNetlink<<8 | ipctnlMsgCtNew

var (
	// errDumpInterrupted: the kernel flagged the dump as inconsistent
	// (the table changed under it); the dump must be repeated.
	errDumpInterrupted = errors.New("the kernel interrupted the conntrack dump (the table changed while it was read)")
	errMalformed       = errors.New("malformed netlink message")
)

// conntrackMessages turns batches of netlink messages, as recvmsg returns
// them, into the payloads (nfgenmsg and attributes) of the conntrack entries
// answering the dump request with sequence number seq. It ends at
// NLMSG_DONE; an error from the kernel or from batches, an interrupted dump
// or a malformed message end it with that error. A payload is only valid
// until the next one is asked for: batches may reuse its buffer.
func conntrackMessages(batches iter.Seq2[[]byte, error], seq uint32) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for b, err := range batches {
			if err != nil {
				yield(nil, err)
				return
			}
			for len(b) > 0 {
				if len(b) < nlmsgHdrLen {
					yield(nil, fmt.Errorf("%w: %d bytes left, less than a header", errMalformed, len(b)))
					return
				}
				n := binary.NativeEndian.Uint32(b[0:4])
				typ := binary.NativeEndian.Uint16(b[4:6])
				flags := binary.NativeEndian.Uint16(b[6:8])
				mseq := binary.NativeEndian.Uint32(b[8:12])
				if n < nlmsgHdrLen || uint64(n) > uint64(len(b)) {
					yield(nil, fmt.Errorf("%w: length %d with %d bytes left", errMalformed, n, len(b)))
					return
				}
				data := b[nlmsgHdrLen:n]
				b = b[min(int(n+3)&^3, len(b)):]
				if mseq != seq {
					continue // not an answer to this dump
				}
				if flags&nlmFDumpIntr != 0 {
					yield(nil, errDumpInterrupted)
					return
				}
				switch typ {
				case ctEntryType:
					if !yield(data, nil) {
						return
					}
				case nlmsgDone:
					if e := nlErrno(data); e != 0 {
						yield(nil, e)
					}
					return
				case nlmsgError:
					if e := nlErrno(data); e != 0 {
						yield(nil, e)
						return
					}
				case nlmsgOverrun:
					yield(nil, errors.New("netlink overrun: the kernel lost part of the dump"))
					return
				}
			}
		}
		yield(nil, errors.New("the conntrack dump ended without NLMSG_DONE"))
	}
}

// nlErrno is the error code at the start of an NLMSG_ERROR or NLMSG_DONE
// payload (0: none).
func nlErrno(data []byte) syscall.Errno {
	if len(data) < 4 {
		return 0
	}
	e := int32(binary.NativeEndian.Uint32(data[0:4]))
	if e < 0 {
		e = -e
	}
	return syscall.Errno(e)
}

// aggregateConntrack counts, per address in scope (every address when
// scope is nil), the conntrack entries of msgs (payloads of
// IPCTNL_MSG_CT_NEW messages) the address appears in: once per entry,
// whether as source or destination, original or reply direction.
func aggregateConntrack(msgs iter.Seq2[[]byte, error], scope func(netip.Addr) bool) (map[netip.Addr]uint32, error) {
	c := newIPCounter(scope)
	entry := 0
	for m, err := range msgs {
		if err != nil {
			return nil, err
		}
		if err := c.addMessage(m); err != nil {
			return nil, fmt.Errorf("conntrack entry %d: %w", entry, err)
		}
		entry++
	}
	return c.counts, nil
}

// ipCounter counts conntrack entries per address.
type ipCounter struct {
	scope  func(netip.Addr) bool
	counts map[netip.Addr]uint32
	addrs  []netip.Addr // the current entry's, reused
}

func newIPCounter(scope func(netip.Addr) bool) *ipCounter {
	return &ipCounter{scope: scope, counts: map[netip.Addr]uint32{}, addrs: make([]netip.Addr, 0, 4)}
}

// addEntry counts one entry with these addresses; an address appearing
// twice (a flow without NAT has each address in both tuples) counts once.
func (c *ipCounter) addEntry(addrs []netip.Addr) {
next:
	for i, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() {
			continue
		}
		for _, b := range addrs[:i] {
			if b.Unmap() == a {
				continue next
			}
		}
		if c.scope != nil && !c.scope(a) {
			continue
		}
		c.counts[a]++
	}
}

// addMessage counts the entry in the payload of one IPCTNL_MSG_CT_NEW
// message: the nfgenmsg header, then attributes, of which only
// CTA_TUPLE_ORIG and CTA_TUPLE_REPLY → CTA_TUPLE_IP → CTA_IP_V{4,6}_{SRC,DST}
// are read.
func (c *ipCounter) addMessage(data []byte) error {
	if len(data) < nfgenmsgLen {
		return fmt.Errorf("%w: %d bytes, shorter than the nfgenmsg header", errMalformed, len(data))
	}
	c.addrs = c.addrs[:0]
	top := nlAttrs{b: data[nfgenmsgLen:]}
	for top.next() {
		if top.typ != ctaTupleOrig && top.typ != ctaTupleReply {
			continue
		}
		tuple := nlAttrs{b: top.data}
		for tuple.next() {
			if tuple.typ != ctaTupleIP {
				continue
			}
			ip := nlAttrs{b: tuple.data}
			for ip.next() {
				switch ip.typ {
				case ctaIPv4Src, ctaIPv4Dst:
					if len(ip.data) != 4 {
						return fmt.Errorf("%w: IPv4 address of %d bytes", errMalformed, len(ip.data))
					}
					c.addrs = append(c.addrs, netip.AddrFrom4([4]byte(ip.data)))
				case ctaIPv6Src, ctaIPv6Dst:
					if len(ip.data) != 16 {
						return fmt.Errorf("%w: IPv6 address of %d bytes", errMalformed, len(ip.data))
					}
					c.addrs = append(c.addrs, netip.AddrFrom16([16]byte(ip.data)))
				}
			}
			if ip.err != nil {
				return ip.err
			}
		}
		if tuple.err != nil {
			return tuple.err
		}
	}
	if top.err != nil {
		return top.err
	}
	c.addEntry(c.addrs)
	return nil
}

// nlAttrs walks netlink attributes without copying or allocating.
type nlAttrs struct {
	b    []byte
	typ  uint16 // without the NLA_F_NESTED and NLA_F_NET_BYTEORDER flags
	data []byte
	err  error
}

func (a *nlAttrs) next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < nlaHdrLen {
		a.err = fmt.Errorf("%w: %d bytes left, less than an attribute header", errMalformed, len(a.b))
		return false
	}
	n := int(binary.NativeEndian.Uint16(a.b[0:2]))
	if n < nlaHdrLen || n > len(a.b) {
		a.err = fmt.Errorf("%w: attribute length %d with %d bytes left", errMalformed, n, len(a.b))
		return false
	}
	a.typ = binary.NativeEndian.Uint16(a.b[2:4]) & nlaTypeMask
	a.data = a.b[nlaHdrLen:n]
	a.b = a.b[min((n+3)&^3, len(a.b)):]
	return true
}
