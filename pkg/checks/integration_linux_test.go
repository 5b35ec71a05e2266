//go:build integration && linux

// Kernel tests: each builds its own "node" and "pod" network namespaces
// (never touching the machine's), with a real bridge named cbr0, veths,
// routes, cgroups and processes. Addresses come from the documentation
// ranges 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24. Run as root:
//
//	go test -tags integration ./pkg/checks/...
package checks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, bridges, veths and cgroups")
	}
}

// testNS is a named network namespace (/run/netns/NAME) made for one test.
type testNS struct {
	name string
	path string
	ns   netns.NsHandle
	h    *netlink.Handle
}

// newNS creates a named network namespace on a locked OS thread, switches
// the thread back, and removes the namespace when the test ends.
func newNS(t *testing.T, role string) *testNS {
	t.Helper()
	name := fmt.Sprintf("ndt-%s-%d-%s", role, os.Getpid(), randHex(3))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		// NewNamed may have left the thread in a new namespace: keep it
		// locked so Go discards it when the test goroutine ends.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		t.Fatalf("creating netns %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("switching back from netns %s: %v", name, err) // thread stays locked, see above
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting netns %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err == nil {
		_ = h.LinkSetUp(lo)
	}
	return &testNS{name: name, path: filepath.Join("/run/netns", name), ns: ns, h: h}
}

// in runs f with the calling goroutine's thread in the namespace.
func (n *testNS) in(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is not unlocked on purpose: if switching back failed,
		// Go must throw it away rather than reuse it in the wrong netns.
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.ns); err != nil {
			t.Error(err)
			return
		}
		f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func randUID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func addr(t *testing.T, h *netlink.Handle, l netlink.Link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	must(t, err, cidr)
	must(t, h.AddrAdd(l, a), "adding "+cidr)
}

// bridgeNode is a node namespace with cbr0 (192.0.2.1/24), an uplink
// (veth uplink0, 203.0.113.2/24, default route via 203.0.113.1), and a pod
// namespace whose eth0 (192.0.2.10/24) is paired with vethpod0 on cbr0.
type bridgeNode struct {
	node, pod *testNS
	bridge    netlink.Link
	hostVeth  netlink.Link
	podEth    netlink.Link
}

func newBridgeNode(t *testing.T, podMTU, bridgeMTU int) *bridgeNode {
	t.Helper()
	b := &bridgeNode{node: newNS(t, "node"), pod: newNS(t, "pod")}
	h := b.node.h

	// The uplink is a veth (this kernel may lack the dummy driver) whose
	// peer stays in the node namespace.
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0", MTU: 1500}, PeerName: "uplink0p"}), "adding uplink0")
	up, err := h.LinkByName("uplink0")
	must(t, err, "uplink0")
	upPeer, err := h.LinkByName("uplink0p")
	must(t, err, "uplink0p")
	must(t, h.LinkSetUp(upPeer), "uplink0p up")
	addr(t, h, up, "203.0.113.2/24")
	must(t, h.LinkSetUp(up), "uplink0 up")
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: net.ParseIP("203.0.113.1")}), "default route")

	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cbr0"}}
	must(t, h.LinkAdd(br), "adding cbr0")
	addr(t, h, br, "192.0.2.1/24")

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "vethpod0", MTU: podMTU},
		PeerName:      "eth0",
		PeerMTU:       uint32(podMTU),
		PeerNamespace: netlink.NsFd(b.pod.ns),
	}
	must(t, h.LinkAdd(veth), "adding vethpod0")
	hv, err := h.LinkByName("vethpod0")
	must(t, err, "vethpod0")
	must(t, h.LinkSetMaster(hv, br), "enslaving vethpod0")
	must(t, h.LinkSetUp(hv), "vethpod0 up")
	if bridgeMTU > 0 {
		must(t, h.LinkSetMTU(br, bridgeMTU), "cbr0 mtu")
	}

	pe, err := b.pod.h.LinkByName("eth0")
	must(t, err, "pod eth0")
	addr(t, b.pod.h, pe, "192.0.2.10/24")
	must(t, b.pod.h.LinkSetUp(pe), "pod eth0 up")

	b.bridge, _ = h.LinkByName("cbr0")
	b.hostVeth, _ = h.LinkByName("vethpod0")
	b.podEth, _ = b.pod.h.LinkByName("eth0")
	return b
}

func (b *bridgeNode) config(checks ...string) Config {
	return Config{
		Proc: "/proc", Sys: "/sys", HostRoot: "/nonexistent-host-root",
		NetNS:  b.node.path,
		Checks: checks,
		Top:    0,
	}
}

func only(t *testing.T, fs []protocol.Finding, check string) protocol.Finding {
	t.Helper()
	var got []protocol.Finding
	for _, f := range fs {
		if f.Check == check {
			got = append(got, f)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one %s finding, got %+v", check, fs)
	}
	return got[0]
}

func TestIntegrationBridgeDownAndUp(t *testing.T) {
	requireRoot(t)
	b := newBridgeNode(t, 1500, 0)

	f := only(t, runChecks(t, b.config(CheckBridge)), CheckBridge)
	if f.Severity != protocol.SeverityFail || f.Subject != "cbr0" {
		t.Errorf("bridge down: got %s %q, want fail", f.Severity, f.Message)
	}
	if !strings.Contains(f.Remedy, "ip link set cbr0 up") {
		t.Errorf("remedy = %q", f.Remedy)
	}
	if asJSON(t, f.Data)["adminUp"] != false {
		t.Errorf("data.adminUp = %v", asJSON(t, f.Data)["adminUp"])
	}

	must(t, b.node.h.LinkSetUp(b.bridge), "cbr0 up")
	var last protocol.Finding
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // carrier comes a moment after up
		last = only(t, runChecks(t, b.config(CheckBridge)), CheckBridge)
		if last.Severity == protocol.SeverityOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last.Severity != protocol.SeverityOK {
		t.Fatalf("bridge up: got %s %q, want ok", last.Severity, last.Message)
	}
	d := asJSON(t, last.Data)
	if d["bridge"] != "cbr0" || fmt.Sprint(d["ipv4"]) != "[192.0.2.1/24]" {
		t.Errorf("data = %v", d)
	}
	ports, _ := d["ports"].([]any)
	if len(ports) != 1 || ports[0].(map[string]any)["name"] != "vethpod0" {
		t.Errorf("ports = %v", d["ports"])
	}

	// --bridge naming a bridge that is not there fails.
	cfg := b.config(CheckBridge)
	cfg.Bridge = "cni0"
	if f := only(t, runChecks(t, cfg), CheckBridge); f.Severity != protocol.SeverityFail || !strings.Contains(f.Message, "does not exist") {
		t.Errorf("missing bridge: %+v", f)
	}
}

func TestIntegrationVethThroughNeighbourAndFDB(t *testing.T) {
	requireRoot(t)
	b := newBridgeNode(t, 1500, 0)
	must(t, b.node.h.LinkSetUp(b.bridge), "cbr0 up")

	// Traffic from the node makes the neighbour entry and teaches the
	// bridge the pod's MAC.
	podIP := net.ParseIP("192.0.2.10")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.node.in(t, func() {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: podIP, Port: 9})
			if err == nil {
				_, _ = c.Write([]byte("x"))
				c.Close()
			}
		})
		ns, _ := b.node.h.NeighList(b.bridge.Attrs().Index, netlink.FAMILY_V4)
		if len(ns) > 0 && ns[0].State&netlink.NUD_REACHABLE != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reachable neighbour entry for %s: %+v", podIP, ns)
		}
		time.Sleep(100 * time.Millisecond)
	}

	cfg := b.config(CheckVeth, CheckARP)
	cfg.PodIP = podIP
	fs := runChecks(t, cfg)
	f := only(t, fs, CheckVeth)
	d := asJSON(t, f.Data)
	if f.Severity != protocol.SeverityOK || d["method"] != "neighbour+fdb" || d["hostInterface"] != "vethpod0" ||
		d["ifindex"] != float64(b.hostVeth.Attrs().Index) || d["bridge"] != "cbr0" || d["mtu"] != 1500.0 || d["podIP"] != "192.0.2.10" {
		t.Errorf("veth: %s %q data %v", f.Severity, f.Message, d)
	}
	if a := only(t, fs, CheckARP); a.Severity != protocol.SeverityOK || asJSON(t, a.Data)["mac"] != b.podEth.Attrs().HardwareAddr.String() {
		t.Errorf("arp: %+v", a)
	}

	// A neighbour entry with another MAC than the pod's eth0 fails.
	cfg.Pods = []PodInfo{{Namespace: "default", Name: "web", IP: podIP, MAC: "02:00:00:00:00:99"}}
	cfg.PodIP = nil
	a := only(t, runChecks(t, withChecks(cfg, CheckARP)), CheckARP)
	if a.Severity != protocol.SeverityFail || !strings.Contains(a.Message, "02:00:00:00:00:99") || a.Subject != "default/web" {
		t.Errorf("arp MAC mismatch: %+v", a)
	}
}

func withChecks(cfg Config, checks ...string) Config {
	cfg.Checks = checks
	return cfg
}

func TestIntegrationVethThroughHostRoute(t *testing.T) {
	requireRoot(t)
	node, _, hv := routedPod(t, 1460)

	cfg := Config{Proc: "/proc", Sys: "/sys", HostRoot: "/nonexistent-host-root", NetNS: node.path, Checks: []string{CheckVeth, CheckBridge}, PodIP: net.ParseIP("198.51.100.10")}
	fs := runChecks(t, cfg)
	f := only(t, fs, CheckVeth)
	d := asJSON(t, f.Data)
	if f.Severity != protocol.SeverityOK || d["method"] != "route" || d["hostInterface"] != "vethr0" || d["ifindex"] != float64(hv.Attrs().Index) || d["mtu"] != 1460.0 || d["bridge"] != "" {
		t.Errorf("veth: %s %q data %v", f.Severity, f.Message, d)
	}
	if b := only(t, fs, CheckBridge); b.Severity != protocol.SeverityInfo {
		t.Errorf("bridge on a routed node: %+v", b)
	}
}

// podCgroup is a cgroup v1 directory named like the kubelet's
// (…/kubepods/besteffort/pod<uid>/<container-id>) under a test-only parent
// in the pids hierarchy.
type podCgroup struct {
	root string
	uid  string
}

func newPodCgroup(t *testing.T) *podCgroup {
	t.Helper()
	base := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		t.Skipf("needs the cgroup v1 pids hierarchy at %s: %v", base, err)
	}
	root := filepath.Join(base, fmt.Sprintf("netdiag-test-%d-%s", os.Getpid(), randHex(3)))
	must(t, os.Mkdir(root, 0o755), "creating "+root)
	pc := &podCgroup{root: root, uid: randUID()}
	t.Cleanup(func() { removeCgroupTree(t, root) })
	return pc
}

// container creates the container's cgroup and returns its directory.
func (pc *podCgroup) container(t *testing.T, id string) string {
	t.Helper()
	dir := filepath.Join(pc.root, "kubepods", "besteffort", "pod"+pc.uid, id)
	must(t, os.MkdirAll(dir, 0o755), "creating "+dir)
	return dir
}

// removeCgroupTree removes cgroup directories deepest first (rmdir is the
// only way; the kernel refuses while a process is inside, so retry a bit).
func removeCgroupTree(t *testing.T, root string) {
	var dirs []string
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for range 50 {
			if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("removing cgroup %s: %v", dirs[i], err)
		}
	}
}

// startIn starts a command inside a named netns (ip netns exec, which execs
// the command in place: the PID is the command's) and moves it into the
// cgroup. The process is killed and reaped when the test ends.
func startIn(t *testing.T, ns *testNS, cgroupDir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...)
	must(t, cmd.Start(), "starting "+strings.Join(args, " "))
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	must(t, os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644), "moving into "+cgroupDir)
	// Wait until the exec happened (the netns is the pod's).
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		self, _ := os.Readlink("/proc/self/ns/net")
		if err == nil && l != self {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not enter netns %s", args, ns.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntegrationMTUAbovePath(t *testing.T) {
	requireRoot(t)
	b := newBridgeNode(t, 1500, 1400)
	must(t, b.node.h.LinkSetUp(b.bridge), "cbr0 up")
	pc := newPodCgroup(t)
	cid := randHex(32)
	sleeper := startIn(t, b.pod, pc.container(t, cid), "sleep", "60")

	cfg := b.config(CheckMTU, CheckVeth)
	cfg.PodUID = pc.uid
	fs := runChecks(t, cfg)
	f := only(t, fs, CheckMTU)
	d := asJSON(t, f.Data)
	if f.Severity != protocol.SeverityFail {
		t.Errorf("mtu: got %s %q, want fail", f.Severity, f.Message)
	}
	for k, want := range map[string]any{
		"podMTU": 1500.0, "pathMTU": 1400.0, "bridge": "cbr0", "bridgeMTU": 1400.0, "hostInterface": "vethpod0",
		"hostMTU": 1500.0, "uplink": "uplink0", "uplinkMTU": 1500.0, "limitedBy": "bridge cbr0", "pid": float64(sleeper.Process.Pid),
	} {
		if d[k] != want {
			t.Errorf("mtu data.%s = %v, want %v", k, d[k], want)
		}
	}
	if !strings.Contains(f.Remedy, `"mtu"`) || !strings.Contains(f.Remedy, "1400") {
		t.Errorf("remedy = %q", f.Remedy)
	}
	// No pod IP: the veth comes from the pod's eth0 peer index.
	v := only(t, fs, CheckVeth)
	if vd := asJSON(t, v.Data); vd["method"] != "pod-netns-iflink" || vd["hostInterface"] != "vethpod0" || vd["ifindex"] != float64(b.hostVeth.Attrs().Index) {
		t.Errorf("veth through the pod netns: %s %q %v", v.Severity, v.Message, vd)
	}

	// The pod's MTU lowered to the path: ok.
	must(t, b.pod.h.LinkSetMTU(b.podEth, 1400), "pod eth0 mtu")
	if f := only(t, runChecks(t, withChecks(cfg, CheckMTU)), CheckMTU); f.Severity != protocol.SeverityOK {
		t.Errorf("mtu 1400 on a 1400 path: %s %q", f.Severity, f.Message)
	}
}

func TestIntegrationStaleListener(t *testing.T) {
	requireRoot(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs busybox for nc: make integration installs busybox-static")
		}
		t.Skip("needs busybox (Debian busybox-static) for nc; make integration installs it")
	}
	b := newBridgeNode(t, 1500, 0)
	pc := newPodCgroup(t)
	knownID, staleID := randHex(32), randHex(32)
	live := startIn(t, b.pod, pc.container(t, knownID), "sleep", "60")
	nc := startIn(t, b.pod, pc.container(t, staleID), busybox, "nc", "-l", "-p", "40123")

	// Wait for the listener.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls, _ := processListeners("/proc", nc.Process.Pid)
		if portHolder(ls, 40123) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nc never listened on 40123: %v", ls)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cfg := b.config(CheckStale)
	cfg.PodUID = pc.uid
	cfg.Port = 40123
	cfg.runtime = runtimeKnowing(knownID)
	fs := runChecks(t, cfg)
	var got []protocol.Finding
	for _, f := range fs {
		if _, ok := asJSON(t, f.Data)["pid"]; ok {
			got = append(got, f)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one process finding (nc), got %+v", fs)
	}
	f := got[0]
	d := asJSON(t, f.Data)
	if f.Severity != protocol.SeverityFail || d["pid"] != float64(nc.Process.Pid) || d["containerID"] != staleID ||
		d["port"] != 40123.0 || d["protocol"] != "tcp" {
		t.Errorf("stale: %s %q data %v", f.Severity, f.Message, d)
	}
	if d["pid"] == float64(live.Process.Pid) {
		t.Error("the known container's process was reported")
	}
}

// fix --kill on the kernel: a stale process in a pod cgroup (a test-only
// cgroup, not one the kubelet manages) and its own netns is signalled
// through a pidfd only with the start time the user approved; a wrong start
// time (a reused PID) is refused and nothing is signalled.
func TestIntegrationKillApprovedByPidfd(t *testing.T) {
	requireRoot(t)
	b := newBridgeNode(t, 1500, 0)
	pc := newPodCgroup(t)
	knownID, staleID := randHex(32), randHex(32)
	live := startIn(t, b.pod, pc.container(t, knownID), "sleep", "60")
	stale := startIn(t, b.pod, pc.container(t, staleID), "sleep", "60")
	pid := stale.Process.Pid
	start, _, err := procStart("/proc", pid)
	must(t, err, "reading the start time")

	run := func(kill string) protocol.Action {
		t.Helper()
		cfg, err := parseFixFlags([]string{"--kill", kill, "--grace", "2s", "--pod-uid", pc.uid, "--host-root", t.TempDir()}, strings.NewReader(""), io.Discard)
		must(t, err, "parsing")
		cfg.Check.runtime = runtimeKnowing(knownID)
		var got []protocol.Action
		RunFix(context.Background(), cfg, func(a protocol.Action) { got = append(got, a) })
		if len(got) != 1 {
			t.Fatalf("actions %+v", got)
		}
		return got[0]
	}
	alive := func(p int) bool {
		_, state, err := procStart("/proc", p)
		return err == nil && state != "Z"
	}

	if a := run(fmt.Sprintf("%d:%d", pid, start+1)); a.Result != protocol.ActionRefused || !strings.Contains(a.Message, "the PID was reused") {
		t.Errorf("wrong start time: %+v", a)
	}
	if !alive(pid) {
		t.Fatal("signalled with a start time the user did not approve")
	}
	// The known container's process is never a target.
	lstart, _, _ := procStart("/proc", live.Process.Pid)
	if a := run(fmt.Sprintf("%d:%d", live.Process.Pid, lstart)); a.Result != protocol.ActionRefused {
		t.Errorf("live container's process: %+v", a)
	}
	if a := run(fmt.Sprintf("%d:%d", pid, start)); a.Result != protocol.ActionDone || asJSON(t, a.Data)["signal"] != "SIGTERM" {
		t.Errorf("approved: %+v", a)
	}
	if alive(pid) {
		t.Error("the approved stale process still runs")
	}
	if !alive(live.Process.Pid) {
		t.Error("the live container's process was ended")
	}
}

// /dev/kmsg blocks at its end; readKmsg must stop there instead.
func TestIntegrationReadDevKmsgDoesNotBlock(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("no /dev/kmsg: %v", err)
	}
	type result struct {
		recs []kmsgRecord
		err  error
	}
	done := make(chan result, 1)
	go func() {
		recs, err := readKmsg("/dev/kmsg")
		done <- result{recs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(r.recs) == 0 || r.recs[0].Usec < 0 || r.recs[0].Priority < 0 {
			t.Errorf("got %d records, first %+v", len(r.recs), r.recs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("readKmsg blocked on /dev/kmsg")
	}
}

// routedPod is the routed layout (GKE-style): a pod netns whose eth0
// (198.51.100.10/32, MTU mtu) is the peer of vethr0 (198.51.100.1/32) in the
// node netns, with a /32 route to the pod via vethr0. It returns vethr0.
func routedPod(t *testing.T, mtu int) (node, pod *testNS, hostVeth netlink.Link) {
	t.Helper()
	node, pod = newNS(t, "node"), newNS(t, "pod")
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethr0", MTU: mtu}, PeerName: "eth0", PeerNamespace: netlink.NsFd(pod.ns)}
	must(t, node.h.LinkAdd(veth), "adding vethr0")
	hv, err := node.h.LinkByName("vethr0")
	must(t, err, "vethr0")
	must(t, node.h.LinkSetUp(hv), "vethr0 up")
	addr(t, node.h, hv, "198.51.100.1/32")
	pe, err := pod.h.LinkByName("eth0")
	must(t, err, "pod eth0")
	addr(t, pod.h, pe, "198.51.100.10/32")
	must(t, pod.h.LinkSetUp(pe), "pod eth0 up")
	_, dst, _ := net.ParseCIDR("198.51.100.10/32")
	must(t, node.h.RouteAdd(&netlink.Route{LinkIndex: hv.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}), "pod route")
	// The carrier comes a moment after both ends are up: until then the
	// veth check rightly calls vethr0 down.
	waitOperUp(t, node, "vethr0")
	return node, pod, hv
}
