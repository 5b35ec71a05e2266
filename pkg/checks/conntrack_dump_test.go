package checks

import (
	"encoding/binary"
	"errors"
	"iter"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
)

// ctTestEntry is one synthetic conntrack entry: a TCP connection, NATed
// when the reply addresses are not the original ones swapped.
type ctTestEntry struct {
	origSrc, origDst, replySrc, replyDst string
	sport, dport                         uint16
}

// flow is an entry without NAT.
func flow(src, dst string) ctTestEntry {
	return ctTestEntry{origSrc: src, origDst: dst, replySrc: dst, replyDst: src, sport: 40000, dport: 443}
}

// encodeCTEntry encodes e as the payload of an IPCTNL_MSG_CT_NEW message
// the way the kernel's ctnetlink dump does: nfgenmsg, both tuples (IP and
// proto), status, timeout, TCP protoinfo, mark, use and id.
func encodeCTEntry(tb testing.TB, e ctTestEntry, id uint32) []byte {
	tb.Helper()
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian // netfilter payloads are big-endian
	tuple := func(src, dst netip.Addr, sport, dport uint16) func(*netlink.AttributeEncoder) error {
		return func(t *netlink.AttributeEncoder) error {
			t.Nested(ctaTupleIP, func(ip *netlink.AttributeEncoder) error {
				s, d := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
				if src.Is6() {
					s, d = ctaIPv6Src, ctaIPv6Dst
				}
				ip.Bytes(s, src.AsSlice())
				ip.Bytes(d, dst.AsSlice())
				return nil
			})
			t.Nested(2, func(p *netlink.AttributeEncoder) error { // CTA_TUPLE_PROTO
				p.Uint8(1, 6) // CTA_PROTO_NUM: TCP
				p.Uint16(2, sport)
				p.Uint16(3, dport)
				return nil
			})
			return nil
		}
	}
	ae.Nested(ctaTupleOrig, tuple(a(e.origSrc), a(e.origDst), e.sport, e.dport))
	ae.Nested(ctaTupleReply, tuple(a(e.replySrc), a(e.replyDst), e.dport, e.sport))
	ae.Uint32(3, 0x18e)  // CTA_STATUS: confirmed, assured, seen reply
	ae.Uint32(7, 431999) // CTA_TIMEOUT
	// CTA_PROTOINFO
	ae.Nested(4, func(pi *netlink.AttributeEncoder) error {
		pi.Nested(1, func(tcp *netlink.AttributeEncoder) error { // CTA_PROTOINFO_TCP
			tcp.Uint8(1, 3) // state: established
			tcp.Uint8(2, 7) // window scales
			tcp.Uint8(3, 7)
			tcp.Bytes(4, []byte{0x23, 0}) // flags, mask
			tcp.Bytes(5, []byte{0x23, 0})
			return nil
		})
		return nil
	})
	ae.Uint32(8, 0)   // CTA_MARK
	ae.Uint32(11, 1)  // CTA_USE
	ae.Uint32(12, id) // CTA_ID
	b, err := ae.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	family := byte(2) // AF_INET
	if a(e.origSrc).Is6() {
		family = 10 // AF_INET6
	}
	return append([]byte{family, 0, 0, 0}, b...)
}

// nlMessage frames data as one netlink message.
func nlMessage(tb testing.TB, typ, flags uint16, seq uint32, data []byte) []byte {
	tb.Helper()
	m := netlink.Message{
		Header: netlink.Header{Length: uint32(nlmsgHdrLen + len(data)), Type: netlink.HeaderType(typ), Flags: netlink.HeaderFlags(flags), Sequence: seq, PID: 4242},
		Data:   data,
	}
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const testSeq = 7

// dumpBatches packs entry payloads into batches of at most batchSize bytes
// the way the kernel answers a dump (NLM_F_MULTI messages), NLMSG_DONE last.
func dumpBatches(tb testing.TB, payloads [][]byte, batchSize int) [][]byte {
	tb.Helper()
	var out [][]byte
	var cur []byte
	for _, p := range payloads {
		m := nlMessage(tb, ctEntryType, uint16(netlink.Multi), testSeq, p)
		if len(cur)+len(m) > batchSize && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, m...)
	}
	done := nlMessage(tb, nlmsgDone, uint16(netlink.Multi), testSeq, []byte{0, 0, 0, 0})
	if len(cur)+len(done) > batchSize && len(cur) > 0 {
		out = append(out, cur)
		cur = nil
	}
	return append(out, append(cur, done...))
}

func batchSeq(batches [][]byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, b := range batches {
			if !yield(b, nil) {
				return
			}
		}
	}
}

func encodeEntries(tb testing.TB, entries []ctTestEntry) [][]byte {
	var out [][]byte
	for i, e := range entries {
		out = append(out, encodeCTEntry(tb, e, uint32(i+1)))
	}
	return out
}

func aggregateEntries(tb testing.TB, entries []ctTestEntry, batchSize int, scope func(netip.Addr) bool) (map[netip.Addr]uint32, error) {
	tb.Helper()
	return aggregateConntrack(conntrackMessages(batchSeq(dumpBatches(tb, encodeEntries(tb, entries), batchSize)), testSeq), scope)
}

// prefixScope is podScope's answer for these CIDRs.
func prefixScope(t testing.TB, cidrs ...string) func(netip.Addr) bool {
	t.Helper()
	var nets []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	e := &env{cfg: Config{PodCIDRs: nets}}
	return e.podScope()
}

func addrCounts(m map[string]uint32) map[netip.Addr]uint32 {
	out := map[netip.Addr]uint32{}
	for k, v := range m {
		out[netip.MustParseAddr(k)] = v
	}
	return out
}

var testEntries = []ctTestEntry{
	flow("10.244.0.7", "1.1.1.1"),
	flow("10.244.0.7", "8.8.8.8"),
	flow("10.244.0.7", "10.244.0.9"), // pod to pod: both count
	// to a service VIP, DNATed to a pod: the backend appears only in the reply
	{origSrc: "10.244.0.8", origDst: "10.96.0.10", replySrc: "10.244.0.9", replyDst: "10.244.0.8", sport: 5353, dport: 53},
	// from outside through a NodePort, SNATed to the node
	{origSrc: "203.0.113.5", origDst: "192.0.2.10", replySrc: "10.244.0.9", replyDst: "192.0.2.10", sport: 5555, dport: 30080},
	flow("192.168.1.1", "8.8.8.8"), // the node's own traffic: outside the pod CIDRs
	flow("fd00:10:244::7", "2001:db8::1"),
	flow("fd00:10:244::7", "2001:db8::2"),
	flow("fd00:10:244::8", "fd00:10:244::7"),
	flow("::ffff:10.244.0.8", "2001:db8::3"), // a v4-mapped pod address counts as IPv4
	flow("2001:db8::9", "2001:db8::1"),
}

func TestAggregateConntrackPodScope(t *testing.T) {
	scope := prefixScope(t, "10.244.0.0/24", "fd00:10:244::/64")
	for _, size := range []int{200, 16 << 10, 32 << 10} { // one entry per batch, then several
		got, err := aggregateEntries(t, testEntries, size, scope)
		if err != nil {
			t.Fatalf("batch size %d: %v", size, err)
		}
		want := addrCounts(map[string]uint32{
			"10.244.0.7": 3, "10.244.0.8": 2, "10.244.0.9": 3,
			"fd00:10:244::7": 3, "fd00:10:244::8": 1,
		})
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("batch size %d: counts (-want +got):\n%s", size, d)
		}
	}
}

func TestAggregateConntrackAllAddresses(t *testing.T) {
	got, err := aggregateEntries(t, testEntries, 32<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := addrCounts(map[string]uint32{
		"10.244.0.7": 3, "10.244.0.8": 2, "10.244.0.9": 3, "1.1.1.1": 1, "8.8.8.8": 2,
		"10.96.0.10": 1, "203.0.113.5": 1, "192.0.2.10": 1, "192.168.1.1": 1,
		"fd00:10:244::7": 3, "fd00:10:244::8": 1, "2001:db8::1": 2, "2001:db8::2": 1,
		"2001:db8::3": 1, "2001:db8::9": 1,
	})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("counts (-want +got):\n%s", d)
	}
}

// The streaming decoder and ti-mo/conntrack-style flowAddrs agree: the
// same entries given as flowAddrs give the same counts.
func TestAggregateConntrackMatchesFlowCounts(t *testing.T) {
	var flows []flowAddrs
	for _, e := range testEntries {
		a := netip.MustParseAddr
		flows = append(flows, flowAddrs{a(e.origSrc), a(e.origDst), a(e.replySrc), a(e.replyDst)})
	}
	scope := prefixScope(t, "10.244.0.0/24", "fd00:10:244::/64")
	got, err := aggregateEntries(t, testEntries, 32<<10, scope)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(countFlows(flows, scope), got); d != "" {
		t.Errorf("streaming vs flowAddrs (-flows +streaming):\n%s", d)
	}
}

func TestTopIPsOrder(t *testing.T) {
	counts := addrCounts(map[string]uint32{
		"10.244.0.9": 5, "10.244.0.10": 5, // tie: by text, "10.244.0.10" first
		"fd00::1": 3, "10.244.0.3": 3, "10.244.0.200": 3, // a tie across the cut
		"10.244.0.1": 1,
	})
	pods := []PodInfo{{Namespace: "default", Name: "web", IP: net.ParseIP("10.244.0.9")}}
	got := topIPs(counts, 4, pods)
	want := []protocol.TopIP{
		{IP: "10.244.0.10", Entries: 5},
		{IP: "10.244.0.9", Entries: 5, Pod: "default/web"},
		{IP: "10.244.0.200", Entries: 3},
		{IP: "10.244.0.3", Entries: 3},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("topIPs (-want +got):\n%s", d)
	}
	// The same answer whatever the map's order.
	for range 20 {
		if d := cmp.Diff(want, topIPs(counts, 4, pods)); d != "" {
			t.Fatalf("topIPs not deterministic:\n%s", d)
		}
	}
	if got := topIPs(counts, 100, nil); len(got) != len(counts) || got[len(got)-1].IP != "10.244.0.1" {
		t.Errorf("topIPs(100) = %+v", got)
	}
}

func TestConntrackMessagesErrors(t *testing.T) {
	entry := nlMessage(t, ctEntryType, uint16(netlink.Multi), testSeq, encodeCTEntry(t, flow("10.244.0.7", "1.1.1.1"), 1))
	done := nlMessage(t, nlmsgDone, uint16(netlink.Multi), testSeq, []byte{0, 0, 0, 0})
	errno := func(e syscall.Errno) []byte {
		b := make([]byte, 4, 20)
		binary.NativeEndian.PutUint32(b, uint32(-int32(e)))
		return append(b, make([]byte, 16)...) // the request's header
	}
	badAttr := encodeCTEntry(t, flow("10.244.0.7", "1.1.1.1"), 1)
	binary.NativeEndian.PutUint16(badAttr[4:6], 0xfff0) // first attribute longer than the message
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		batches [][]byte
		want    error  // errors.Is
		wantN   uint32 // entries counted when there is no error
	}{
		{"ok", [][]byte{cat(entry, entry), done}, nil, 2},
		{"other sequence skipped", [][]byte{cat(entry, nlMessage(t, ctEntryType, 2, testSeq+1, encodeCTEntry(t, flow("10.244.0.7", "1.1.1.1"), 2)), done)}, nil, 1},
		{"ack skipped", [][]byte{cat(nlMessage(t, nlmsgError, 0, testSeq, errno(0)), entry, done)}, nil, 1},
		{"permission", [][]byte{nlMessage(t, nlmsgError, 0, testSeq, errno(syscall.EPERM))}, syscall.EPERM, 0},
		{"error in done", [][]byte{cat(entry, nlMessage(t, nlmsgDone, 2, testSeq, errno(syscall.ENOBUFS)))}, syscall.ENOBUFS, 0},
		{"interrupted", [][]byte{cat(entry, nlMessage(t, nlmsgDone, 2|nlmFDumpIntr, testSeq, []byte{0, 0, 0, 0}))}, errDumpInterrupted, 0},
		{"no done", [][]byte{entry}, nil, 0},
		{"short header", [][]byte{entry[:10]}, errMalformed, 0},
		{"message longer than batch", [][]byte{entry[:len(entry)-8]}, errMalformed, 0},
		{"attribute longer than message", [][]byte{nlMessage(t, ctEntryType, 2, testSeq, badAttr)}, errMalformed, 0},
		{"recv error", nil, syscall.EBADF, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batches := batchSeq(tc.batches)
			if tc.batches == nil {
				batches = func(yield func([]byte, error) bool) { yield(nil, syscall.EBADF) }
			}
			got, err := aggregateConntrack(conntrackMessages(batches, testSeq), nil)
			switch {
			case tc.wantN > 0:
				if err != nil {
					t.Fatal(err)
				}
				if n := got[netip.MustParseAddr("10.244.0.7")]; n != tc.wantN {
					t.Errorf("10.244.0.7 has %d entries, want %d", n, tc.wantN)
				}
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
			default:
				if err == nil {
					t.Errorf("no error, counts %v", got)
				}
			}
		})
	}
}
