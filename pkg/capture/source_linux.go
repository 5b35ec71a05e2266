package capture

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netns"
	"golang.org/x/net/bpf"
)

// pollTimeout bounds how long a read waits, so stop conditions are checked
// at least this often.
const pollTimeout = 100 * time.Millisecond

// ringBytes is the total size of the TPACKET_V3 ring.
const ringBytes = 8 << 20

// ringGeometry sizes the TPACKET_V3 ring for a snaplen: a block must hold at
// least one packet of snaplen bytes plus its headers, blocks are a power of
// two between 1 MiB and 4 MiB (the kernel allocates each block as one
// piece), and the ring is about 8 MiB. Each block handed over costs the
// helper a wake-up (and the Go runtime's sysmon one more), so blocks are
// large: 1 MiB holds about 5,000 small packets (a 64-byte UDP datagram
// takes 192 bytes of ring). A block that is not full is handed over after
// retireTimeout anyway.
func ringGeometry(snaplen int) (frameSize, blockSize, numBlocks int) {
	frameSize = 4096
	blockSize = 1 << 20
	for blockSize < snaplen+4096 && blockSize < 4<<20 {
		blockSize <<= 1
	}
	numBlocks = ringBytes / blockSize
	if numBlocks < 4 {
		numBlocks = 4
	}
	return frameSize, blockSize, numBlocks
}

// Open looks up the interface, compiles the filter, opens the AF_PACKET
// socket (inside cfg.Netns when set) and attaches the filter. Packets read
// from the returned source all passed the filter: the socket is bound to the
// interface (and receives packets) only once the filter is attached.
func Open(cfg Config) (PacketSource, Source, error) {
	if cfg.Netns == "" {
		return openHere(cfg)
	}
	type result struct {
		src  PacketSource
		info Source
		err  error
	}
	done := make(chan result, 1)
	// A goroutine of its own: if the thread cannot return to its namespace,
	// it stays locked and the runtime discards it when the goroutine ends.
	go func() {
		var r result
		r.err = inNetns(cfg.Netns, func() error {
			var err error
			r.src, r.info, err = openHere(cfg)
			return err
		})
		done <- r
	}()
	r := <-done
	if r.err != nil && r.src != nil {
		r.src.Close()
		r.src = nil
	}
	return r.src, r.info, r.err
}

// inNetns runs fn on a locked OS thread inside the network namespace at
// path. Sockets created by fn stay in that namespace.
func inNetns(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace --netns %s: %w", path, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get the current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("enter network namespace --netns %s: %w (the helper needs CAP_SYS_ADMIN for --netns)", path, err)
		}
		return fmt.Errorf("enter network namespace --netns %s: %w", path, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it is in the wrong namespace.
		if ferr == nil {
			ferr = fmt.Errorf("return from network namespace %s: %w", path, err)
		}
		return ferr
	}
	runtime.UnlockOSThread()
	return ferr
}

func openHere(cfg Config) (PacketSource, Source, error) {
	ifi, err := lookupInterface(cfg.Interface)
	if err != nil {
		return nil, Source{}, err
	}
	info := Source{Interface: ifi.Name, LinkType: linkTypeOf(ifi)}
	prog, err := CompileFilter(info.LinkType, cfg.Snaplen, cfg.Filter)
	if err != nil {
		return nil, Source{}, err
	}
	if ifi.Flags&net.FlagLoopback != 0 {
		// On loopback every packet passes the socket twice, outgoing and
		// incoming; keep the incoming copy only, as libpcap does.
		prog = append(skipOutgoing(), prog...)
	}
	r, err := openRing(ifi, prog, cfg.Snaplen)
	if err != nil {
		return nil, Source{}, err
	}
	return r, info, nil
}

// skipOutgoing is a program prefix that refuses packets the host sends
// (packet type PACKET_OUTGOING) and goes on with the next instruction for the
// others. Jumps in BPF are relative and only forward, so the program that
// follows is unchanged.
func skipOutgoing() []bpf.RawInstruction {
	const (
		ldAbsW         = 0x20       // BPF_LD | BPF_W | BPF_ABS
		jeqK           = 0x15       // BPF_JMP | BPF_JEQ | BPF_K
		retK           = 0x06       // BPF_RET | BPF_K
		adPktType      = 0xfffff004 // SKF_AD_OFF + SKF_AD_PKTTYPE
		packetOutgoing = 4
	)
	return []bpf.RawInstruction{
		{Op: ldAbsW, K: adPktType},
		{Op: jeqK, Jt: 0, Jf: 1, K: packetOutgoing},
		{Op: retK, K: 0},
	}
}

// lookupInterface finds the interface, or says which ones exist.
func lookupInterface(name string) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	names := make([]string, 0, len(ifs))
	for i := range ifs {
		if ifs[i].Name == name {
			return &ifs[i], nil
		}
		names = append(names, ifs[i].Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("interface %q not found; available: %s", name, strings.Join(names, ", "))
}

// linkTypeOf is the link type of the frames an AF_PACKET SOCK_RAW socket
// sees on the interface: Ethernet headers for Ethernet-like devices and
// loopback, bare IP for devices without a link-layer address (tun,
// WireGuard, IP-in-IP).
func linkTypeOf(ifi *net.Interface) layers.LinkType {
	if ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) == 6 {
		return layers.LinkTypeEthernet
	}
	return layers.LinkTypeRaw
}
