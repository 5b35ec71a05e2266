package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// retireTimeout is the ring's tp_retire_blk_tov: the kernel hands over a
// block that is not full at the latest this long after it opened it, so a
// trickle of packets reaches the engine (and, since the engine flushes
// before it waits, the reader) within about this long, well inside
// FlushInterval.
const retireTimeout = 50 * time.Millisecond

// ring is an AF_PACKET socket with a TPACKET_V3 receive ring mapped into
// memory. The engine walks its blocks in place (blockSource).
//
// It waits for blocks in Go's network poller (the socket is non-blocking
// and registered with epoll through an os.File), not in a poll(2) call of
// its own: a goroutine blocked in a raw syscall keeps the runtime's sysmon
// thread waking every 20µs to hand its P away, which at a block every few
// milliseconds cost more CPU than the packets themselves.
type ring struct {
	fd        int
	file      *os.File
	raw       syscall.RawConn
	mem       []byte
	blockSize int
	numBlocks int
	cur       int  // the block to read next
	held      bool // cur was handed out by nextBlock and not released
	drops     uint64
	// waitReady is the RawConn.Read callback: true once block cur is ours
	// or the socket has failed (waitErr). woken is false on its first
	// call of a wait, true on the calls after the poller woke it.
	waitReady func(uintptr) bool
	woken     bool
	waitErr   error
	// ReadPacket's position: the packets left in the held block.
	left, off uint32
}

// openRing opens the packet socket for ifi with the filter attached and the
// ring mapped, then binds it to the interface. Until it is bound (protocol
// 0 at creation) the socket receives nothing, so every packet in the ring
// went through the filter.
func openRing(ifi *net.Interface, prog []bpf.RawInstruction, snaplen int) (r *ring, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("open a packet socket on %s: %w (the helper needs CAP_NET_RAW)", ifi.Name, err)
		}
		return nil, fmt.Errorf("open a packet socket on %s: %w", ifi.Name, err)
	}
	// A non-blocking descriptor: os.NewFile registers it with the poller.
	r = &ring{fd: fd, file: os.NewFile(uintptr(fd), "packet socket on "+ifi.Name)}
	r.waitReady = r.checkReady
	if r.raw, err = r.file.SyscallConn(); err != nil {
		r.Close()
		return nil, fmt.Errorf("open a packet socket on %s: %w", ifi.Name, err)
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := attachFilter(fd, prog); err != nil {
		return nil, fmt.Errorf("attach the filter to the socket on %s: %w", ifi.Name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set up the packet ring on %s: TPACKET_V3: %w", ifi.Name, err)
	}
	frameSize, blockSize, numBlocks := ringGeometry(snaplen)
	req := unix.TpacketReq3{
		Block_size:     uint32(blockSize),
		Block_nr:       uint32(numBlocks),
		Frame_size:     uint32(frameSize),
		Frame_nr:       uint32(blockSize / frameSize * numBlocks),
		Retire_blk_tov: uint32(retireTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set up the packet ring on %s (%d blocks of %d bytes): %w", ifi.Name, numBlocks, blockSize, err)
	}
	mem, err := unix.Mmap(fd, 0, blockSize*numBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the packet ring on %s: %w", ifi.Name, err)
	}
	r.mem, r.blockSize, r.numBlocks = mem, blockSize, numBlocks
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind the packet socket to %s: %w", ifi.Name, err)
	}
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// attachFilter attaches the classic BPF program with SO_ATTACH_FILTER.
func attachFilter(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return errors.New("empty filter program")
	}
	insns := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		insns[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]})
}

// blockStatus is the block_status word of block i, shared with the kernel.
func (r *ring) blockStatus(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*r.blockSize+bdBlockStatus]))
}

// ready says whether block cur is the reader's.
func (r *ring) ready() bool {
	return atomic.LoadUint32(r.blockStatus(r.cur))&tpStatusUser != 0
}

func (r *ring) checkReady(uintptr) bool {
	if r.ready() {
		return true
	}
	if r.woken {
		// Woken without a block: a socket error (the interface went
		// away) wakes the poller too.
		if errno, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && errno != 0 {
			if syscall.Errno(errno) == unix.ENETDOWN {
				r.waitErr = fmt.Errorf("the interface went down or away: %w", syscall.Errno(errno))
			} else {
				r.waitErr = fmt.Errorf("the packet socket failed: %w", syscall.Errno(errno))
			}
			return true
		}
	}
	r.woken = true
	return false
}

func (r *ring) nextBlock(wait bool) ([]byte, error) {
	if r.mem == nil {
		return nil, errors.New("the packet ring is closed")
	}
	if r.held {
		r.releaseBlock()
	}
	if !r.ready() {
		if !wait {
			return nil, ErrTimeout
		}
		// The kernel wakes the poller each time it hands over a block.
		if err := r.file.SetReadDeadline(time.Now().Add(pollTimeout)); err != nil {
			return nil, fmt.Errorf("wait for packets: %w", err)
		}
		r.woken, r.waitErr = false, nil
		err := r.raw.Read(r.waitReady)
		switch {
		case r.waitErr != nil:
			return nil, r.waitErr
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, ErrTimeout
		case err != nil:
			return nil, fmt.Errorf("wait for packets: %w", err)
		case !r.ready():
			return nil, ErrTimeout
		}
	}
	r.held = true
	off := r.cur * r.blockSize
	return r.mem[off : off+r.blockSize : off+r.blockSize], nil
}

func (r *ring) releaseBlock() {
	if !r.held {
		return
	}
	atomic.StoreUint32(r.blockStatus(r.cur), tpStatusKernel)
	r.held = false
	r.left = 0
	r.cur++
	if r.cur == r.numBlocks {
		r.cur = 0
	}
}

// ReadPacket returns the packets of the ring one by one (the engine walks
// whole blocks instead; this is for other readers of a PacketSource).
func (r *ring) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	for r.left == 0 {
		blk, err := r.nextBlock(true) // releases the block it finished
		if err != nil {
			return nil, gopacket.CaptureInfo{}, err
		}
		n, first, err := blockPackets(blk)
		if err != nil {
			return nil, gopacket.CaptureInfo{}, err
		}
		r.left, r.off = n, first
	}
	off := r.cur * r.blockSize
	p, err := packetAt(r.mem[off:off+r.blockSize], r.off)
	if err != nil {
		r.left = 0
		return nil, gopacket.CaptureInfo{}, err
	}
	r.left--
	r.off += p.next
	return p.data, gopacket.CaptureInfo{
		Timestamp:     time.Unix(int64(p.sec), int64(p.nsec)),
		CaptureLength: len(p.data),
		Length:        p.origLen,
	}, nil
}

// KernelDrops reads PACKET_STATISTICS, which counts packets the kernel had
// no room for in the ring since the previous read.
func (r *ring) KernelDrops() uint64 {
	if r.fd >= 0 {
		if st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			r.drops += uint64(st.Drops)
		}
	}
	return r.drops
}

func (r *ring) Close() error {
	var err error
	if r.mem != nil {
		err = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.file != nil {
		if cerr := r.file.Close(); err == nil {
			err = cerr
		}
		r.file, r.fd = nil, -1
	}
	return err
}
