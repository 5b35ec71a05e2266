//go:build integration && linux

package checks

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The mtu check without a pod UID judges the node's side on a real kernel:
// the bridge and its pod veth against the uplink (the uplink's own veth and
// its peer are not pods'), then against a VXLAN's overhead read from the
// device's local address.
func TestIntegrationMTUNodeSide(t *testing.T) {
	requireRoot(t)
	b := newBridgeNode(t, 1500, 0)
	must(t, b.node.h.LinkSetUp(b.bridge), "cbr0 up")
	waitOperUp(t, b.node, "cbr0")

	cfg := b.config(CheckMTU)
	cfg.PodIP = net.ParseIP("192.0.2.10") // no UID: the node's side
	f := only(t, runChecks(t, cfg), CheckMTU)
	if want := "bridge cbr0 (MTU 1500) and 1 host veth (MTU 1500) fit the path MTU 1500 (uplink uplink0); no pod UID given, so no pod's eth0 was read"; f.Severity != protocol.SeverityOK || f.Subject != "node" || f.Message != want {
		t.Errorf("got %s %s %q, want ok node %q", f.Severity, f.Subject, f.Message, want)
	}
	var d protocol.MTUData
	if err := f.DecodeData(&d); err != nil {
		t.Fatal(err)
	}
	if d.Scope != "node" || len(d.HostVeths) != 1 || d.HostVeths[0].Name != "vethpod0" || d.Uplink != "uplink0" || d.PathMTU != 1500 {
		t.Errorf("data %+v", d)
	}

	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxt0"}, VxlanId: 42, SrcAddr: net.ParseIP("203.0.113.2"), Port: 4789}
	if err := b.node.h.LinkAdd(vx); err != nil {
		t.Skipf("no VXLAN in this kernel: %v", err)
	}
	l, err := b.node.h.LinkByName("vxt0")
	must(t, err, "vxt0")
	must(t, b.node.h.LinkSetUp(l), "vxt0 up")
	var got []string
	for _, f := range runChecks(t, b.config(CheckMTU)) {
		got = append(got, string(f.Severity)+" "+f.Subject+": "+f.Message)
	}
	want := []string{
		"fail cbr0: bridge cbr0 MTU 1500 is above the path MTU 1450 (uplink uplink0 minus 50 for vxt0): pods on it can send packets the path drops",
		"fail vethpod0: host veth vethpod0 MTU 1500 is above the path MTU 1450 (uplink uplink0 minus 50 for vxt0): its pod's eth0 has the same MTU and its large packets are dropped",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("with VXLAN:\n got %q\nwant %q", got, want)
	}
}
