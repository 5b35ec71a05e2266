//go:build linux

package checks

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
)

// Requirement: aggregating a full 262,144-entry conntrack table takes
// under 1 s and under 100 MB. Both benchmarks decode the same dump,
// pre-encoded as the kernel sends it (32 KiB batches of IPCTNL_MSG_CT_NEW
// messages, NLMSG_DONE last), for a node of 110 pods:
//
//   - BenchmarkConntrackAggregate262144: the streaming aggregator
//     (countConntrack without the socket); ...AllAddresses: the same
//     when no pod CIDR is known and every address is counted.
//   - BenchmarkConntrackDumpFlows262144: the way it was done before, for
//     reference: every batch kept (as netlink.Conn.Receive keeps them),
//     every entry decoded into a conntrack.Flow by ti-mo/conntrack, then
//     flowAddrs and counted.
//
// Besides ns/op, B/op and allocs/op, each reports peak-heap-MB: the
// high-water mark of the heap in use above the pre-encoded input, sampled
// every millisecond.

const (
	benchEntries = 262144
	benchPods    = 110
)

var benchDump = sync.OnceValues(func() ([][]byte, error) {
	var tb fakeTB
	entries := make([][]byte, 0, benchEntries)
	for i := range benchEntries {
		entries = append(entries, encodeCTEntry(&tb, benchEntry(i), uint32(i+1)))
	}
	batches := dumpBatches(&tb, entries, 32<<10)
	if tb.err != nil {
		return nil, tb.err
	}
	return batches, nil
})

// benchEntry is entry i of a busy node: pods talking to the outside world
// (IPv4 and IPv6), to services DNATed to other pods, and the node's own
// connections.
func benchEntry(i int) ctTestEntry {
	pod := func(n int) string { return fmt.Sprintf("10.244.0.%d", 2+n%benchPods) }
	ext := func(n int) string { return fmt.Sprintf("198.51.%d.%d", (n>>8)&0xff, n&0xff) }
	port := uint16(32768 + i%28000)
	switch i % 10 {
	case 0, 1, 2, 3, 4, 5:
		return ctTestEntry{origSrc: pod(i), origDst: ext(i / 7), replySrc: ext(i / 7), replyDst: "192.0.2.10", sport: port, dport: 443}
	case 6, 7:
		return ctTestEntry{origSrc: pod(i), origDst: fmt.Sprintf("10.96.%d.%d", (i>>8)&0x3f, i&0xff), replySrc: pod(i / 3), replyDst: pod(i), sport: port, dport: 8080}
	case 8:
		p := fmt.Sprintf("fd00:10:244::%x", 2+i%benchPods)
		return ctTestEntry{origSrc: p, origDst: fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff), replySrc: fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff), replyDst: p, sport: port, dport: 443}
	default:
		return flow("192.0.2.10", ext(i))
	}
}

// fakeTB lets the test encoders run outside a test, in sync.OnceValues.
type fakeTB struct {
	testing.TB
	err error
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("%s", fmt.Sprint(args...))
	}
}

func benchScope(b *testing.B) (func(netip.Addr) bool, []PodInfo) {
	_, v4, _ := net.ParseCIDR("10.244.0.0/24")
	_, v6, _ := net.ParseCIDR("fd00:10:244::/64")
	var pods []PodInfo
	for n := range benchPods {
		pods = append(pods, PodInfo{Namespace: "default", Name: fmt.Sprintf("pod-%d", n), IP: net.ParseIP(fmt.Sprintf("10.244.0.%d", 2+n))})
	}
	e := &env{cfg: Config{PodCIDRs: []*net.IPNet{v4, v6}, Pods: pods}}
	return e.podScope(), pods
}

func loadBenchDump(b *testing.B) [][]byte {
	b.Helper()
	batches, err := benchDump()
	if err != nil {
		b.Fatal(err)
	}
	return batches
}

// peakHeap samples HeapInuse every millisecond until stopped and reports
// its high-water mark above the heap in use when it started.
func peakHeap(b *testing.B) (stop func()) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		b.StopTimer()
		close(done)
		wg.Wait()
		p := peak.Load()
		if p < base {
			p = base
		}
		b.ReportMetric(float64(p-base)/(1<<20), "peak-heap-MB")
	}
}

func BenchmarkConntrackAggregate262144(b *testing.B) {
	scope, pods := benchScope(b)
	benchAggregate(b, scope, pods, true)
}

// BenchmarkConntrackAggregate262144AllAddresses is the same without a
// scope (no pod CIDR known, no bridge): every address is counted.
func BenchmarkConntrackAggregate262144AllAddresses(b *testing.B) {
	_, pods := benchScope(b)
	benchAggregate(b, nil, pods, false)
}

func benchAggregate(b *testing.B, scope func(netip.Addr) bool, pods []PodInfo, check bool) {
	batches := loadBenchDump(b)
	var top []protocol.TopIP
	b.ReportAllocs()
	stop := peakHeap(b)
	b.ResetTimer()
	for b.Loop() {
		counts, err := aggregateConntrack(conntrackMessages(batchSeq(batches), testSeq), scope)
		if err != nil {
			b.Fatal(err)
		}
		top = topIPs(counts, DefaultTop, pods)
	}
	stop()
	if check {
		checkBenchTop(b, top)
	}
}

func BenchmarkConntrackDumpFlows262144(b *testing.B) {
	batches := loadBenchDump(b)
	scope, pods := benchScope(b)
	var top []protocol.TopIP
	b.ReportAllocs()
	stop := peakHeap(b)
	b.ResetTimer()
	for b.Loop() {
		// netlink.Conn.Receive: a fresh buffer per recvmsg, split into
		// messages, all kept until NLMSG_DONE.
		var msgs []netlink.Message
		for _, batch := range batches {
			buf := append([]byte(nil), batch...)
			raw, err := syscall.ParseNetlinkMessage(buf)
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range raw {
				if m.Header.Type == nlmsgDone {
					continue
				}
				msgs = append(msgs, netlink.Message{
					Header: netlink.Header{Length: m.Header.Len, Type: netlink.HeaderType(m.Header.Type), Flags: netlink.HeaderFlags(m.Header.Flags), Sequence: m.Header.Seq, PID: m.Header.Pid},
					Data:   m.Data,
				})
			}
		}
		// conntrack.Conn.Dump: every message into a Flow.
		flows := make([]conntrack.Flow, 0, len(msgs))
		for _, m := range msgs {
			var ev conntrack.Event
			if err := ev.Unmarshal(m); err != nil {
				b.Fatal(err)
			}
			flows = append(flows, *ev.Flow)
		}
		// The old dumpConntrack, then counting.
		addrs := make([]flowAddrs, 0, len(flows))
		for _, f := range flows {
			addrs = append(addrs, flowAddrs{
				f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress,
				f.TupleReply.IP.SourceAddress, f.TupleReply.IP.DestinationAddress,
			})
		}
		top = topIPs(countFlows(addrs, scope), DefaultTop, pods)
	}
	stop()
	checkBenchTop(b, top)
}

// benchWant is the top list computed from the entries themselves, not
// from their encoding.
var benchWant = sync.OnceValue(func() []protocol.TopIP {
	scope, pods := benchScope(nil)
	a := netip.MustParseAddr
	c := newIPCounter(scope)
	for i := range benchEntries {
		e := benchEntry(i)
		c.addEntry([]netip.Addr{a(e.origSrc), a(e.origDst), a(e.replySrc), a(e.replyDst)})
	}
	return topIPs(c.counts, DefaultTop, pods)
})

// checkBenchTop checks the answer, so that both benchmarks are known to
// count what is in the dump.
func checkBenchTop(b *testing.B, top []protocol.TopIP) {
	b.Helper()
	if d := cmp.Diff(benchWant(), top); d != "" {
		b.Errorf("top (-want +got):\n%s", d)
	}
	if top[0].Pod == "" {
		b.Errorf("the busiest address is not a pod: %+v", top)
	}
}
