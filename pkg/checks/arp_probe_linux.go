package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rawProber sends neighbour probes on AF_PACKET sockets opened in the
// node's network namespace: one socket per address family, bound to every
// interface, each request sent out of its probe's interface. It needs
// CAP_NET_RAW and writes nothing but the requests.
type rawProber struct {
	ns netns.NsHandle
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Classic BPF programs keeping only ARP replies and ICMPv6 neighbour
// advertisements (without extension headers) out of what the sockets see.
var (
	arpReplyFilter = []unix.SockFilter{
		{Code: 0x28, K: 12},                         // ldh [12]: EtherType
		{Code: 0x15, Jt: 0, Jf: 3, K: etherTypeARP}, // jeq ARP
		{Code: 0x28, K: ethHeaderLen + 6},           // ldh [20]: ARP op
		{Code: 0x15, Jt: 0, Jf: 1, K: arpReply},     // jeq reply
		{Code: 0x06, K: 0x40000},                    // accept
		{Code: 0x06, K: 0},                          // drop
	}
	neighAdvertFilter = []unix.SockFilter{
		{Code: 0x28, K: 12},                              // ldh [12]: EtherType
		{Code: 0x15, Jt: 0, Jf: 5, K: etherTypeIPv6},     // jeq IPv6
		{Code: 0x30, K: ethHeaderLen + 6},                // ldb [20]: next header
		{Code: 0x15, Jt: 0, Jf: 3, K: 58},                // jeq ICMPv6
		{Code: 0x30, K: ethHeaderLen + ipv6HeaderLen},    // ldb [54]: ICMPv6 type
		{Code: 0x15, Jt: 0, Jf: 1, K: icmpv6NeighAdvert}, // jeq advertisement
		{Code: 0x06, K: 0x40000},                         // accept
		{Code: 0x06, K: 0},                               // drop
	}
)

// openPacketSocket opens an AF_PACKET socket in ns receiving proto on every
// interface through filter. It is created with protocol 0 (receiving
// nothing) and bound only once the filter is attached, so nothing else
// slips in.
func openPacketSocket(ns netns.NsHandle, proto uint16, filter []unix.SockFilter) (int, error) {
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{-1, err}
			return
		}
		defer cur.Close()
		switched := false
		if ns.IsOpen() && !ns.Equal(cur) {
			if err := netns.Set(ns); err != nil {
				runtime.UnlockOSThread()
				ch <- res{-1, fmt.Errorf("entering the node's network namespace: %w", err)}
				return
			}
			switched = true
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		// A thread that cannot switch back stays locked: Go discards it
		// when this goroutine ends instead of reusing it in the wrong
		// namespace.
		if !switched || netns.Set(cur) == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		return -1, fmt.Errorf("opening a packet socket (needs CAP_NET_RAW): %w", r.err)
	}
	fd := r.fd
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("attaching the packet filter: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding the packet socket: %w", err)
	}
	return fd, nil
}

// Probe implements neighProber.
func (p rawProber) Probe(ctx context.Context, probes []neighProbe, wait time.Duration) []probeResult {
	c := newProbeCollector(probes)
	type sock struct {
		fd    int
		v6    bool
		parse func([]byte) (net.IP, net.HardwareAddr, bool)
	}
	var socks []sock
	for _, v6 := range []bool{false, true} {
		var idx []int
		for i, pr := range probes {
			if pr.v6() == v6 {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		proto, filter := uint16(etherTypeARP), arpReplyFilter
		if v6 {
			proto, filter = etherTypeIPv6, neighAdvertFilter
		}
		fd, err := openPacketSocket(p.ns, proto, filter)
		if err != nil {
			for _, i := range idx {
				c.sent(i, time.Time{}, err)
			}
			continue
		}
		defer unix.Close(fd)
		s := sock{fd: fd, v6: v6, parse: parseARPReply}
		if v6 {
			s.parse = parseNeighAdvert
		}
		socks = append(socks, s)
		// One request per interface and target, however many pods share
		// it.
		sentKey := map[probeKey]int{}
		for _, i := range idx {
			pr := probes[i]
			k := probeKey{pr.Ifindex, pr.Target.String()}
			if j, ok := sentKey[k]; ok {
				c.sent(i, c.sentAt[j], c.results[j].Err)
				continue
			}
			sentKey[k] = i
			var frame []byte
			if v6 {
				frame, err = neighSolicitFrame(pr.SrcMAC, pr.SrcIP, pr.Target)
			} else {
				frame, err = arpRequestFrame(pr.SrcMAC, pr.SrcIP, pr.Target)
			}
			if err == nil {
				to := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: pr.Ifindex, Halen: 6}
				copy(to.Addr[:], frame[0:6])
				err = unix.Sendto(fd, frame, 0, to)
			}
			c.sent(i, time.Now(), err)
		}
	}

	start := time.Now()
	deadline := start.Add(wait)
	var settleAt time.Time
	buf := make([]byte, 1600)
	fds := make([]unix.PollFd, len(socks))
	for {
		now := time.Now()
		if c.done() {
			if settleAt.IsZero() {
				settleAt = now.Add(arpSettle)
			}
			if !now.Before(settleAt) {
				break
			}
		}
		if !now.Before(deadline) || ctx.Err() != nil || len(socks) == 0 {
			break
		}
		until := deadline
		if !settleAt.IsZero() && settleAt.Before(until) {
			until = settleAt
		}
		ms := int((until.Sub(now) + time.Millisecond - 1) / time.Millisecond)
		if ms > 100 {
			ms = 100 // look at ctx now and then
		}
		for i, s := range socks {
			fds[i] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
		}
		if _, err := unix.Poll(fds, ms); err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		for i, s := range socks {
			if fds[i].Revents&unix.POLLIN == 0 {
				continue
			}
			for {
				n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
				if err != nil {
					break
				}
				at := time.Now()
				ll, ok := from.(*unix.SockaddrLinklayer)
				if !ok || ll.Pkttype == unix.PACKET_OUTGOING || ll.Hatype != unix.ARPHRD_ETHER {
					continue
				}
				ip, mac, ok := s.parse(buf[:n])
				if !ok {
					continue
				}
				c.reply(ll.Ifindex, ip, mac, at)
			}
		}
	}
	return c.finish(time.Now())
}
