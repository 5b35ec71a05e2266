//go:build linux

package checks

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"net/netip"
	"syscall"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// conntrackRecvBuf is the receive buffer: the kernel fills each dump
// batch up to the reader's buffer size, at most 32 KiB.
const conntrackRecvBuf = 32 << 10

// countConntrack dumps the conntrack table of the node's network namespace
// and counts its entries per address in scope, batch by batch.
func (e *env) countConntrack(scope func(netip.Addr) bool) (map[netip.Addr]uint32, error) {
	return countConntrackIn(int(e.net.hostNS), scope)
}

// countConntrackIn is countConntrack in the network namespace open as ns
// (0: the calling thread's). An interrupted dump is repeated.
func countConntrackIn(ns int, scope func(netip.Addr) bool) (map[netip.Addr]uint32, error) {
	var err error
	for range 5 {
		var counts map[netip.Addr]uint32
		counts, err = countConntrackOnce(ns, scope)
		if !errors.Is(err, errDumpInterrupted) {
			return counts, err
		}
	}
	return nil, fmt.Errorf("conntrack dump: %w", err)
}

func countConntrackOnce(ns int, scope func(netip.Addr) bool) (map[netip.Addr]uint32, error) {
	c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: ns})
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	defer c.Close()
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: ipctnlMsgCtGet,
		Family:      netfilter.ProtoUnspec, // both IPv4 and IPv6
		Flags:       mdnetlink.Request | mdnetlink.Dump,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack dump request: %w", err)
	}
	sent, err := c.Send(req)
	if err != nil {
		return nil, fmt.Errorf("conntrack dump: %w", err)
	}
	// Conn.Receive would gather the whole multi-part answer before
	// returning it; read the socket batch by batch instead.
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	counts, err := aggregateConntrack(conntrackMessages(recvBatches(raw, conntrackRecvBuf), sent.Header.Sequence), scope)
	if err != nil {
		if errors.Is(err, errDumpInterrupted) {
			return nil, err
		}
		return nil, fmt.Errorf("conntrack dump: %w", err)
	}
	return counts, nil
}

// recvBatches yields what each recvmsg on raw returns, in one buffer that
// is reused (grown if a datagram does not fit): a batch is only valid until
// the next is asked for.
func recvBatches(raw syscall.RawConn, size int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		buf := make([]byte, size)
		for {
			var n int
			var rerr error
			err := raw.Read(func(fd uintptr) bool {
				// Peek at the datagram's full length first, so that
				// nothing is cut off.
				n, rerr = recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_TRUNC)
				if rerr == unix.EAGAIN {
					return false // wait until readable
				}
				if rerr != nil {
					return true
				}
				if n > len(buf) {
					buf = make([]byte, n)
				}
				n, rerr = recvfrom(fd, buf, 0)
				return true
			})
			if err == nil {
				err = rerr
			}
			if err == nil && n == 0 {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				yield(nil, fmt.Errorf("receiving: %w", err))
				return
			}
			if !yield(buf[:n], nil) {
				return
			}
		}
	}
}

func recvfrom(fd uintptr, buf []byte, flags int) (int, error) {
	for {
		n, _, err := unix.Recvfrom(int(fd), buf, flags)
		if err != unix.EINTR {
			return n, err
		}
	}
}
