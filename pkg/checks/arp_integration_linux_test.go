//go:build integration && linux

package checks

import (
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The arp check's probes, against real kernels answering (or not) in
// their own network namespaces. Everything lives in namespaces the tests
// create and delete; no sysctl is written.

// newARPNode is a bridge node (newBridgeNode) with cbr0 up and carrying.
func newARPNode(t *testing.T) *bridgeNode {
	t.Helper()
	b := newBridgeNode(t, 1500, 0)
	must(t, b.node.h.LinkSetUp(b.bridge), "cbr0 up")
	waitOperUp(t, b.node, "cbr0")
	// IPv6 joins the solicited-node groups only once the link watcher
	// saw the pod's carrier, as it does operstate.
	waitOperUp(t, b.pod, "eth0")
	return b
}

// waitOperUp waits for a link's carrier as the kernel's link watcher
// reports it (a moment after the link and its peer are up): bridge ports
// forward and IPv6 joins its groups only then.
func waitOperUp(t *testing.T, n *testNS, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := n.h.LinkByName(name)
		must(t, err, name)
		if operUp(l) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no carrier: %s", name, l.Attrs().OperState)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSolicitedNode waits until a namespace listens on the solicited-node
// group of an IPv6 address: the kernel joins it from its address work a
// moment after the address is added (even with IFA_F_NODAD), and drops
// solicitations until then.
func waitSolicitedNode(t *testing.T, n *testNS, ip net.IP) {
	t.Helper()
	group, _ := solicitedNode(ip)
	want := hex.EncodeToString(group)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var b []byte
		var err error
		n.in(t, func() { b, err = os.ReadFile("/proc/thread-self/net/igmp6") })
		must(t, err, "reading igmp6")
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never joined %s:\n%s", n.name, group, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addImpostor adds a namespace on cbr0 whose eth0 has cidr as well, and
// returns that eth0's MAC.
func addImpostor(t *testing.T, b *bridgeNode, cidr string) net.HardwareAddr {
	t.Helper()
	imp := newNS(t, "imp")
	h := b.node.h
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethimp0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(imp.ns)}
	must(t, h.LinkAdd(veth), "adding vethimp0")
	hv, err := h.LinkByName("vethimp0")
	must(t, err, "vethimp0")
	must(t, h.LinkSetMaster(hv, b.bridge), "enslaving vethimp0")
	must(t, h.LinkSetUp(hv), "vethimp0 up")
	pe, err := imp.h.LinkByName("eth0")
	must(t, err, "impostor eth0")
	addr(t, imp.h, pe, cidr)
	must(t, imp.h.LinkSetUp(pe), "impostor eth0 up")
	waitOperUp(t, imp, "eth0")
	waitOperUp(t, b.node, "vethimp0")
	return pe.Attrs().HardwareAddr
}

// neighFor returns the node's neighbour entry for ip on cbr0, if any.
func neighFor(t *testing.T, b *bridgeNode, ip net.IP) *netlink.Neigh {
	t.Helper()
	ns, err := b.node.h.NeighList(b.bridge.Attrs().Index, family(ip))
	must(t, err, "listing neighbours")
	for i := range ns {
		if ns[i].IP.Equal(ip) {
			return &ns[i]
		}
	}
	return nil
}

func probeData(t *testing.T, f protocol.Finding) map[string]any {
	t.Helper()
	p, ok := asJSON(t, f.Data)["probe"].(map[string]any)
	if !ok {
		t.Fatalf("%s %s: no data.probe: %+v", f.Check, f.Subject, f)
	}
	return p
}

func findingFor(t *testing.T, fs []protocol.Finding, subject string) protocol.Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == CheckARP && f.Subject == subject {
			t.Logf("%s %s: %s", f.Severity, f.Subject, f.Message)
			if f.Remedy != "" {
				t.Logf("  remedy: %s", f.Remedy)
			}
			return f
		}
	}
	t.Fatalf("no arp finding for %s in %+v", subject, fs)
	return protocol.Finding{}
}

// (a) A pod the node never talked to: no neighbour entry; the probe is
// answered by the pod's eth0 (MAC read through the pod's netns) → ok, over
// IPv4 and IPv6 at once, well before the wait bound.
func TestIntegrationARPProbeAnswered(t *testing.T) {
	requireRoot(t)
	b := newARPNode(t)
	pc := newPodCgroup(t)
	startIn(t, b.pod, pc.container(t, randHex(32)), "sleep", "60")
	v4, v6 := net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::10")
	for _, a := range []struct {
		n    *testNS
		l    netlink.Link
		cidr string
	}{{b.node, b.bridge, "2001:db8::1/64"}, {b.pod, b.podEth, "2001:db8::10/64"}} {
		ad, err := netlink.ParseAddr(a.cidr)
		must(t, err, a.cidr)
		ad.Flags = unix.IFA_F_NODAD
		must(t, a.n.h.AddrAdd(a.l, ad), "adding "+a.cidr)
		waitSolicitedNode(t, a.n, ad.IP)
	}
	for _, ip := range []net.IP{v4, v6} {
		if n := neighFor(t, b, ip); n != nil {
			t.Fatalf("a neighbour entry for %s before the check: %+v", ip, n)
		}
	}

	cfg := b.config(CheckARP)
	cfg.Pods = []PodInfo{
		{Namespace: "default", Name: "web", UID: pc.uid, IP: v4},
		{Namespace: "default", Name: "web6", UID: pc.uid, IP: v6},
	}
	start := time.Now()
	fs := runChecks(t, cfg)
	took := time.Since(start)
	podMAC := b.podEth.Attrs().HardwareAddr.String()
	for _, tc := range []struct{ subject, proto, sender, msg string }{
		{"default/web", "arp", "192.0.2.1", "ARP who-has 192.0.2.10 on cbr0 answered by the pod's eth0 (" + podMAC + ") in "},
		{"default/web6", "ndp", "2001:db8::1", "neighbour solicitation for 2001:db8::10 on cbr0 answered by the pod's eth0 (" + podMAC + ") in "},
	} {
		f := findingFor(t, fs, tc.subject)
		if f.Severity != protocol.SeverityOK || !strings.HasPrefix(f.Message, tc.msg) || !strings.HasSuffix(f.Message, "; there was no neighbour entry") {
			t.Errorf("%s: %s %q", tc.subject, f.Severity, f.Message)
		}
		d := asJSON(t, f.Data)
		if d["podMAC"] != podMAC || d["podMACFrom"] != "pod-netns" || d["layout"] != "bridge" || d["interface"] != "cbr0" {
			t.Errorf("%s: data %v", tc.subject, d)
		}
		p := probeData(t, f)
		sent, _ := p["sent"].(map[string]any)
		if p["result"] != "match" || p["replyMAC"] != podMAC || p["protocol"] != tc.proto || p["interface"] != "cbr0" ||
			sent["senderIP"] != tc.sender || sent["senderMAC"] != b.bridge.Attrs().HardwareAddr.String() {
			t.Errorf("%s: probe %v", tc.subject, p)
		}
		if reps, _ := p["replies"].([]any); len(reps) != 1 {
			t.Errorf("%s: replies %v", tc.subject, p["replies"])
		}
	}
	if took > 900*time.Millisecond {
		t.Errorf("the check took %s: it should stop once both answered", took)
	}
	// The helper wrote nothing into the neighbour table.
	for _, ip := range []net.IP{v4, v6} {
		if n := neighFor(t, b, ip); n != nil && n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 {
			t.Errorf("a static neighbour entry for %s after the check: %+v", ip, n)
		}
	}
}

// (b) The pod does not answer (its eth0 is NOARP) but another namespace on
// the bridge with the same IP does → fail naming both MACs; with the pod
// answering too → fail, several interfaces claim the IP.
func TestIntegrationARPProbeOtherMAC(t *testing.T) {
	requireRoot(t)
	b := newARPNode(t)
	ip := net.ParseIP("192.0.2.10")
	podMAC := b.podEth.Attrs().HardwareAddr.String()
	must(t, b.pod.h.LinkSetARPOff(b.podEth), "pod eth0 arp off")
	impMAC := addImpostor(t, b, "192.0.2.10/24").String()

	cfg := b.config(CheckARP)
	cfg.Pods = []PodInfo{{Namespace: "default", Name: "web", IP: ip, MAC: podMAC}}
	f := findingFor(t, runChecks(t, cfg), "default/web")
	want := "ARP who-has 192.0.2.10 tell 192.0.2.1 on cbr0 was answered by " + impMAC + " in "
	if f.Severity != protocol.SeverityFail || !strings.HasPrefix(f.Message, want) || !strings.Contains(f.Message, "but the pod's eth0 has "+podMAC) {
		t.Errorf("other MAC: %s %q", f.Severity, f.Message)
	}
	if !strings.Contains(f.Remedy, impMAC) {
		t.Errorf("remedy = %q", f.Remedy)
	}
	p := probeData(t, f)
	sent, _ := p["sent"].(map[string]any)
	if p["result"] != "other-mac" || p["replyMAC"] != impMAC || sent["targetIP"] != "192.0.2.10" || sent["senderIP"] != "192.0.2.1" {
		t.Errorf("probe %v", p)
	}

	must(t, b.pod.h.LinkSetARPOn(b.podEth), "pod eth0 arp on")
	f = findingFor(t, runChecks(t, cfg), "default/web")
	if f.Severity != protocol.SeverityFail || !strings.Contains(f.Message, "several interfaces claim 192.0.2.10") ||
		!strings.Contains(f.Message, podMAC) || !strings.Contains(f.Message, impMAC) {
		t.Errorf("two answers: %s %q", f.Severity, f.Message)
	}
	if p := probeData(t, f); p["result"] != "conflict" {
		t.Errorf("probe %v", p)
	}
}

// (c) Nobody answers (the pod's eth0 is NOARP) → fail after the wait
// bound, saying what was sent.
func TestIntegrationARPProbeNoReply(t *testing.T) {
	requireRoot(t)
	b := newARPNode(t)
	podMAC := b.podEth.Attrs().HardwareAddr.String()
	must(t, b.pod.h.LinkSetARPOff(b.podEth), "pod eth0 arp off")

	cfg := b.config(CheckARP)
	cfg.Pods = []PodInfo{{Namespace: "default", Name: "web", IP: net.ParseIP("192.0.2.10"), MAC: podMAC}}
	start := time.Now()
	f := findingFor(t, runChecks(t, cfg), "default/web")
	took := time.Since(start)
	want := "no reply within 1s to ARP who-has 192.0.2.10 tell 192.0.2.1, sent on cbr0 from " + b.bridge.Attrs().HardwareAddr.String() + "; the pod's eth0 has " + podMAC + "; there was no neighbour entry"
	if f.Severity != protocol.SeverityFail || f.Message != want {
		t.Errorf("no reply:\n got %s %q\nwant fail %q", f.Severity, f.Message, want)
	}
	if !strings.Contains(f.Remedy, "NOARP") {
		t.Errorf("remedy = %q", f.Remedy)
	}
	p := probeData(t, f)
	if reps, _ := p["replies"].([]any); p["result"] != "no-reply" || len(reps) != 0 || p["replyMAC"] != nil {
		t.Errorf("probe %v", p)
	}
	if took < time.Second || took > 2500*time.Millisecond {
		t.Errorf("the check took %s, want the 1s bound", took)
	}
}

// Routed layout (a /32 route via a veth, no bridge): the probe goes out of
// that veth, from its address, or from 0.0.0.0 when it has none.
func TestIntegrationARPProbeRouted(t *testing.T) {
	requireRoot(t)
	node, pod, hv := routedPod(t, 0)
	waitOperUp(t, node, "vethr0")
	pe, err := pod.h.LinkByName("eth0")
	must(t, err, "pod eth0")
	_, dst, _ := net.ParseCIDR("198.51.100.10/32")

	cfg := Config{Proc: "/proc", Sys: "/sys", HostRoot: "/nonexistent-host-root", NetNS: node.path, Checks: []string{CheckARP},
		Pods: []PodInfo{{Namespace: "default", Name: "web", IP: net.ParseIP("198.51.100.10"), MAC: pe.Attrs().HardwareAddr.String()}}}
	for _, sender := range []string{"198.51.100.1", "0.0.0.0"} {
		if sender == "0.0.0.0" {
			a, _ := netlink.ParseAddr("198.51.100.1/32")
			must(t, node.h.AddrDel(hv, a), "removing vethr0's address")
			// Losing its last address flushed the device's routes.
			must(t, node.h.RouteReplace(&netlink.Route{LinkIndex: hv.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}), "pod route again")
		}
		f := findingFor(t, runChecks(t, cfg), "default/web")
		d := asJSON(t, f.Data)
		p := probeData(t, f)
		sent, _ := p["sent"].(map[string]any)
		if f.Severity != protocol.SeverityOK || d["layout"] != "routed" || d["interface"] != "vethr0" || p["interface"] != "vethr0" ||
			p["result"] != "match" || sent["senderIP"] != sender {
			t.Errorf("sender %s: %s %q data %v", sender, f.Severity, f.Message, d)
		}
	}
}
