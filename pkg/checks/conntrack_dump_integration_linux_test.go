//go:build integration && linux

package checks

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// requireConntrack skips when the kernel has no conntrack.
func requireConntrack(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/module/nf_conntrack"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI needs the nf_conntrack module (modprobe nf_conntrack): " + err.Error())
		}
		t.Skip("needs the nf_conntrack module (modprobe nf_conntrack): " + err.Error())
	}
}

// TestIntegrationConntrackStreamingDump fills the conntrack table of a
// fresh network namespace with 600 entries (more than one 32 KiB dump
// batch), IPv4 and IPv6, some with a reply from another address (as after
// DNAT), and checks the streaming dump counts each address exactly.
func TestIntegrationConntrackStreamingDump(t *testing.T) {
	requireRoot(t)
	requireConntrack(t)
	ns := newNS(t, "ct")
	c, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(ns.ns)})
	if err != nil {
		t.Fatalf("conntrack netlink in %s: %v", ns.name, err)
	}
	t.Cleanup(func() { c.Close() })

	a := netip.MustParseAddr
	var flows []flowAddrs
	for i := range 600 {
		var f conntrack.Flow
		switch {
		case i%10 == 9: // IPv6
			src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: byte(1 + i%3)})
			f = conntrack.NewFlow(6, 0, src, a("2001:db8:2::1"), uint16(10000+i), 443, 120, 0)
		case i%10 == 8: // to a "service", answered by 198.51.100.7
			src := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%5)})
			f = conntrack.NewFlow(6, 0, src, a("198.51.100.200"), uint16(10000+i), 80, 120, 0)
			f.TupleReply.IP.SourceAddress = a("198.51.100.7")
		default:
			src := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%5)})
			f = conntrack.NewFlow(17, 0, src, a("198.51.100.130"), uint16(10000+i), 53, 120, 0)
		}
		if err := c.Create(f); err != nil {
			t.Fatalf("creating conntrack entry %d (%v): %v", i, f.TupleOrig, err)
		}
		flows = append(flows, flowAddrs{
			f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress,
			f.TupleReply.IP.SourceAddress, f.TupleReply.IP.DestinationAddress,
		})
	}

	scope := prefixScope(t, "198.51.100.0/25", "2001:db8:1::/64")
	got, err := countConntrackIn(int(ns.ns), scope)
	if err != nil {
		t.Fatal(err)
	}
	// Written out: 540 IPv4 entries from .1 to .5 (the 60 "service"
	// ones all from .4, answered by .7), 60 IPv6 entries over 3 sources;
	// .130, .200 and 2001:db8:2::1 are outside the scope.
	want := map[netip.Addr]uint32{
		a("198.51.100.1"): 120, a("198.51.100.2"): 120, a("198.51.100.3"): 120,
		a("198.51.100.4"): 120, a("198.51.100.5"): 60, a("198.51.100.7"): 60,
		a("2001:db8:1::1"): 20, a("2001:db8:1::2"): 20, a("2001:db8:1::3"): 20,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("streaming counts (-want +got):\n%s", d)
	}

	// Every address, against what was created and against ti-mo/conntrack's
	// own dump of the same table.
	all, err := countConntrackIn(int(ns.ns), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(countFlows(flows, nil), all); d != "" {
		t.Errorf("all addresses (-created +dumped):\n%s", d)
	}
	dumped, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	var viaFlows []flowAddrs
	for _, f := range dumped {
		viaFlows = append(viaFlows, flowAddrs{
			f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress,
			f.TupleReply.IP.SourceAddress, f.TupleReply.IP.DestinationAddress,
		})
	}
	if d := cmp.Diff(countFlows(viaFlows, nil), all); d != "" {
		t.Errorf("ti-mo/conntrack Dump vs streaming (-Dump +streaming):\n%s", d)
	}

	// The check itself, through --netns: the top list.
	_, v4, _ := net.ParseCIDR("198.51.100.0/25")
	cfg := Config{
		Proc: "/proc", Sys: "/sys", HostRoot: "/nonexistent-host-root", NetNS: ns.path,
		Checks: []string{CheckConntrack}, Top: 3, PodCIDRs: []*net.IPNet{v4},
		Pods: []PodInfo{{Namespace: "default", Name: "backend", IP: net.ParseIP("198.51.100.7")}},
	}
	var fs []protocol.Finding
	if err := Run(context.Background(), cfg, func(f protocol.Finding) { fs = append(fs, f) }); err != nil {
		t.Fatal(err)
	}
	f := only(t, fs, CheckConntrack)
	if e, ok := asJSON(t, f.Data)["topIPsError"]; ok {
		t.Fatalf("topIPsError: %v", e)
	}
	wantTop := []protocol.TopIP{
		{IP: "198.51.100.1", Entries: 120}, {IP: "198.51.100.2", Entries: 120}, {IP: "198.51.100.3", Entries: 120},
	}
	var d protocol.ConntrackData
	if err := f.DecodeData(&d); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantTop, d.TopIPs); d != "" {
		t.Errorf("topIPs (-want +got):\n%s", d)
	}
}
