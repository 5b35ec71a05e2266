package checks

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Table tests of the network judges (bridge, veth, arp, mtu) over
// snapshots written as Go literals (and one JSON fixture under
// testdata/net): every branch, no root, any OS.

const (
	tPodMAC    = "0a:58:0a:f4:00:09"
	tOtherMAC  = "02:00:00:00:00:99"
	tBridgeMAC = "3e:00:00:00:00:01"
	tUID       = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
)

var pfx = netip.MustParsePrefix

// bridgeSnap is a node with cbr0 (10.244.0.1/24), one pod behind veth1
// (ifindex 4, the pod's eth0 paired with it), a default route via eth0
// (MTU 1500), a REACHABLE neighbour entry for the pod and its MAC in the
// FDB.
func bridgeSnap() *netSnapshot {
	return &netSnapshot{
		Links: []snapLink{
			{Name: "lo", Index: 1, Type: "device", MTU: 65536, AdminUp: true, OperState: "unknown", Addrs: []netip.Prefix{pfx("127.0.0.1/8")}},
			{Name: "eth0", Index: 2, Type: "device", MTU: 1500, MAC: "52:54:00:00:00:01", AdminUp: true, OperState: "up", Addrs: []netip.Prefix{pfx("203.0.113.2/24")}},
			{Name: "cbr0", Index: 3, Type: "bridge", MTU: 1500, MAC: tBridgeMAC, AdminUp: true, OperState: "up", Addrs: []netip.Prefix{pfx("10.244.0.1/24"), pfx("fe80::1/64")}},
			{Name: "veth1", Index: 4, Type: "veth", MTU: 1500, MAC: "6a:00:00:00:00:04", AdminUp: true, OperState: "up", MasterIndex: 3, ParentIndex: 2},
		},
		Routes: []snapRoute{
			{Dst: pfx("0.0.0.0/0"), LinkIndex: 2},
			{Dst: pfx("10.244.0.0/24"), LinkIndex: 3},
			{Dst: pfx("203.0.113.0/24"), LinkIndex: 2},
		},
		Neighbours: []snapNeigh{
			{LinkIndex: 2, IP: netip.MustParseAddr("203.0.113.1"), MAC: "52:54:00:00:00:fe", State: "REACHABLE"},
			{LinkIndex: 3, IP: netip.MustParseAddr("10.244.0.9"), MAC: tPodMAC, State: "REACHABLE"},
		},
		FDB: []snapFDB{{LinkIndex: 3, MAC: tBridgeMAC}, {LinkIndex: 4, MAC: tPodMAC}},
		Pods: map[string]snapPod{
			tUID: {PID: 4242, NetNS: "/proc/4242/ns/net", Interface: "eth0", Index: 2, MTU: 1500, MAC: tPodMAC, PeerIndex: 4},
		},
	}
}

// with returns bridgeSnap changed by f.
func with(f func(s *netSnapshot)) *netSnapshot {
	s := bridgeSnap()
	f(s)
	return s
}

func (s *netSnapshot) mustLink(name string) *snapLink {
	l := s.linkByName(name)
	if l == nil {
		panic("no link " + name)
	}
	return l
}

// dataOf decodes a finding's data into a generic map (what a script reading
// -o json sees).
func dataOf(t *testing.T, f protocol.Finding) map[string]any {
	t.Helper()
	if len(f.Data) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(f.Data, &m); err != nil {
		t.Fatalf("data %s: %v", f.Data, err)
	}
	return m
}

// wantFinding compares severity, subject, message, remedy and (when want
// is set) the data's keys.
type wantFinding struct {
	sev     protocol.Severity
	subject string
	msg     string
	remedy  string
	data    map[string]any
}

func (w wantFinding) check(t *testing.T, f protocol.Finding) {
	t.Helper()
	if f.Severity != w.sev || f.Subject != w.subject || f.Message != w.msg || f.Remedy != w.remedy {
		t.Errorf("got  %s %q %q\n     remedy %q\nwant %s %q %q\n     remedy %q", f.Severity, f.Subject, f.Message, f.Remedy, w.sev, w.subject, w.msg, w.remedy)
	}
	if w.data != nil {
		if d := cmp.Diff(w.data, dataOf(t, f)); d != "" {
			t.Errorf("data (-want +got):\n%s", d)
		}
	}
}

func TestJudgeBridge(t *testing.T) {
	port := map[string]any{"name": "veth1", "ifindex": 4.0, "mtu": 1500.0, "type": "veth", "operState": "up", "adminUp": true}
	okData := map[string]any{
		"bridge": "cbr0", "ifindex": 3.0, "mtu": 1500.0, "mac": tBridgeMAC, "adminUp": true, "operState": "up",
		"addresses": []any{"10.244.0.1/24", "fe80::1/64"}, "ipv4": []any{"10.244.0.1/24"},
		"ports": []any{port}, "portsUp": 1.0,
	}
	tests := []struct {
		name   string
		snap   *netSnapshot
		bridge string
		want   wantFinding
	}{
		{
			name: "named bridge missing", snap: bridgeSnap(), bridge: "cni0",
			want: wantFinding{sev: protocol.SeverityFail, subject: "cni0", msg: "bridge cni0 does not exist on this node",
				remedy: "check the bridge name in the CNI config (/etc/cni/net.d) and --bridge; the CNI bridge plugin creates it when a pod starts",
				data:   map[string]any{"bridge": "cni0", "exists": false}},
		},
		{
			name: "no bridge at all (routed node)",
			snap: with(func(s *netSnapshot) { s.Links = s.Links[:2] }),
			want: wantFinding{sev: protocol.SeverityInfo, subject: "node", msg: "no bridge on this node (looked for cbr0, cni0, docker0 and any other bridge): pods are routed, nothing to check",
				data: map[string]any{"exists": false}},
		},
		{
			name: "a cbr0 that is no bridge is not taken",
			snap: with(func(s *netSnapshot) { s.mustLink("cbr0").Type = "dummy" }),
			want: wantFinding{sev: protocol.SeverityInfo, subject: "node", msg: "no bridge on this node (looked for cbr0, cni0, docker0 and any other bridge): pods are routed, nothing to check"},
		},
		{
			name: "named bridge found whatever its type",
			snap: with(func(s *netSnapshot) { s.mustLink("cbr0").Type = "dummy" }), bridge: "cbr0",
			want: wantFinding{sev: protocol.SeverityOK, subject: "cbr0", msg: "bridge cbr0 is up with [10.244.0.1/24] and 1 ports (1 up)"},
		},
		{
			name: "auto-detect: the bridge with the lowest ifindex",
			snap: with(func(s *netSnapshot) {
				s.mustLink("cbr0").Name = "br-b"
				s.Links = append(s.Links, snapLink{Name: "br-a", Index: 9, Type: "bridge", MTU: 1500, AdminUp: true, OperState: "up"})
			}),
			want: wantFinding{sev: protocol.SeverityOK, subject: "br-b", msg: "bridge br-b is up with [10.244.0.1/24] and 1 ports (1 up)"},
		},
		{
			name: "cni0 before another bridge",
			snap: with(func(s *netSnapshot) {
				s.Links = append(s.Links, snapLink{Name: "cni0", Index: 9, Type: "bridge", MTU: 1450, AdminUp: true, OperState: "down"})
				s.mustLink("cbr0").Name = "br0"
			}),
			want: wantFinding{sev: protocol.SeverityWarn, subject: "cni0", msg: "bridge cni0 is up but has no carrier: it has no ports (no pod attached)"},
		},
		{
			name: "down",
			snap: with(func(s *netSnapshot) { l := s.mustLink("cbr0"); l.AdminUp, l.OperState = false, "down" }),
			want: wantFinding{sev: protocol.SeverityFail, subject: "cbr0", msg: "bridge cbr0 is down: pods on it cannot reach the node, each other or the network",
				remedy: "ip link set cbr0 up (or: kubectl netdiag node check --fix)",
				data: func() map[string]any {
					d := map[string]any{}
					for k, v := range okData {
						d[k] = v
					}
					d["adminUp"], d["operState"] = false, "down"
					return d
				}()},
		},
		{
			name: "up, no carrier, no ports",
			snap: with(func(s *netSnapshot) { s.mustLink("cbr0").OperState = "down"; s.Links = s.Links[:3] }),
			want: wantFinding{sev: protocol.SeverityWarn, subject: "cbr0", msg: "bridge cbr0 is up but has no carrier: it has no ports (no pod attached)"},
		},
		{
			name: "up, no carrier, ports down",
			snap: with(func(s *netSnapshot) {
				s.mustLink("cbr0").OperState = "down"
				v := s.mustLink("veth1")
				v.AdminUp, v.OperState = false, "down"
			}),
			want: wantFinding{sev: protocol.SeverityWarn, subject: "cbr0", msg: "bridge cbr0 is up but has no carrier: none of its 1 ports is up",
				remedy: "bring the pod veths up (ip link set VETH up) or recreate the pods"},
		},
		{
			name: "no IPv4 address",
			snap: with(func(s *netSnapshot) { s.mustLink("cbr0").Addrs = []netip.Prefix{pfx("fe80::1/64")} }),
			want: wantFinding{sev: protocol.SeverityWarn, subject: "cbr0", msg: "bridge cbr0 has no IPv4 address: pods using it as their gateway cannot leave the node",
				remedy: "the CNI bridge plugin (isGateway) adds the gateway address when a pod starts; add it back with ip address add GATEWAY/LEN dev cbr0"},
		},
		{
			name: "ok",
			snap: bridgeSnap(),
			want: wantFinding{sev: protocol.SeverityOK, subject: "cbr0", msg: "bridge cbr0 is up with [10.244.0.1/24] and 1 ports (1 up)", data: okData},
		},
		{
			name: "ok, a port down and one of unknown state",
			snap: with(func(s *netSnapshot) {
				s.mustLink("veth1").OperState = "lower-layer-down"
				s.Links = append(s.Links, snapLink{Name: "veth2", Index: 5, Type: "veth", MTU: 1500, AdminUp: true, OperState: "unknown", MasterIndex: 3})
			}),
			want: wantFinding{sev: protocol.SeverityOK, subject: "cbr0", msg: "bridge cbr0 is up with [10.244.0.1/24] and 2 ports (1 up)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := judgeBridge(tt.snap, tt.bridge)
			if err != nil {
				t.Fatal(err)
			}
			if f.Check != CheckBridge {
				t.Errorf("check %q", f.Check)
			}
			tt.want.check(t, f)
		})
	}
}

func TestJudgeBridgeErrors(t *testing.T) {
	boom := errors.New("netlink: operation not permitted")
	if _, err := judgeBridge(&netSnapshot{LinksErr: boom}, ""); err == nil || err.Error() != "bridge: listing links: netlink: operation not permitted" {
		t.Errorf("links: %v", err)
	}
	if _, err := judgeBridge(&netSnapshot{LinksErr: boom}, "cni0"); err == nil || err.Error() != "bridge: bridge cni0: netlink: operation not permitted" {
		t.Errorf("named: %v", err)
	}
	if _, err := judgeBridge(with(func(s *netSnapshot) { s.AddrsErr = boom }), ""); err == nil || err.Error() != "bridge cbr0: addresses: netlink: operation not permitted" {
		t.Errorf("addresses: %v", err)
	}
}

// routedSnap is a Calico-like node: no bridge, each pod behind a cali veth
// with a /32 route.
func routedSnap() *netSnapshot {
	return &netSnapshot{
		Links: []snapLink{
			{Name: "eth0", Index: 2, Type: "device", MTU: 1500, AdminUp: true, OperState: "up", Addrs: []netip.Prefix{pfx("203.0.113.2/24")}},
			{Name: "cali1", Index: 5, Type: "veth", MTU: 1450, MAC: "ee:ee:ee:ee:ee:ee", AdminUp: true, OperState: "up", Addrs: []netip.Prefix{pfx("fe80::ecee:eeff:feee:eeee/64")}},
			{Name: "cali2", Index: 6, Type: "veth", MTU: 1440, MAC: "ee:ee:ee:ee:ee:ee", AdminUp: true, OperState: "up"},
			{Name: "vxlan.calico", Index: 7, Type: "vxlan", MTU: 1450, AdminUp: true, OperState: "unknown", Underlay: "ipv4"},
		},
		Routes: []snapRoute{
			{Dst: pfx("0.0.0.0/0"), LinkIndex: 2},
			{Dst: pfx("10.244.1.5/32"), LinkIndex: 5},
			{Dst: pfx("10.244.1.6/32"), LinkIndex: 6},
			{Dst: pfx("fd00::5/128"), LinkIndex: 5},
		},
		Neighbours: []snapNeigh{{LinkIndex: 5, IP: netip.MustParseAddr("10.244.1.5"), MAC: tPodMAC, State: "STALE"}},
		Pods: map[string]snapPod{
			tUID: {PID: 77, Interface: "eth0", MTU: 1450, MAC: tPodMAC, PeerIndex: 5},
		},
	}
}

func TestJudgeVeth(t *testing.T) {
	podIP := net.ParseIP("10.244.0.9")
	web := PodInfo{Namespace: "shop", Name: "web", IP: podIP}
	webUID := PodInfo{Namespace: "shop", Name: "web", IP: podIP, UID: tUID}
	byUID := PodInfo{Namespace: "shop", Name: "web", UID: tUID}
	tests := []struct {
		name string
		snap *netSnapshot
		pod  PodInfo
		want wantFinding
	}{
		{
			name: "neighbour entry and FDB", snap: bridgeSnap(), pod: web,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "shop/web is on host interface veth1 (ifindex 4, MTU 1500, bridge cbr0; found by neighbour+fdb)",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "hostInterface": "veth1", "ifindex": 4.0, "mtu": 1500.0, "method": "neighbour+fdb", "operState": "up", "podMAC": tPodMAC, "bridge": "cbr0"}},
		},
		{
			name: "/32 route via a veth, no bridge", snap: routedSnap(), pod: PodInfo{Namespace: "shop", Name: "web", IP: net.ParseIP("10.244.1.5")},
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "shop/web is on host interface cali1 (ifindex 5, MTU 1450; found by route)",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.1.5", "hostInterface": "cali1", "ifindex": 5.0, "mtu": 1450.0, "method": "route", "operState": "up", "bridge": ""}},
		},
		{
			name: "/128 route", snap: routedSnap(), pod: PodInfo{IP: net.ParseIP("fd00::5")},
			want: wantFinding{sev: protocol.SeverityOK, subject: "fd00::5", msg: "fd00::5 is on host interface cali1 (ifindex 5, MTU 1450; found by route)"},
		},
		{
			name: "the pod's eth0 peer index (no IP)", snap: bridgeSnap(), pod: byUID,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "shop/web is on host interface veth1 (ifindex 4, MTU 1500, bridge cbr0; found by pod-netns-iflink)",
				data: map[string]any{"pod": "shop/web", "hostInterface": "veth1", "ifindex": 4.0, "mtu": 1500.0, "method": "pod-netns-iflink", "operState": "up", "podMAC": tPodMAC, "bridge": "cbr0"}},
		},
		{
			name: "FDB and the pod agree", snap: bridgeSnap(), pod: webUID,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "shop/web is on host interface veth1 (ifindex 4, MTU 1500, bridge cbr0; found by neighbour+fdb)"},
		},
		{
			name: "cross-check: the FDB says veth1, the pod is paired with ifindex 7",
			snap: with(func(s *netSnapshot) {
				p := s.Pods[tUID]
				p.PeerIndex = 7
				s.Pods[tUID] = p
			}), pod: webUID,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web",
				msg:    "shop/web: the neighbour+fdb points to host interface veth1 (ifindex 4) but the pod's eth0 is paired with ifindex 7",
				remedy: "a stale route or neighbour entry: delete it (ip neigh del / ip route del) or recreate the pod",
				data:   map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "hostInterface": "veth1", "ifindex": 4.0, "mtu": 1500.0, "method": "neighbour+fdb", "operState": "up", "podMAC": tPodMAC, "bridge": "cbr0", "podPeerIfindex": 7.0}},
		},
		{
			name: "cross-check: a stale /32 route",
			snap: with(func(s *netSnapshot) {
				s.Routes = append(s.Routes, snapRoute{Dst: pfx("10.244.0.9/32"), LinkIndex: 4})
				p := s.Pods[tUID]
				p.PeerIndex = 8
				s.Pods[tUID] = p
			}), pod: webUID,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web",
				msg:    "shop/web: the route points to host interface veth1 (ifindex 4) but the pod's eth0 is paired with ifindex 8",
				remedy: "a stale route or neighbour entry: delete it (ip neigh del / ip route del) or recreate the pod"},
		},
		{
			name: "cross-check skipped when the pod cannot be read",
			snap: with(func(s *netSnapshot) { s.Pods[tUID] = snapPod{Err: "no eth0 in /proc/1/ns/net"} }), pod: webUID,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "shop/web is on host interface veth1 (ifindex 4, MTU 1500, bridge cbr0; found by neighbour+fdb)"},
		},
		{
			name: "host interface admin down",
			snap: with(func(s *netSnapshot) { v := s.mustLink("veth1"); v.AdminUp, v.OperState = false, "down" }), pod: web,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "shop/web: host interface veth1 is down (down)", remedy: "ip link set veth1 up"},
		},
		{
			name: "host interface without carrier",
			snap: with(func(s *netSnapshot) { s.mustLink("veth1").OperState = "lower-layer-down" }), pod: web,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "shop/web: host interface veth1 is down (lower-layer-down)", remedy: "ip link set veth1 up"},
		},
		{
			name: "nothing found: no neighbour entry, no UID",
			snap: with(func(s *netSnapshot) { s.Neighbours = s.Neighbours[:1] }), pod: web,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web",
				msg:    "no host interface found for shop/web: no /32 route via a veth; no neighbour entry on cbr0 (entries appear only after traffic); no --pod-uid to enter the pod's network namespace",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "tried": []any{
					"no /32 route via a veth", "no neighbour entry on cbr0 (entries appear only after traffic)", "no --pod-uid to enter the pod's network namespace"}}},
		},
		{
			name: "nothing found: the entry is FAILED",
			snap: with(func(s *netSnapshot) { s.Neighbours[1].State = "FAILED" }), pod: web,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web",
				msg:    "no host interface found for shop/web: no /32 route via a veth; no neighbour entry on cbr0 (entries appear only after traffic); no --pod-uid to enter the pod's network namespace",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run"},
		},
		{
			name: "nothing found: the MAC is not in the FDB",
			snap: with(func(s *netSnapshot) { s.FDB = s.FDB[:1] }), pod: web,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web",
				msg:    "no host interface found for shop/web: no /32 route via a veth; MAC 0a:58:0a:f4:00:09 not in the FDB of cbr0; no --pod-uid to enter the pod's network namespace",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run"},
		},
		{
			name: "nothing found: the FDB port is not on the bridge",
			snap: with(func(s *netSnapshot) { s.mustLink("veth1").MasterIndex = 0 }), pod: web,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web",
				msg:    "no host interface found for shop/web: no /32 route via a veth; MAC 0a:58:0a:f4:00:09 not in the FDB of cbr0; no --pod-uid to enter the pod's network namespace",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run"},
		},
		{
			name: "nothing found: the pod cannot be read",
			snap: with(func(s *netSnapshot) { s.Pods[tUID] = snapPod{Err: "no process of pod UID x found"} }), pod: byUID,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web", msg: "no host interface found for shop/web: no process of pod UID x found",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run"},
		},
		{
			name: "nothing found: the pod's eth0 has no peer",
			snap: with(func(s *netSnapshot) { p := s.Pods[tUID]; p.PeerIndex = 0; s.Pods[tUID] = p }), pod: byUID,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web", msg: "no host interface found for shop/web: the pod's eth0 has no peer interface",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run"},
		},
		{
			name: "nothing found: the peer is in another namespace",
			snap: with(func(s *netSnapshot) { p := s.Pods[tUID]; p.PeerIndex = 99; s.Pods[tUID] = p }), pod: byUID,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web", msg: "no host interface found for shop/web: the pod's eth0 peer ifindex 99 is not in the node's namespace",
				remedy: "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := judgeVeth(tt.snap, tt.pod, "")
			if err != nil {
				t.Fatal(err)
			}
			tt.want.check(t, f)
		})
	}
}

func TestJudgeVethErrorsAndSkip(t *testing.T) {
	boom := errors.New("dump failed")
	pod := PodInfo{Name: "web", IP: net.ParseIP("10.244.0.9")}
	for name, tc := range map[string]struct {
		snap *netSnapshot
		want string
	}{
		"links":      {&netSnapshot{LinksErr: boom}, "veth: web: listing links: dump failed"},
		"routes":     {with(func(s *netSnapshot) { s.RoutesErr = boom }), "veth: web: listing routes: dump failed"},
		"neighbours": {with(func(s *netSnapshot) { s.NeighErr = boom }), "veth: web: listing neighbours: dump failed"},
		"fdb":        {with(func(s *netSnapshot) { s.FDBErr = boom }), "veth: web: listing the bridge FDB: dump failed"},
	} {
		if _, err := judgeVeth(tc.snap, pod, ""); err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %s", name, err, tc.want)
		}
	}
	fs, err := judgeVeths(bridgeSnap(), Config{})
	if err != nil || len(fs) != 1 || fs[0].Message != "veth check skipped: needs --pod-ip or --pod-uid (or --pods-json/--pod)" || string(fs[0].Data) != `{"skipped":true}` {
		t.Errorf("no targets: %v %+v", err, fs)
	}
	fs, err = judgeVeths(bridgeSnap(), Config{Pods: []PodInfo{{Name: "a", IP: net.ParseIP("10.244.0.9")}, {Name: "hostless"}, {Name: "b", UID: tUID}}})
	if err != nil || len(fs) != 2 || fs[0].Subject != "a" || fs[1].Subject != "b" {
		t.Errorf("two targets: %v %+v", err, fs)
	}
}

// fakeProbe records the probes and answers each with what answer says.
type fakeProbe struct {
	got    []neighProbe
	answer func(p neighProbe) probeResult
}

func (fp *fakeProbe) probe(_ context.Context, ps []neighProbe) []probeResult {
	fp.got = append(fp.got, ps...)
	out := make([]probeResult, len(ps))
	for i, p := range ps {
		out[i] = fp.answer(p)
	}
	return out
}

func replies(macs ...string) func(neighProbe) probeResult {
	return func(neighProbe) probeResult {
		r := probeResult{Sent: true, Waited: 60 * time.Millisecond}
		for i, m := range macs {
			r.Replies = append(r.Replies, neighReply{MAC: mustMAC(m), RTT: time.Duration(85+i) * time.Microsecond})
		}
		if len(macs) == 0 {
			r.Waited = time.Second
		}
		return r
	}
}

func TestJudgeARPSnapshot(t *testing.T) {
	podIP := net.ParseIP("10.244.0.9")
	web := PodInfo{Namespace: "shop", Name: "web", IP: podIP, UID: tUID}
	noUID := PodInfo{Namespace: "shop", Name: "web", IP: podIP}
	state := func(st, mac string) func(s *netSnapshot) {
		return func(s *netSnapshot) { s.Neighbours[1].State, s.Neighbours[1].MAC = st, mac }
	}
	bridgeProbe := &neighProbe{Ifindex: 3, Interface: "cbr0", SrcMAC: mustMAC(tBridgeMAC), SrcIP: net.ParseIP("10.244.0.1").To4(), Target: podIP}
	tests := []struct {
		name   string
		snap   *netSnapshot
		pod    PodInfo
		answer func(neighProbe) probeResult
		probe  *neighProbe // the probe expected (nil: none)
		want   wantFinding
	}{
		{
			name: "REACHABLE with the pod's MAC: no probe", snap: bridgeSnap(), pod: web,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "neighbour entry for 10.244.0.9 on cbr0: 0a:58:0a:f4:00:09 REACHABLE",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "layout": "bridge", "interface": "cbr0", "podMAC": tPodMAC, "podMACFrom": "pod-netns", "state": "REACHABLE", "mac": tPodMAC}},
		},
		{
			name: "REACHABLE with another MAC: fail, no probe", snap: with(state("REACHABLE", tOtherMAC)), pod: web,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "neighbour entry for 10.244.0.9 on cbr0 has MAC 02:00:00:00:00:99 but the pod's eth0 has 0a:58:0a:f4:00:09",
				remedy: "ip neigh del 10.244.0.9 dev cbr0 (a stale entry from an earlier pod with this IP)"},
		},
		{
			name: "PERMANENT with the caller's MAC, no UID", snap: with(state("PERMANENT", tOtherMAC)), pod: PodInfo{Name: "web", IP: podIP, MAC: tOtherMAC},
			want: wantFinding{sev: protocol.SeverityOK, subject: "web", msg: "neighbour entry for 10.244.0.9 on cbr0: 02:00:00:00:00:99 PERMANENT",
				data: map[string]any{"pod": "web", "podIP": "10.244.0.9", "layout": "bridge", "interface": "cbr0", "podMAC": tOtherMAC, "podMACFrom": "caller", "state": "PERMANENT", "mac": tOtherMAC}},
		},
		{
			name: "STALE: probed, the pod answers", snap: with(state("STALE", tPodMAC)), pod: web, answer: replies(tPodMAC), probe: bridgeProbe,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "ARP who-has 10.244.0.9 on cbr0 answered by the pod's eth0 (0a:58:0a:f4:00:09) in 85µs; the neighbour entry was STALE",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "layout": "bridge", "interface": "cbr0", "podMAC": tPodMAC, "podMACFrom": "pod-netns", "state": "STALE", "mac": tPodMAC,
					"probe": map[string]any{"protocol": "arp", "interface": "cbr0", "result": "match", "waitedMilliseconds": 60.0, "replyMAC": tPodMAC, "rttMicroseconds": 85.0,
						"sent":    map[string]any{"senderMAC": tBridgeMAC, "senderIP": "10.244.0.1", "targetIP": "10.244.0.9"},
						"replies": []any{map[string]any{"mac": tPodMAC, "rttMicroseconds": 85.0}}}}},
		},
		{
			name: "FAILED: probed, nobody answers", snap: with(state("FAILED", "")), pod: web, answer: replies(), probe: bridgeProbe,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web",
				msg:    "no reply within 1s to ARP who-has 10.244.0.9 tell 10.244.0.1, sent on cbr0 from 3e:00:00:00:00:01; the pod's eth0 has 0a:58:0a:f4:00:09; the neighbour entry was FAILED",
				remedy: "check that the pod's eth0 and its host veth are up and on cbr0 (veth check), and that the pod does not ignore ARP (ip link show eth0: NOARP; sysctl net.ipv4.conf.eth0.arp_ignore)",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "layout": "bridge", "interface": "cbr0", "podMAC": tPodMAC, "podMACFrom": "pod-netns", "state": "FAILED", "mac": "",
					"probe": map[string]any{"protocol": "arp", "interface": "cbr0", "result": "no-reply", "waitedMilliseconds": 1000.0, "replies": []any{},
						"sent": map[string]any{"senderMAC": tBridgeMAC, "senderIP": "10.244.0.1", "targetIP": "10.244.0.9"}}}},
		},
		{
			name: "FAILED and the bridge has no Ethernet MAC: not probed", snap: with(func(s *netSnapshot) { state("FAILED", "")(s); s.mustLink("cbr0").MAC = "" }), pod: web,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "neighbour entry for 10.244.0.9 on cbr0 is FAILED: the pod did not answer ARP (not probed: cbr0 has no Ethernet MAC address)",
				remedy: "check that the pod's veth is up and on the bridge (veth check); ip neigh flush 10.244.0.9"},
		},
		{
			name: "INCOMPLETE: the probe cannot be sent", snap: with(state("INCOMPLETE", "")), pod: web, probe: bridgeProbe,
			answer: func(neighProbe) probeResult {
				return probeResult{Err: errors.New("opening a packet socket (needs CAP_NET_RAW): operation not permitted")}
			},
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web",
				msg:    "neighbour entry for 10.244.0.9 on cbr0 is INCOMPLETE: resolution is in progress or unanswered (the ARP who-has 10.244.0.9 could not be sent on cbr0: opening a packet socket (needs CAP_NET_RAW): operation not permitted)",
				remedy: "re-run; if it stays INCOMPLETE, check the pod's veth (veth check)",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "layout": "bridge", "interface": "cbr0", "podMAC": tPodMAC, "podMACFrom": "pod-netns", "state": "INCOMPLETE", "mac": "",
					"probe": map[string]any{"protocol": "arp", "interface": "cbr0", "result": "not-sent", "error": "opening a packet socket (needs CAP_NET_RAW): operation not permitted"}}},
		},
		{
			name: "DELAY with an old MAC: probed, another MAC answers", snap: with(state("DELAY", tOtherMAC)), pod: web, answer: replies(tOtherMAC), probe: bridgeProbe,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web",
				msg:    "ARP who-has 10.244.0.9 tell 10.244.0.1 on cbr0 was answered by 02:00:00:00:00:99 in 85µs, but the pod's eth0 has 0a:58:0a:f4:00:09: another interface claims 10.244.0.9 and the pod did not answer",
				remedy: "find the interface with MAC 02:00:00:00:00:99 (bridge fdb show br cbr0 | grep -i 02:00:00:00:00:99) and remove the duplicate address; then check that the pod's eth0 and its host veth are up and on cbr0 (veth check), and that the pod does not ignore ARP (ip link show eth0: NOARP; sysctl net.ipv4.conf.eth0.arp_ignore)"},
		},
		{
			name: "no entry, no UID: the answer is not compared", snap: with(func(s *netSnapshot) { s.Neighbours = s.Neighbours[:1] }), pod: noUID, answer: replies(tOtherMAC), probe: bridgeProbe,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web",
				msg: "ARP who-has 10.244.0.9 on cbr0 answered by 02:00:00:00:00:99 in 85µs; there was no neighbour entry (the pod's eth0 MAC is unknown, not compared: no pod UID to find the pod's network namespace)"},
		},
		{
			name: "the pod's namespace cannot be read", snap: with(func(s *netSnapshot) {
				s.Neighbours = s.Neighbours[:1]
				s.Pods[tUID] = snapPod{Err: "no eth0 in /proc/9/ns/net"}
			}), pod: web, answer: replies(tPodMAC), probe: bridgeProbe,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web",
				msg: "ARP who-has 10.244.0.9 on cbr0 answered by 0a:58:0a:f4:00:09 in 85µs; there was no neighbour entry (the pod's eth0 MAC is unknown, not compared: no eth0 in /proc/9/ns/net)"},
		},
		{
			name: "routed: STALE entry on the veth, probed there", snap: routedSnap(), pod: PodInfo{Namespace: "shop", Name: "web", IP: net.ParseIP("10.244.1.5"), UID: tUID}, answer: replies(tPodMAC),
			probe: &neighProbe{Ifindex: 5, Interface: "cali1", SrcMAC: mustMAC("ee:ee:ee:ee:ee:ee"), Target: net.ParseIP("10.244.1.5")},
			want:  wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "ARP who-has 10.244.1.5 on cali1 answered by the pod's eth0 (0a:58:0a:f4:00:09) in 85µs; the neighbour entry was STALE"},
		},
		{
			name: "routed IPv6: solicitation from the veth's link-local address", snap: routedSnap(), pod: PodInfo{IP: net.ParseIP("fd00::5")}, answer: replies(tPodMAC),
			probe: &neighProbe{Ifindex: 5, Interface: "cali1", SrcMAC: mustMAC("ee:ee:ee:ee:ee:ee"), SrcIP: net.ParseIP("fe80::ecee:eeff:feee:eeee"), Target: net.ParseIP("fd00::5")},
			want:  wantFinding{sev: protocol.SeverityOK, subject: "fd00::5", msg: "neighbour solicitation for fd00::5 on cali1 answered by 0a:58:0a:f4:00:09 in 85µs; there was no neighbour entry (the pod's eth0 MAC is unknown, not compared: no pod UID to find the pod's network namespace)"},
		},
		{
			name: "no bridge, no route: the entry's interface, not probed",
			snap: &netSnapshot{
				Links:      []snapLink{{Name: "eth0", Index: 2, Type: "device", MTU: 1500, AdminUp: true, OperState: "up"}},
				Neighbours: []snapNeigh{{LinkIndex: 2, IP: netip.MustParseAddr("10.244.0.9"), MAC: tPodMAC, State: "STALE"}},
			}, pod: noUID,
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "neighbour entry for 10.244.0.9 on eth0: 0a:58:0a:f4:00:09 STALE (not probed: no bridge and no /32 route via a veth to send it on)",
				data: map[string]any{"pod": "shop/web", "podIP": "10.244.0.9", "interface": "eth0", "state": "STALE", "mac": tPodMAC,
					"probe": map[string]any{"result": "not-sent", "error": "no bridge and no /32 route via a veth to send it on"}}},
		},
		{
			name: "no bridge, no route, no entry",
			snap: &netSnapshot{Links: []snapLink{{Name: "eth0", Index: 2, Type: "device"}}}, pod: noUID,
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web", msg: "no neighbour entry for 10.244.0.9 on any interface (not probed: no bridge and no /32 route via a veth to send it on)",
				remedy: "send traffic to the pod from the node (e.g. a probe) and re-run"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := &fakeProbe{answer: tt.answer}
			if fp.answer == nil {
				fp.answer = func(p neighProbe) probeResult { t.Errorf("unexpected probe %+v", p); return probeResult{} }
			}
			cfg := Config{Pods: []PodInfo{tt.pod}}.withDefaults()
			fs, err := judgeARPs(context.Background(), tt.snap, cfg, fp.probe)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 1 {
				t.Fatalf("got %d findings", len(fs))
			}
			tt.want.check(t, fs[0])
			if tt.probe == nil {
				return
			}
			if len(fp.got) != 1 {
				t.Fatalf("probes sent: %+v", fp.got)
			}
			g, w := fp.got[0], *tt.probe
			if g.Ifindex != w.Ifindex || g.Interface != w.Interface || g.SrcMAC.String() != w.SrcMAC.String() || !g.SrcIP.Equal(w.SrcIP) || !g.Target.Equal(w.Target) {
				t.Errorf("probe\n got %+v\nwant %+v", g, w)
			}
		})
	}
}

func TestJudgeARPErrorsAndSkip(t *testing.T) {
	boom := errors.New("dump failed")
	cfg := Config{PodIP: net.ParseIP("10.244.0.9")}.withDefaults()
	none := func(context.Context, []neighProbe) []probeResult { t.Error("probed"); return nil }
	for name, tc := range map[string]struct {
		snap *netSnapshot
		want string
	}{
		"links":      {&netSnapshot{LinksErr: boom}, "arp: listing links: dump failed"},
		"routes":     {with(func(s *netSnapshot) { s.RoutesErr = boom }), "arp: listing routes: dump failed"},
		"neighbours": {with(func(s *netSnapshot) { s.NeighErr = boom }), "arp: listing neighbours: dump failed"},
	} {
		if _, err := judgeARPs(context.Background(), tc.snap, cfg, none); err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %s", name, err, tc.want)
		}
	}
	fs, err := judgeARPs(context.Background(), bridgeSnap(), Config{PodUID: tUID}.withDefaults(), none)
	if err != nil || len(fs) != 1 || fs[0].Message != "arp check skipped: needs the node's pods (--pods-json or --pod) or --pod-ip" {
		t.Errorf("no IPs: %v %+v", err, fs)
	}
}

func TestProbeSource(t *testing.T) {
	l := &snapLink{Addrs: []netip.Prefix{pfx("192.0.2.1/24"), pfx("10.244.0.1/24"), pfx("fe80::1/64"), pfx("fd00::1/64")}}
	for target, want := range map[string]string{
		"10.244.0.9":   "10.244.0.1", // the subnet holding the target
		"198.51.100.9": "192.0.2.1",  // else the first address
		"fd00::9":      "fd00::1",
		"2001:db8::9":  "fe80::1", // IPv6: else the link-local one
	} {
		if got := probeSource(l, net.ParseIP(target)); got.String() != want {
			t.Errorf("%s: got %s, want %s", target, got, want)
		}
	}
	if got := probeSource(&snapLink{Addrs: []netip.Prefix{pfx("fe80::1/64")}}, net.ParseIP("10.0.0.1")); got != nil {
		t.Errorf("no IPv4 address: got %s, want nil (0.0.0.0)", got)
	}
	if got := probeSource(&snapLink{Addrs: []netip.Prefix{pfx("fe80::2/64")}}, net.ParseIP("fd00::1")); got.String() != "fe80::2" {
		t.Errorf("only link-local: got %s", got)
	}
}

func TestOverlayOverhead(t *testing.T) {
	tun := func(name, typ, under string) snapLink {
		return snapLink{Name: name, Type: typ, AdminUp: true, OperState: "unknown", Underlay: under}
	}
	tests := []struct {
		name     string
		links    []snapLink
		fallback string
		want     overlay
		none     bool
	}{
		{name: "VXLAN over IPv4", links: []snapLink{tun("flannel.1", "vxlan", "ipv4")}, want: overlay{"flannel.1", "vxlan", "ipv4", 50}},
		{name: "VXLAN over IPv6", links: []snapLink{tun("vxlan-v6.calico", "vxlan", "ipv6")}, fallback: "ipv4", want: overlay{"vxlan-v6.calico", "vxlan", "ipv6", 70}},
		{name: "VXLAN without an address: the uplink's family", links: []snapLink{tun("cilium_vxlan", "vxlan", "")}, fallback: "ipv6", want: overlay{"cilium_vxlan", "vxlan", "ipv6", 70}},
		{name: "VXLAN, nothing known: IPv4", links: []snapLink{tun("cilium_vxlan", "vxlan", "")}, want: overlay{"cilium_vxlan", "vxlan", "ipv4", 50}},
		{name: "Geneve over IPv4", links: []snapLink{tun("genev_sys_6081", "geneve", "ipv4")}, want: overlay{"genev_sys_6081", "geneve", "ipv4", 50}},
		{name: "Geneve over IPv6", links: []snapLink{tun("cilium_geneve", "geneve", "ipv6")}, want: overlay{"cilium_geneve", "geneve", "ipv6", 70}},
		{name: "IPIP", links: []snapLink{tun("tunl0", "ipip", "")}, fallback: "ipv6", want: overlay{"tunl0", "ipip", "ipv4", 20}},
		{name: "WireGuard over IPv4", links: []snapLink{tun("wireguard.cali", "wireguard", "")}, fallback: "ipv4", want: overlay{"wireguard.cali", "wireguard", "ipv4", 60}},
		{name: "WireGuard over IPv6", links: []snapLink{tun("wg-v6.cali", "wireguard", "")}, fallback: "ipv6", want: overlay{"wg-v6.cali", "wireguard", "ipv6", 80}},
		{name: "known by name: flannel.1 of another type", links: []snapLink{tun("flannel.1", "device", "")}, want: overlay{"flannel.1", "device", "ipv4", 50}},
		{name: "known by name: tunl0", links: []snapLink{tun("tunl0", "ipip6", "")}, want: overlay{"tunl0", "ipip6", "ipv4", 20}},
		{name: "known by name: cilium_geneve over IPv6", links: []snapLink{tun("cilium_geneve", "device", "")}, fallback: "ipv6", want: overlay{"cilium_geneve", "device", "ipv6", 70}},
		{name: "the largest wins", links: []snapLink{tun("tunl0", "ipip", ""), tun("flannel.1", "vxlan", "ipv4"), tun("wg0", "wireguard", "ipv6")}, want: overlay{"wg0", "wireguard", "ipv6", 80}},
		{name: "the first of equals", links: []snapLink{tun("a", "vxlan", "ipv4"), tun("b", "geneve", "ipv4")}, want: overlay{"a", "vxlan", "ipv4", 50}},
		{name: "a down tunnel does not count", links: []snapLink{{Name: "flannel.1", Type: "vxlan", Underlay: "ipv4"}}, none: true},
		{name: "no tunnel", links: []snapLink{{Name: "eth0", Type: "device", AdminUp: true}}, none: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := overlayOverhead(tt.links, tt.fallback)
			if ok == tt.none || (ok && got != tt.want) {
				t.Errorf("got %+v %v, want %+v (none %v)", got, ok, tt.want, tt.none)
			}
		})
	}
}

func TestJudgeMTUPod(t *testing.T) {
	pod := PodInfo{Namespace: "shop", Name: "web", UID: strings.ToUpper(tUID)}
	podMTU := func(mtu int) func(s *netSnapshot) {
		return func(s *netSnapshot) { p := s.Pods[tUID]; p.MTU = mtu; s.Pods[tUID] = p }
	}
	vxlan := func(under string) func(s *netSnapshot) {
		return func(s *netSnapshot) {
			s.Links = append(s.Links, snapLink{Name: "flannel.1", Index: 9, Type: "vxlan", MTU: 1450, AdminUp: true, OperState: "unknown", Underlay: under})
		}
	}
	all := func(fs ...func(s *netSnapshot)) *netSnapshot {
		return with(func(s *netSnapshot) {
			for _, f := range fs {
				f(s)
			}
		})
	}
	tests := []struct {
		name     string
		snap     *netSnapshot
		expected int
		want     wantFinding
	}{
		{
			name: "above the path: the bridge", snap: all(func(s *netSnapshot) { s.mustLink("cbr0").MTU = 1400 }),
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "pod MTU 1500 is above the path MTU 1400 (bridge cbr0): large packets are dropped",
				remedy: `set the "mtu" of the pod network to 1400 in the CNI config (/etc/cni/net.d) and recreate the pods`,
				data: map[string]any{"pod": "shop/web", "podUID": tUID, "podInterface": "eth0", "podMTU": 1500.0, "pid": 4242.0,
					"hostInterface": "veth1", "hostMTU": 1500.0, "bridge": "cbr0", "bridgeMTU": 1400.0, "uplink": "eth0", "uplinkMTU": 1500.0,
					"expectedMTU": 1500.0, "pathMTU": 1400.0, "limitedBy": "bridge cbr0"}},
		},
		{
			name: "above the path: VXLAN over IPv4 takes 50", snap: all(vxlan("ipv4")),
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "pod MTU 1500 is above the path MTU 1450 (uplink eth0 minus 50 for flannel.1): large packets are dropped",
				remedy: `set the "mtu" of the pod network to 1450 in the CNI config (/etc/cni/net.d) and recreate the pods`,
				data: map[string]any{"pod": "shop/web", "podUID": tUID, "podInterface": "eth0", "podMTU": 1500.0, "pid": 4242.0,
					"hostInterface": "veth1", "hostMTU": 1500.0, "bridge": "cbr0", "bridgeMTU": 1500.0, "uplink": "eth0", "uplinkMTU": 1500.0,
					"overlay": "flannel.1", "overlayType": "vxlan", "overhead": 50.0, "overlayUnderlay": "ipv4",
					"expectedMTU": 1450.0, "pathMTU": 1450.0, "limitedBy": "uplink eth0 minus 50 for flannel.1"}},
		},
		{
			name: "fits VXLAN over IPv4", snap: all(vxlan("ipv4"), podMTU(1450)),
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "pod MTU 1450 fits the path MTU 1450 (uplink eth0 minus 50 for flannel.1)"},
		},
		{
			name: "VXLAN over IPv6 takes 70", snap: all(vxlan("ipv6"), podMTU(1450)),
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "pod MTU 1450 is above the path MTU 1430 (uplink eth0 minus 70 for flannel.1): large packets are dropped",
				remedy: `set the "mtu" of the pod network to 1430 in the CNI config (/etc/cni/net.d) and recreate the pods`},
		},
		{
			name: "WireGuard over IPv4 (the default route's family) takes 60",
			snap: all(podMTU(1440), func(s *netSnapshot) {
				s.Links = append(s.Links, snapLink{Name: "wireguard.cali", Index: 9, Type: "wireguard", MTU: 1440, AdminUp: true, OperState: "unknown"})
			}),
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "pod MTU 1440 fits the path MTU 1440 (uplink eth0 minus 60 for wireguard.cali)"},
		},
		{
			name: "WireGuard over IPv6 takes 80",
			snap: all(podMTU(1440), func(s *netSnapshot) {
				s.Routes[0].Dst = pfx("::/0")
				s.Links = append(s.Links, snapLink{Name: "wg0", Index: 9, Type: "wireguard", MTU: 1420, AdminUp: true, OperState: "unknown"})
			}),
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "pod MTU 1440 is above the path MTU 1420 (uplink eth0 minus 80 for wg0): large packets are dropped",
				remedy: `set the "mtu" of the pod network to 1420 in the CNI config (/etc/cni/net.d) and recreate the pods`},
		},
		{
			name: "Geneve takes 50", snap: all(podMTU(1450), func(s *netSnapshot) {
				s.Links = append(s.Links, snapLink{Name: "genev_sys_6081", Index: 9, Type: "geneve", MTU: 65000, AdminUp: true, OperState: "unknown", Underlay: "ipv4"})
			}),
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "pod MTU 1450 fits the path MTU 1450 (uplink eth0 minus 50 for genev_sys_6081)"},
		},
		{
			name: "IPIP takes 20", snap: all(podMTU(1480), func(s *netSnapshot) {
				s.Links = append(s.Links, snapLink{Name: "tunl0", Index: 9, Type: "ipip", MTU: 1480, AdminUp: true, OperState: "unknown"})
			}),
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "pod MTU 1480 fits the path MTU 1480 (uplink eth0 minus 20 for tunl0)"},
		},
		{
			name: "well below the path", snap: all(podMTU(1300)),
			want: wantFinding{sev: protocol.SeverityInfo, subject: "shop/web", msg: "pod MTU 1300 is 200 below the path MTU 1500 (host veth veth1): it works, with more packets than needed"},
		},
		{
			name: "exactly 100 below still fits", snap: all(podMTU(1400)),
			want: wantFinding{sev: protocol.SeverityOK, subject: "shop/web", msg: "pod MTU 1400 fits the path MTU 1500 (host veth veth1)"},
		},
		{
			name: "--expected-mtu limits the path", snap: all(podMTU(1450)), expected: 1400,
			want: wantFinding{sev: protocol.SeverityFail, subject: "shop/web", msg: "pod MTU 1450 is above the path MTU 1400 (--expected-mtu): large packets are dropped",
				remedy: `set the "mtu" of the pod network to 1400 in the CNI config (/etc/cni/net.d) and recreate the pods`},
		},
		{
			name: "no hops to compare with",
			snap: all(func(s *netSnapshot) { p := s.Pods[tUID]; p.PeerIndex = 0; s.Pods[tUID] = p; s.Routes = nil }),
			want: wantFinding{sev: protocol.SeverityInfo, subject: "shop/web", msg: "pod MTU 1500; no host veth, bridge, default route or --expected-mtu to compare it with",
				data: map[string]any{"pod": "shop/web", "podUID": tUID, "podInterface": "eth0", "podMTU": 1500.0, "pid": 4242.0}},
		},
		{
			name: "the pod's namespace cannot be read", snap: all(func(s *netSnapshot) { s.Pods[tUID] = snapPod{Err: "no eth0 in /proc/9/ns/net"} }),
			want: wantFinding{sev: protocol.SeverityWarn, subject: "shop/web", msg: "cannot read the pod's MTU: no eth0 in /proc/9/ns/net",
				data: map[string]any{"pod": "shop/web", "podUID": tUID, "error": "no eth0 in /proc/9/ns/net"}},
		},
		{
			name: "hostNetwork pod", snap: all(func(s *netSnapshot) {
				s.Pods[tUID] = snapPod{PID: 1, HostNetwork: true, Err: "pod UID " + tUID + " uses the node's network namespace (hostNetwork)"}
			}),
			want: wantFinding{sev: protocol.SeverityInfo, subject: "shop/web", msg: "cannot read the pod's MTU: pod UID " + tUID + " uses the node's network namespace (hostNetwork)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := judgeMTU(tt.snap, Config{Pods: []PodInfo{pod}, ExpectedMTU: tt.expected})
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 1 {
				t.Fatalf("got %d findings: %+v", len(fs), fs)
			}
			tt.want.check(t, fs[0])
		})
	}
}

func TestJudgeMTUErrors(t *testing.T) {
	boom := errors.New("dump failed")
	if _, err := judgeMTU(&netSnapshot{LinksErr: boom}, Config{}); err == nil || err.Error() != "mtu: listing links: dump failed" {
		t.Errorf("links: %v", err)
	}
	if _, err := judgeMTU(with(func(s *netSnapshot) { s.RoutesErr = boom }), Config{}); err == nil || err.Error() != "mtu: default route: dump failed" {
		t.Errorf("routes: %v", err)
	}
}

func TestJudgeMTUNode(t *testing.T) {
	flannel := snapLink{Name: "flannel.1", Index: 9, Type: "vxlan", MTU: 1450, AdminUp: true, OperState: "unknown", Underlay: "ipv4"}
	tests := []struct {
		name     string
		snap     *netSnapshot
		cfg      Config
		want     []wantFinding
		skipped  bool
		veths    []string // data.hostVeths of the summary
		noPodsIn bool
	}{
		{
			name: "no pods: the bridge fits", snap: with(func(s *netSnapshot) { s.Links = s.Links[:3] }),
			want: []wantFinding{{sev: protocol.SeverityOK, subject: "node", msg: "bridge cbr0 (MTU 1500) fits the path MTU 1500 (uplink eth0); no pod UID given, so no pod's eth0 was read",
				data: map[string]any{"scope": "node", "uplink": "eth0", "uplinkMTU": 1500.0, "expectedMTU": 1500.0, "pathMTU": 1500.0, "limitedBy": "uplink eth0", "bridge": "cbr0", "bridgeMTU": 1500.0}}},
		},
		{
			name: "--pod-ip only: bridge and host veth fit", snap: bridgeSnap(), cfg: Config{PodIP: net.ParseIP("10.244.0.9")},
			want:  []wantFinding{{sev: protocol.SeverityOK, subject: "node", msg: "bridge cbr0 (MTU 1500) and 1 host veth (MTU 1500) fit the path MTU 1500 (uplink eth0); no pod UID given, so no pod's eth0 was read"}},
			veths: []string{"veth1"},
		},
		{
			name: "VXLAN: the bridge and its veth above the path",
			snap: with(func(s *netSnapshot) { s.Links = append(s.Links, flannel) }),
			want: []wantFinding{
				{sev: protocol.SeverityFail, subject: "cbr0", msg: "bridge cbr0 MTU 1500 is above the path MTU 1450 (uplink eth0 minus 50 for flannel.1): pods on it can send packets the path drops",
					remedy: `set the "mtu" of the pod network to 1450 in the CNI config (/etc/cni/net.d) and recreate the pods; ip link set cbr0 mtu 1450`,
					data: map[string]any{"scope": "node", "uplink": "eth0", "uplinkMTU": 1500.0, "overlay": "flannel.1", "overlayType": "vxlan", "overhead": 50.0, "overlayUnderlay": "ipv4",
						"expectedMTU": 1450.0, "pathMTU": 1450.0, "limitedBy": "uplink eth0 minus 50 for flannel.1", "bridge": "cbr0", "bridgeMTU": 1500.0}},
				{sev: protocol.SeverityFail, subject: "veth1", msg: "host veth veth1 MTU 1500 is above the path MTU 1450 (uplink eth0 minus 50 for flannel.1): its pod's eth0 has the same MTU and its large packets are dropped",
					remedy: `set the "mtu" of the pod network to 1450 in the CNI config (/etc/cni/net.d) and recreate the pods`,
					data: map[string]any{"scope": "node", "uplink": "eth0", "uplinkMTU": 1500.0, "overlay": "flannel.1", "overlayType": "vxlan", "overhead": 50.0, "overlayUnderlay": "ipv4",
						"expectedMTU": 1450.0, "pathMTU": 1450.0, "limitedBy": "uplink eth0 minus 50 for flannel.1", "bridge": "cbr0", "bridgeMTU": 1500.0, "hostInterface": "veth1", "hostMTU": 1500.0}},
			},
		},
		{
			name:  "routed: two veths of /32 routes fit",
			snap:  routedSnap(),
			want:  []wantFinding{{sev: protocol.SeverityOK, subject: "node", msg: "2 host veths (MTU 1440-1450) fit the path MTU 1450 (uplink eth0 minus 50 for vxlan.calico); no pod UID given, so no pod's eth0 was read"}},
			veths: []string{"cali1", "cali2"},
		},
		{
			name: "routed: one veth above the path",
			snap: func() *netSnapshot { s := routedSnap(); s.mustLink("cali2").MTU = 1500; return s }(),
			want: []wantFinding{{sev: protocol.SeverityFail, subject: "cali2", msg: "host veth cali2 MTU 1500 is above the path MTU 1450 (uplink eth0 minus 50 for vxlan.calico): its pod's eth0 has the same MTU and its large packets are dropped",
				remedy: `set the "mtu" of the pod network to 1450 in the CNI config (/etc/cni/net.d) and recreate the pods`}},
		},
		{
			name: "the uplink cannot carry --expected-mtu",
			snap: with(func(s *netSnapshot) { s.Links = append(s.Links, flannel) }), cfg: Config{ExpectedMTU: 1500},
			want: []wantFinding{{sev: protocol.SeverityFail, subject: "eth0",
				msg:    "uplink eth0 MTU 1500 minus 50 for flannel.1 leaves 1450, below --expected-mtu 1500: pods at that MTU send packets the uplink drops",
				remedy: `set --expected-mtu and the "mtu" of the pod network in the CNI config (/etc/cni/net.d) to 1450, or raise the MTU of eth0`,
				data: map[string]any{"scope": "node", "uplink": "eth0", "uplinkMTU": 1500.0, "overlay": "flannel.1", "overlayType": "vxlan", "overhead": 50.0, "overlayUnderlay": "ipv4",
					"expectedMTU": 1500.0, "pathMTU": 1450.0, "limitedBy": "uplink eth0"}}},
		},
		{
			name: "--expected-mtu below everything: all fits",
			snap: bridgeSnap(), cfg: Config{ExpectedMTU: 1500},
			want:  []wantFinding{{sev: protocol.SeverityOK, subject: "node", msg: "bridge cbr0 (MTU 1500) and 1 host veth (MTU 1500) fit the path MTU 1500 (--expected-mtu); no pod UID given, so no pod's eth0 was read"}},
			veths: []string{"veth1"},
		},
		{
			name: "the uplink veth is not a pod's",
			snap: &netSnapshot{
				Links: []snapLink{
					{Name: "uplink0", Index: 2, Type: "veth", MTU: 9000, AdminUp: true, OperState: "up"},
					{Name: "vethr0", Index: 3, Type: "veth", MTU: 1500, AdminUp: true, OperState: "up"},
				},
				Routes: []snapRoute{{Dst: pfx("0.0.0.0/0"), LinkIndex: 2}, {Dst: pfx("203.0.113.2/32"), LinkIndex: 2}, {Dst: pfx("198.51.100.10/32"), LinkIndex: 3}},
			},
			want:  []wantFinding{{sev: protocol.SeverityOK, subject: "node", msg: "1 host veth (MTU 1500) fits the path MTU 9000 (uplink uplink0); no pod UID given, so no pod's eth0 was read"}},
			veths: []string{"vethr0"},
		},
		{
			name: "no bridge, no pod veth",
			snap: &netSnapshot{Links: []snapLink{{Name: "eth0", Index: 2, Type: "device", MTU: 1500, AdminUp: true}}, Routes: []snapRoute{{Dst: pfx("::/0"), LinkIndex: 2}}},
			want: []wantFinding{{sev: protocol.SeverityInfo, subject: "node", msg: "no bridge and no pod veth on this node to compare with the path MTU 1500 (uplink eth0)",
				data: map[string]any{"scope": "node", "uplink": "eth0", "uplinkMTU": 1500.0, "expectedMTU": 1500.0, "pathMTU": 1500.0, "limitedBy": "uplink eth0"}}},
		},
		{
			name: "a default route without an interface is passed over",
			snap: &netSnapshot{
				Links:  []snapLink{{Name: "eth0", Index: 2, Type: "device", MTU: 9000, AdminUp: true}, {Name: "eth1", Index: 3, Type: "device", MTU: 1500, AdminUp: true}},
				Routes: []snapRoute{{Dst: pfx("0.0.0.0/0")}, {Dst: pfx("0.0.0.0/0"), LinkIndex: 42}, {Dst: pfx("10.0.0.0/8"), LinkIndex: 2}, {Dst: pfx("::/0"), LinkIndex: 3}},
			},
			want: []wantFinding{{sev: protocol.SeverityInfo, subject: "node", msg: "no bridge and no pod veth on this node to compare with the path MTU 1500 (uplink eth1)"}},
		},
		{
			name: "no default route, no --expected-mtu: skipped",
			snap: with(func(s *netSnapshot) { s.Routes = nil }), skipped: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := judgeMTU(tt.snap, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.skipped {
				if len(fs) != 1 || fs[0].Severity != protocol.SeverityInfo || string(fs[0].Data) != `{"skipped":true}` ||
					fs[0].Message != "mtu check skipped: needs --pod-uid (or --pods-json/--pod entries with UIDs) to read the pod's eth0, or a default route or --expected-mtu to judge the node's interfaces" {
					t.Errorf("got %+v", fs)
				}
				return
			}
			if len(fs) != len(tt.want) {
				t.Fatalf("got %d findings, want %d: %+v", len(fs), len(tt.want), fs)
			}
			for i := range fs {
				if fs[i].Check != CheckMTU {
					t.Errorf("check %q", fs[i].Check)
				}
				tt.want[i].check(t, fs[i])
			}
			if tt.veths != nil {
				var d protocol.MTUData
				if err := fs[len(fs)-1].DecodeData(&d); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, v := range d.HostVeths {
					got = append(got, v.Name)
				}
				if !cmp.Equal(got, tt.veths) {
					t.Errorf("hostVeths %v, want %v", got, tt.veths)
				}
			}
		})
	}
}

// testdata/net/flannel-node.json is a VXLAN (flannel) node with a bridge,
// two pods and an IPv6 default route next to the IPv4 one, as the gather
// would read it.
func TestJudgeFixtureFlannelNode(t *testing.T) {
	b, err := os.ReadFile("testdata/net/flannel-node.json")
	if err != nil {
		t.Fatal(err)
	}
	var s netSnapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Pods: []PodInfo{
		{Namespace: "shop", Name: "web", UID: "11111111-2222-3333-4444-555555555555", IP: net.ParseIP("10.244.0.5")},
		{Namespace: "shop", Name: "db", UID: "66666666-7777-8888-9999-000000000000", IP: net.ParseIP("10.244.0.6")},
	}}.withDefaults()
	var fs []protocol.Finding
	f, err := judgeBridge(&s, "")
	if err != nil {
		t.Fatal(err)
	}
	fs = append(fs, f)
	for _, j := range []func() ([]protocol.Finding, error){
		func() ([]protocol.Finding, error) { return judgeVeths(&s, cfg) },
		func() ([]protocol.Finding, error) {
			return judgeARPs(context.Background(), &s, cfg, (&fakeProbe{answer: replies("0a:58:0a:f4:00:06")}).probe)
		},
		func() ([]protocol.Finding, error) { return judgeMTU(&s, cfg) },
	} {
		more, err := j()
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, more...)
	}
	var got []string
	for _, f := range fs {
		got = append(got, string(f.Severity)+" "+f.Check+" "+f.Subject+": "+f.Message)
	}
	want := []string{
		"ok bridge cni0: bridge cni0 is up with [10.244.0.1/24] and 2 ports (2 up)",
		"ok veth shop/web: shop/web is on host interface veth5a5a (ifindex 6, MTU 1450, bridge cni0; found by neighbour+fdb)",
		"fail veth shop/db: shop/db: the neighbour+fdb points to host interface veth5a5a (ifindex 6) but the pod's eth0 is paired with ifindex 7",
		"ok arp shop/web: neighbour entry for 10.244.0.5 on cni0: 0a:58:0a:f4:00:05 REACHABLE",
		"fail arp shop/db: neighbour entry for 10.244.0.6 on cni0 has MAC 0a:58:0a:f4:00:05 but the pod's eth0 has 0a:58:0a:f4:00:06",
		"ok mtu shop/web: pod MTU 1450 fits the path MTU 1450 (host veth veth5a5a)",
		"fail mtu shop/db: pod MTU 1500 is above the path MTU 1450 (host veth vethdbdb): large packets are dropped",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}
}
