//go:build integration

package capture

// Kernel integration tests: the built helper binary (NETDIAG_HELPER, set by
// hack/test-helper.sh) captures on a veth between two fresh network
// namespaces. Needs root.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

const (
	addrA = "198.51.100.1"
	addrB = "198.51.100.2"
)

// vethPair is two named network namespaces joined by a veth: nd0 in A
// (198.51.100.1/24), nd1 in B (198.51.100.2/24).
type vethPair struct {
	nameA, nameB string
	a, b         netns.NsHandle
}

func helperBinary(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and packet sockets")
	}
	bin := os.Getenv("NETDIAG_HELPER")
	if bin == "" {
		t.Skip("NETDIAG_HELPER is not set; run hack/test-helper.sh, which builds the helper and sets it")
	}
	return bin
}

func newVethPair(t testing.TB) *vethPair {
	t.Helper()
	sfx := make([]byte, 3)
	rand.Read(sfx)
	p := &vethPair{nameA: "ndt-a-" + hex.EncodeToString(sfx), nameB: "ndt-b-" + hex.EncodeToString(sfx)}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	defer netns.Set(orig)
	for _, x := range []struct {
		name string
		h    *netns.NsHandle
	}{{p.nameA, &p.a}, {p.nameB, &p.b}} {
		h, err := netns.NewNamed(x.name) // also enters it
		if err != nil {
			t.Fatalf("create netns %s: %v", x.name, err)
		}
		*x.h = h
		name := x.name
		t.Cleanup(func() { h.Close(); netns.DeleteNamed(name) })
		if err := netns.Set(orig); err != nil {
			t.Fatal(err)
		}
	}

	ha, err := netlink.NewHandleAt(p.a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(p.b)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nd0"}, PeerName: "nd1"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	peer, err := ha.LinkByName("nd1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.LinkSetNsFd(peer, int(p.b)); err != nil {
		t.Fatalf("move nd1 to %s: %v", p.nameB, err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		link string
		addr string
	}{{ha, "nd0", addrA}, {hb, "nd1", addrB}} {
		l, err := x.h.LinkByName(x.link)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(x.addr + "/24")
		if err := x.h.AddrAdd(l, a); err != nil {
			t.Fatalf("address %s on %s: %v", x.addr, x.link, err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		lo, err := x.h.LinkByName("lo")
		if err == nil {
			x.h.LinkSetUp(lo)
		}
	}
	// Static neighbour entries (no ARP) and both ends up with carrier, so
	// datagrams leave at once instead of waiting for resolution.
	l0, _ := ha.LinkByName("nd0")
	l1, _ := hb.LinkByName("nd1")
	for _, x := range []struct {
		h         *netlink.Handle
		link, mac netlink.Link
		ip        string
	}{{ha, l0, l1, addrB}, {hb, l1, l0, addrA}} {
		if err := x.h.NeighAdd(&netlink.Neigh{
			LinkIndex: x.link.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: net.ParseIP(x.ip), HardwareAddr: x.mac.Attrs().HardwareAddr,
		}); err != nil {
			t.Fatalf("neighbour %s: %v", x.ip, err)
		}
	}
	// Listeners in B, so datagrams draw no ICMP port-unreachable (which
	// would fail the next write on the connected sender).
	for _, port := range []int{40001, 40002} {
		var c *net.UDPConn
		in(t, p.b, func() { c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addrB), Port: port}) })
		if err != nil {
			t.Fatalf("listen on %s:%d: %v", addrB, port, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, errA := ha.LinkByName("nd0")
		b, errB := hb.LinkByName("nd1")
		if errA == nil && errB == nil && a.Attrs().OperState == netlink.OperUp && b.Attrs().OperState == netlink.OperUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("veth never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// in runs fn on a locked OS thread inside ns; sockets made by fn stay there.
func in(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

func (p *vethPair) udpFromA(t testing.TB, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	var err error
	in(t, p.a, func() {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(addrB), Port: port})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t testing.TB, c *net.UDPConn, payload string) {
	t.Helper()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatalf("send %q: %v", payload, err)
	}
}

func (p *vethPair) pingFromA(t testing.TB, n int) {
	t.Helper()
	var c *icmp.PacketConn
	var err error
	in(t, p.a, func() { c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 7, Seq: i, Data: []byte("netdiag")}}
		b, _ := m.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(addrB)}); err != nil {
			t.Fatal(err)
		}
	}
}

// helperRun is a running `netdiag-helper capture`.
type helperRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	lines  chan string
	mu     sync.Mutex
	stderr []string
	done   chan struct{}
}

func startHelper(t testing.TB, args ...string) *helperRun {
	t.Helper()
	return startHelperTo(t, nil, args...)
}

// startHelperTo starts a capture whose stdout goes to out (a file, so the
// helper writes to it directly), or into h.stdout when out is nil.
func startHelperTo(t testing.TB, out *os.File, args ...string) *helperRun {
	t.Helper()
	h := &helperRun{lines: make(chan string, 100), done: make(chan struct{})}
	h.cmd = exec.Command(helperBinary(t), append([]string{"capture"}, args...)...)
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Stdout = &h.stdout
	if out != nil {
		h.cmd.Stdout = out
	}
	errPipe, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cmd.Process.Kill(); <-h.done })
	go func() {
		defer close(h.done)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			h.mu.Lock()
			h.stderr = append(h.stderr, sc.Text())
			h.mu.Unlock()
			select {
			case h.lines <- sc.Text():
			default:
			}
		}
	}()
	return h
}

func (h *helperRun) waitReady(t testing.TB) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-h.lines:
			if strings.Contains(l, `"type":"ready"`) {
				return
			}
			if strings.Contains(l, `"type":"error"`) {
				t.Fatalf("helper failed: %s", l)
			}
		case <-timeout:
			t.Fatalf("no ready line within 10s; stderr: %v", h.stderrLines())
		}
	}
}

func (h *helperRun) stderrLines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.stderr...)
}

// wait waits for the helper to exit and returns its stats line.
func (h *helperRun) wait(t testing.TB, within time.Duration) (protocol.Stats, error) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { <-h.done; exited <- h.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(within):
		t.Fatalf("helper still running after %v; stderr: %v", within, h.stderrLines())
	}
	lines := h.stderrLines()
	if len(lines) == 0 {
		t.Fatalf("helper wrote nothing on stderr")
	}
	if !strings.Contains(lines[0], `"type":"hello"`) {
		t.Errorf("first stderr line is not hello: %s", lines[0])
	}
	var s protocol.Stats
	last := lines[len(lines)-1]
	if json.Unmarshal([]byte(last), &s) != nil || s.Type != protocol.TypeStats {
		t.Fatalf("last stderr line is not stats: %s (all: %v)", last, lines)
	}
	t.Logf("stats: %s", last)
	return s, err
}

type udpPacket struct {
	dst     uint16
	payload string
}

// readUDP reads a pcap or pcapng file and returns its packets as UDP.
func readUDP(t testing.TB, b []byte, ng bool) []udpPacket {
	t.Helper()
	var src gopacket.PacketDataSource
	if ng {
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("not a readable pcapng file: %v", err)
		}
		src = r
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not a readable pcap file: %v", err)
		}
		src = r
	}
	var out []udpPacket
	for {
		data, _, err := src.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("packet %d: %v", len(out), err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			t.Errorf("packet %d is not UDP: %v", len(out), pkt)
			out = append(out, udpPacket{})
			continue
		}
		out = append(out, udpPacket{dst: uint16(udp.DstPort), payload: string(udp.Payload)})
	}
}

// TestCaptureFilterAndSignal: the filter keeps exactly the UDP 40001
// datagrams, in order, even with other traffic flooding the interface while
// the socket is set up (the pre-filter race); SIGINT leaves a complete
// pcapng file and a stats line with reason signal.
func TestCaptureFilterAndSignal(t *testing.T) {
	helperBinary(t)
	p := newVethPair(t)
	want := p.udpFromA(t, 40001)
	other := p.udpFromA(t, 40002)
	other.Write([]byte("warm-up")) // resolves ARP before the capture

	// Flood the other port while the helper opens its socket: packets that
	// reach the ring before the filter is attached must not be written.
	var stopFlood atomic.Bool
	flooded := make(chan int)
	go func() {
		n := 0
		for !stopFlood.Load() {
			other.Write([]byte("flood"))
			n++
			if n%50 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		flooded <- n
	}()
	time.Sleep(50 * time.Millisecond)
	h := startHelper(t, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "-f", "udp port 40001", "--format", "pcapng")
	h.waitReady(t)
	stopFlood.Store(true)
	t.Logf("flooded %d datagrams to port 40002 while the helper started", <-flooded)

	const n = 50
	for i := 0; i < n; i++ {
		send(t, want, fmt.Sprintf("payload-%03d", i))
		if i < 30 {
			send(t, other, fmt.Sprintf("other-%03d", i))
		}
	}
	p.pingFromA(t, 5)
	time.Sleep(500 * time.Millisecond)
	h.cmd.Process.Signal(syscall.SIGINT)
	s, err := h.wait(t, 5*time.Second)
	if err != nil {
		t.Errorf("helper exit: %v", err)
	}
	if s.Reason != ReasonSignal || s.Packets != n || s.Interface != "nd1" {
		t.Errorf("stats %+v, want reason signal, %d packets on nd1", s, n)
	}
	t.Logf("packets dropped because they came before the filter: %d", s.PreFilterDropped)

	got := readUDP(t, h.stdout.Bytes(), true)
	if len(got) != n {
		t.Fatalf("file holds %d packets, want %d: %v", len(got), n, got)
	}
	for i, g := range got {
		if g.dst != 40001 || g.payload != fmt.Sprintf("payload-%03d", i) {
			t.Errorf("packet %d: port %d payload %q, want port 40001 payload-%03d", i, g.dst, g.payload, i)
		}
	}
}

// TestCaptureCountPcap: -c stops by itself; plain pcap output.
func TestCaptureCountPcap(t *testing.T) {
	p := newVethPair(t)
	c := p.udpFromA(t, 40001)
	c.Write([]byte("warm-up"))
	time.Sleep(100 * time.Millisecond)
	h := startHelper(t, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "-f", "udp and dst port 40001", "-c", "10", "-s", "50")
	h.waitReady(t)
	for i := 0; i < 30; i++ {
		send(t, c, fmt.Sprintf("count-%03d-%s", i, strings.Repeat("x", 100)))
	}
	s, err := h.wait(t, 5*time.Second)
	if err != nil || s.Reason != ReasonCount || s.Packets != 10 {
		t.Fatalf("stats %+v err %v, want count 10", s, err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(h.stdout.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 50 || ci.Length != 14+20+8+len("count-000-")+100 {
			t.Errorf("packet %d: %d of %d bytes, want 50 of %d (snaplen)", n, len(data), ci.Length, 14+20+8+110)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("file holds %d packets, want 10", n)
	}
}

// TestCaptureHeartbeat: stdin held open without bytes stops the capture
// after --heartbeat; EOF on stdin stops it at once.
func TestCaptureHeartbeat(t *testing.T) {
	p := newVethPair(t)
	h := startHelper(t, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "--heartbeat", "1s")
	h.waitReady(t)
	start := time.Now()
	s, err := h.wait(t, 3*time.Second)
	if err != nil || s.Reason != ReasonHeartbeat {
		t.Fatalf("stats %+v err %v, want heartbeat", s, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("heartbeat stop took %v, want about 1s", d)
	}

	h = startHelper(t, "--netns", "/run/netns/"+p.nameB, "-i", "nd1")
	h.waitReady(t)
	h.stdin.Close()
	s, err = h.wait(t, 2*time.Second)
	if err != nil || s.Reason != ReasonStdinEOF {
		t.Fatalf("stats %+v err %v, want stdin-eof", s, err)
	}
	if _, err := pcapgo.NewReader(bytes.NewReader(h.stdout.Bytes())); err != nil {
		t.Fatalf("output is not a pcap file: %v", err)
	}
}

// TestCaptureProcNetns: --netns /proc/PID/ns/net of a process in the
// namespace.
func TestCaptureProcNetns(t *testing.T) {
	p := newVethPair(t)
	sleeper := exec.Command("ip", "netns", "exec", p.nameB, "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Skipf("cannot start a process in the namespace with ip netns exec: %v", err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	// ip netns exec execs sleep in place: same PID.
	path := fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid)
	deadline := time.Now().Add(2 * time.Second)
	var want syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+p.nameB, &want); err != nil {
		t.Fatal(err)
	}
	for {
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never entered %s", path, p.nameB)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := p.udpFromA(t, 40001)
	c.Write([]byte("warm-up"))
	time.Sleep(100 * time.Millisecond)
	h := startHelper(t, "--netns", path, "-i", "nd1", "-f", "udp port 40001", "-c", "5")
	h.waitReady(t)
	for i := 0; i < 5; i++ {
		send(t, c, fmt.Sprintf("proc-%d", i))
	}
	s, err := h.wait(t, 5*time.Second)
	if err != nil || s.Reason != ReasonCount || s.Packets != 5 {
		t.Fatalf("stats %+v err %v, want count 5", s, err)
	}
	got := readUDP(t, h.stdout.Bytes(), false)
	for i, g := range got {
		if g.payload != fmt.Sprintf("proc-%d", i) {
			t.Errorf("packet %d payload %q", i, g.payload)
		}
	}
}

// TestCaptureSetupErrors: a missing interface and an invalid filter fail
// before any capture output, with an error line.
func TestCaptureSetupErrors(t *testing.T) {
	p := newVethPair(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-i", "eth9"}, `interface \"eth9\" not found; available: lo, nd1`},
		{[]string{"-i", "nd1", "-f", "tcp port"}, `invalid filter \"tcp port\": can't parse filter expression: syntax error`},
	} {
		h := startHelper(t, append([]string{"--netns", "/run/netns/" + p.nameB}, tt.args...)...)
		exited := make(chan error, 1)
		go func() { <-h.done; exited <- h.cmd.Wait() }()
		var err error
		select {
		case err = <-exited:
		case <-time.After(5 * time.Second):
			t.Fatal("helper did not exit")
		}
		if err == nil {
			t.Errorf("%v: exit 0, want non-zero", tt.args)
		}
		if h.stdout.Len() != 0 {
			t.Errorf("%v: wrote %d bytes of capture output", tt.args, h.stdout.Len())
		}
		lines := h.stderrLines()
		last := lines[len(lines)-1]
		if !strings.Contains(last, `"type":"error"`) || !strings.Contains(last, tt.want) {
			t.Errorf("%v: last stderr line %s, want an error with %s", tt.args, last, tt.want)
		}
	}
}

// TestCaptureTrickleLatency: a live reader sees each packet of a trickle
// promptly: the ring hands over a block that is not full after
// retireTimeout and the engine flushes before it waits, so each packet
// reaches stdout well within FlushInterval of being sent.
func TestCaptureTrickleLatency(t *testing.T) {
	helperBinary(t)
	p := newVethPair(t)
	c := p.udpFromA(t, 40001)
	c.Write([]byte("warm-up"))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := startHelperTo(t, w, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "-f", "udp port 40001")
	w.Close() // the helper holds its own copy
	h.waitReady(t)

	const n = 8
	var mu sync.Mutex
	seen := make(map[int]time.Time)
	go func() {
		var stream []byte
		buf := make([]byte, 64<<10)
		for {
			k, err := r.Read(buf)
			now := time.Now()
			stream = append(stream, buf[:k]...)
			mu.Lock()
			for i := 0; i < n; i++ {
				if _, ok := seen[i]; !ok && bytes.Contains(stream, []byte(fmt.Sprintf("trickle-%03d", i))) {
					seen[i] = now
				}
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	var worst time.Duration
	for i := 0; i < n; i++ {
		sent := time.Now()
		send(t, c, fmt.Sprintf("trickle-%03d", i))
		var at time.Time
		waitFor(t, 2*time.Second, fmt.Sprintf("packet %d on stdout", i), func() bool {
			mu.Lock()
			defer mu.Unlock()
			var ok bool
			at, ok = seen[i]
			return ok
		})
		d := at.Sub(sent)
		t.Logf("packet %d on stdout %v after it was sent", i, d.Round(time.Millisecond))
		worst = max(worst, d)
		time.Sleep(time.Duration(100+37*i) * time.Millisecond)
	}
	h.stdin.Close()
	if s, err := h.wait(t, 5*time.Second); err != nil || s.Packets != n {
		t.Errorf("stats %+v err %v, want %d packets", s, err, n)
	}
	if worst > FlushInterval {
		t.Fatalf("a packet took %v to reach stdout, want within %v", worst, FlushInterval)
	}
}

// TestCaptureVLANTag: 802.1Q-tagged frames keep their tag in the file, as
// in tcpdump's, although the kernel takes the tag off the frame before the
// packet socket sees it and leaves it beside the frame in the ring.
func TestCaptureVLANTag(t *testing.T) {
	helperBinary(t)
	p := newVethPair(t)
	const vid = 100
	ha, err := netlink.NewHandleAt(p.a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(p.b)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	nd0, err := ha.LinkByName("nd0")
	if err != nil {
		t.Fatal(err)
	}
	nd1, err := hb.LinkByName("nd1")
	if err != nil {
		t.Fatal(err)
	}

	// Tagged frames, sent as they are from a packet socket on nd0 (no VLAN
	// device needed: the kernel may not have 8021q).
	frame := func(i int) []byte {
		eth := &layers.Ethernet{SrcMAC: nd0.Attrs().HardwareAddr, DstMAC: nd1.Attrs().HardwareAddr, EthernetType: layers.EthernetTypeDot1Q}
		tag := &layers.Dot1Q{VLANIdentifier: vid, Priority: 3, Type: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(addrA).To4(), DstIP: net.ParseIP(addrB).To4()}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 40001}
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, tag, ip, udp, gopacket.Payload(fmt.Sprintf("vlan-%d", i))); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var fd int
	in(t, p.a, func() { fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: nd0.Attrs().Index, Halen: 6}
	copy(to.Addr[:], nd1.Attrs().HardwareAddr)

	h := startHelper(t, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "-f", "udp port 40001", "-c", "3")
	h.waitReady(t)
	var sent [][]byte
	for i := 0; i < 3; i++ {
		f := frame(i)
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			t.Fatalf("send a tagged frame on nd0: %v", err)
		}
		sent = append(sent, f)
	}
	s, err := h.wait(t, 5*time.Second)
	if err != nil || s.Reason != ReasonCount || s.Packets != 3 {
		t.Fatalf("stats %+v err %v, want count 3", s, err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(h.stdout.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range sent {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want) || ci.Length != len(want) {
			t.Fatalf("packet %d (%d of %d bytes):\n got %x\nwant %x (the frame sent, tag included)", i, len(data), ci.Length, data, want)
		}
	}
}

// TestCaptureInterfaceDown: the interface going down ends the capture at
// once with an error that says so, and a complete file.
func TestCaptureInterfaceDown(t *testing.T) {
	helperBinary(t)
	p := newVethPair(t)
	h := startHelper(t, "--netns", "/run/netns/"+p.nameB, "-i", "nd1")
	h.waitReady(t)
	hb, err := netlink.NewHandleAt(p.b)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	l, err := hb.LinkByName("nd1")
	if err != nil {
		t.Fatal(err)
	}
	if err := hb.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	s, _ := h.wait(t, 2*time.Second)
	if s.Reason != ReasonError {
		t.Fatalf("stats %+v, want reason error", s)
	}
	want := "read packets from nd1: the interface went down or away: network is down"
	found := false
	for _, l := range h.stderrLines() {
		found = found || (strings.Contains(l, `"type":"error"`) && strings.Contains(l, want))
	}
	if !found {
		t.Fatalf("no error line with %q: %v", want, h.stderrLines())
	}
	if _, err := pcapgo.NewReader(bytes.NewReader(h.stdout.Bytes())); err != nil {
		t.Fatalf("output is not a pcap file: %v", err)
	}
}

// TestRingReadPacket: the ring also hands out packets one by one (the
// PacketSource interface), in order, each valid until the next read.
func TestRingReadPacket(t *testing.T) {
	helperBinary(t)
	p := newVethPair(t)
	cfg := DefaultConfig()
	cfg.Interface, cfg.Netns, cfg.Snaplen = "nd1", "/run/netns/"+p.nameB, 100
	src, info, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, ok := src.(blockSource); !ok || info.LinkType != layers.LinkTypeEthernet {
		t.Fatalf("Open gave a %T on a %v link, want the ring on Ethernet", src, info.LinkType)
	}
	c := p.udpFromA(t, 40001)
	const n = 3
	for i := 0; i < n; i++ {
		send(t, c, fmt.Sprintf("read-%d-%s", i, strings.Repeat("x", 200)))
	}
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < n; {
		data, ci, err := src.ReadPacket()
		if err == ErrTimeout && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || udp.DstPort != 40001 {
			continue // IPv6 router solicitations and the like
		}
		wantLen := 14 + 20 + 8 + len("read-0-") + 200
		if len(data) != 100 || ci.CaptureLength != 100 || ci.Length != wantLen || !strings.HasPrefix(string(udp.Payload), fmt.Sprintf("read-%d-", i)) {
			t.Fatalf("packet %d: %d bytes (capture length %d of %d), payload %q; want 100 of %d, read-%d-", i, len(data), ci.CaptureLength, ci.Length, udp.Payload, wantLen, i)
		}
		if d := time.Since(ci.Timestamp); d < 0 || d > 5*time.Second {
			t.Errorf("packet %d timestamp %v is %v away from now", i, ci.Timestamp, d)
		}
		i++
	}
	if d := src.KernelDrops(); d != 0 {
		t.Errorf("%d kernel drops", d)
	}
}
