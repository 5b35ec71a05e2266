package checks

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestARPRequestFrame(t *testing.T) {
	src := mustMAC("02:00:00:00:00:01")
	b, err := arpRequestFrame(src, net.ParseIP("192.0.2.1"), net.ParseIP("192.0.2.10"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet
		0, 1, 0x08, 0x00, 6, 4, 0, 1, // Ethernet/IPv4, request
		2, 0, 0, 0, 0, 1, 192, 0, 2, 1, // sender
		0, 0, 0, 0, 0, 0, 192, 0, 2, 10, // target
	}
	if len(b) != 60 || !bytes.Equal(b[:len(want)], want) || !bytes.Equal(b[len(want):], make([]byte, 60-len(want))) {
		t.Errorf("frame\n got % x\nwant % x + padding", b, want)
	}
	// An ARP probe says 0.0.0.0; a request is not a reply.
	b, _ = arpRequestFrame(src, nil, net.ParseIP("192.0.2.10"))
	if !bytes.Equal(b[28:32], []byte{0, 0, 0, 0}) {
		t.Errorf("probe sender % x", b[28:32])
	}
	if _, _, ok := parseARPReply(b); ok {
		t.Errorf("a request parsed as a reply")
	}
	for _, bad := range []struct {
		mac     net.HardwareAddr
		src, ip string
	}{{nil, "192.0.2.1", "192.0.2.10"}, {src, "192.0.2.1", "2001:db8::1"}, {src, "2001:db8::1", "192.0.2.10"}} {
		if _, err := arpRequestFrame(bad.mac, net.ParseIP(bad.src), net.ParseIP(bad.ip)); err == nil {
			t.Errorf("%v %s %s: no error", bad.mac, bad.src, bad.ip)
		}
	}
}

func TestParseARPReply(t *testing.T) {
	reply := []byte{
		2, 0, 0, 0, 0, 1, 0x0a, 0x58, 0x0a, 0xf4, 0, 9, 0x08, 0x06,
		0, 1, 0x08, 0x00, 6, 4, 0, 2,
		0x0a, 0x58, 0x0a, 0xf4, 0, 9, 10, 244, 0, 9, // sender: the pod
		2, 0, 0, 0, 0, 1, 10, 244, 0, 1,
	}
	ip, mac, ok := parseARPReply(reply)
	if !ok || ip.String() != "10.244.0.9" || mac.String() != "0a:58:0a:f4:00:09" {
		t.Errorf("got %v %v %v", ip, mac, ok)
	}
	for _, cut := range []int{0, 14, 41} {
		if _, _, ok := parseARPReply(reply[:cut]); ok {
			t.Errorf("%d bytes parsed", cut)
		}
	}
	other := append([]byte(nil), reply...)
	other[12], other[13] = 0x86, 0xdd
	if _, _, ok := parseARPReply(other); ok {
		t.Errorf("an IPv6 frame parsed as ARP")
	}
}

func TestNeighSolicitFrame(t *testing.T) {
	src := mustMAC("02:00:00:00:00:01")
	from, target := net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::ab:cdef")
	b, err := neighSolicitFrame(src, from, target)
	if err != nil {
		t.Fatal(err)
	}
	if got := net.HardwareAddr(b[0:6]).String(); got != "33:33:ff:ab:cd:ef" {
		t.Errorf("destination MAC %s", got)
	}
	if binary.BigEndian.Uint16(b[12:14]) != etherTypeIPv6 || b[14]>>4 != 6 || b[20] != 58 || b[21] != 255 {
		t.Errorf("IPv6 header % x", b[14:54])
	}
	if got := net.IP(b[38:54]).String(); got != "ff02::1:ffab:cdef" {
		t.Errorf("destination %s", got)
	}
	// The same message marshalled by x/net/icmp, checksum included.
	body := make([]byte, 20)
	copy(body[4:20], target)
	body = append(body, 1, 1, 2, 0, 0, 0, 0, 1)
	m := icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: body}}
	want, err := m.Marshal(icmp.IPv6PseudoHeader(from, net.ParseIP("ff02::1:ffab:cdef")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[54:], want) || int(binary.BigEndian.Uint16(b[18:20])) != len(want) {
		t.Errorf("ICMPv6\n got % x\nwant % x", b[54:], want)
	}
	// From :: (no address on the interface): no source link-layer option.
	b, _ = neighSolicitFrame(src, nil, target)
	if len(b) != 14+40+24 || !net.IP(b[22:38]).Equal(net.IPv6unspecified) {
		t.Errorf("unspecified source: % x", b)
	}
	if _, err := neighSolicitFrame(src, from, net.ParseIP("192.0.2.1")); err == nil {
		t.Errorf("IPv4 target accepted")
	}
}

// naFrame is a neighbour advertisement for target from srcMAC, with a
// target link-layer option when tll is set.
func naFrame(srcMAC net.HardwareAddr, target net.IP, tll net.HardwareAddr) []byte {
	msg := make([]byte, 24)
	msg[0] = icmpv6NeighAdvert
	msg[4] = 0x60
	copy(msg[8:24], target)
	if tll != nil {
		msg = append(msg, ndOptTargetLLAddr, 1)
		msg = append(msg, tll...)
	}
	b := make([]byte, 54)
	copy(b[0:6], mustMAC("02:00:00:00:00:01"))
	copy(b[6:12], srcMAC)
	b[12], b[13] = 0x86, 0xdd
	b[14] = 0x60
	binary.BigEndian.PutUint16(b[18:20], uint16(len(msg)))
	b[20], b[21] = 58, 255
	copy(b[22:38], target)
	copy(b[38:54], net.ParseIP("2001:db8::1"))
	return append(b, msg...)
}

func TestParseNeighAdvert(t *testing.T) {
	target := net.ParseIP("2001:db8::10")
	ip, mac, ok := parseNeighAdvert(naFrame(mustMAC("0a:00:00:00:00:10"), target, mustMAC("0a:00:00:00:00:99")))
	if !ok || !ip.Equal(target) || mac.String() != "0a:00:00:00:00:99" {
		t.Errorf("with option: %v %v %v", ip, mac, ok)
	}
	ip, mac, ok = parseNeighAdvert(naFrame(mustMAC("0a:00:00:00:00:10"), target, nil))
	if !ok || !ip.Equal(target) || mac.String() != "0a:00:00:00:00:10" {
		t.Errorf("without option: %v %v %v", ip, mac, ok)
	}
	ns, _ := neighSolicitFrame(mustMAC("02:00:00:00:00:01"), net.ParseIP("2001:db8::1"), target)
	if _, _, ok := parseNeighAdvert(ns); ok {
		t.Errorf("a solicitation parsed as an advertisement")
	}
	short := naFrame(mustMAC("0a:00:00:00:00:10"), target, nil)
	if _, _, ok := parseNeighAdvert(short[:70]); ok {
		t.Errorf("a cut frame parsed")
	}
}

func TestProbeCollector(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pod, other := mustMAC("0a:00:00:00:00:10"), mustMAC("0a:00:00:00:00:99")
	c := newProbeCollector([]neighProbe{
		{Ifindex: 4, Interface: "cbr0", Target: net.ParseIP("10.244.0.10")},
		{Ifindex: 4, Interface: "cbr0", Target: net.ParseIP("10.244.0.11")},
		{Ifindex: 9, Interface: "veth1", Target: net.ParseIP("10.244.0.12")},
	})
	c.sent(0, t0, nil)
	c.sent(1, t0, nil)
	c.sent(2, time.Time{}, errors.New("network is down"))
	if c.done() {
		t.Fatal("done before any answer")
	}
	c.reply(4, net.ParseIP("10.244.0.10"), pod, t0.Add(80*time.Microsecond))
	c.reply(4, net.ParseIP("10.244.0.10"), pod, t0.Add(90*time.Microsecond))    // the same MAC again
	c.reply(9, net.ParseIP("10.244.0.11"), other, t0.Add(90*time.Microsecond))  // another interface
	c.reply(4, net.ParseIP("10.244.0.99"), other, t0.Add(90*time.Microsecond))  // nobody asked
	c.reply(9, net.ParseIP("10.244.0.12"), other, t0.Add(100*time.Microsecond)) // not sent
	if c.done() {
		t.Fatal("done with 10.244.0.11 unanswered")
	}
	c.reply(4, net.ParseIP("10.244.0.11"), other, t0.Add(time.Millisecond))
	c.reply(4, net.ParseIP("10.244.0.11"), pod, t0.Add(2*time.Millisecond))
	if !c.done() {
		t.Fatal("not done with every sent probe answered")
	}
	rs := c.finish(t0.Add(50 * time.Millisecond))
	if len(rs[0].Replies) != 1 || rs[0].Replies[0].RTT != 80*time.Microsecond || rs[0].Waited != 50*time.Millisecond {
		t.Errorf("probe 0: %+v", rs[0])
	}
	if len(rs[1].Replies) != 2 || rs[1].Replies[0].MAC.String() != other.String() || rs[1].Replies[1].MAC.String() != pod.String() {
		t.Errorf("probe 1: %+v", rs[1])
	}
	if rs[2].Sent || rs[2].Err == nil || len(rs[2].Replies) != 0 {
		t.Errorf("probe 2: %+v", rs[2])
	}
}

func TestJudgeARP(t *testing.T) {
	const podMAC, otherMAC = "0a:58:0a:f4:00:09", "02:00:00:00:00:99"
	ip := net.ParseIP("10.244.0.9")
	probe := &neighProbe{Ifindex: 4, Interface: "cbr0", SrcMAC: mustMAC("3e:00:00:00:00:01"), SrcIP: net.ParseIP("10.244.0.1"), Target: ip}
	probe6 := &neighProbe{Ifindex: 4, Interface: "cbr0", SrcMAC: mustMAC("3e:00:00:00:00:01"), SrcIP: net.ParseIP("fe80::1"), Target: net.ParseIP("fd00::9")}
	answered := func(macs ...string) probeResult {
		r := probeResult{Sent: true, Waited: 60 * time.Millisecond}
		for i, m := range macs {
			r.Replies = append(r.Replies, neighReply{MAC: mustMAC(m), RTT: time.Duration(85+i) * time.Microsecond})
		}
		if len(macs) == 0 {
			r.Waited = time.Second
		}
		return r
	}
	base := arpObservation{Subject: "shop/web", IP: ip, Where: "cbr0", Want: podMAC, WantFrom: "pod-netns", Wait: time.Second}
	with := func(f func(o *arpObservation)) arpObservation {
		o := base
		f(&o)
		return o
	}
	tests := []struct {
		name     string
		obs      arpObservation
		sev      protocol.Severity
		msg      string
		remedy   string // substring
		result   string // data.probe.result
		replyMAC string
	}{
		{
			name: "reachable entry with the pod's MAC: no probe",
			obs:  with(func(o *arpObservation) { o.Entry = &neighEntry{MAC: podMAC, State: "REACHABLE"} }),
			sev:  protocol.SeverityOK, msg: "neighbour entry for 10.244.0.9 on cbr0: 0a:58:0a:f4:00:09 REACHABLE",
		},
		{
			name: "permanent entry with another MAC",
			obs:  with(func(o *arpObservation) { o.Entry = &neighEntry{MAC: otherMAC, State: "PERMANENT"} }),
			sev:  protocol.SeverityFail, msg: "neighbour entry for 10.244.0.9 on cbr0 has MAC 02:00:00:00:00:99 but the pod's eth0 has 0a:58:0a:f4:00:09",
			remedy: "ip neigh del 10.244.0.9 dev cbr0",
		},
		{
			name: "no entry, the pod answers",
			obs:  with(func(o *arpObservation) { o.Probe, o.Result = probe, answered(podMAC) }),
			sev:  protocol.SeverityOK, msg: "ARP who-has 10.244.0.9 on cbr0 answered by the pod's eth0 (0a:58:0a:f4:00:09) in 85µs; there was no neighbour entry",
			result: "match", replyMAC: podMAC,
		},
		{
			name: "stale entry of an earlier pod, the pod answers",
			obs: with(func(o *arpObservation) {
				o.Entry, o.Probe, o.Result = &neighEntry{MAC: otherMAC, State: "STALE"}, probe, answered(podMAC)
			}),
			sev: protocol.SeverityOK, msg: "ARP who-has 10.244.0.9 on cbr0 answered by the pod's eth0 (0a:58:0a:f4:00:09) in 85µs; the neighbour entry was STALE with MAC 02:00:00:00:00:99, from an earlier interface with this IP",
			result: "match", replyMAC: podMAC,
		},
		{
			name: "failed entry, nobody answers",
			obs: with(func(o *arpObservation) {
				o.Entry, o.Probe, o.Result = &neighEntry{State: "FAILED"}, probe, answered()
			}),
			sev: protocol.SeverityFail, msg: "no reply within 1s to ARP who-has 10.244.0.9 tell 10.244.0.1, sent on cbr0 from 3e:00:00:00:00:01; the pod's eth0 has 0a:58:0a:f4:00:09; the neighbour entry was FAILED",
			remedy: "are up and on cbr0 (veth check)", result: "no-reply",
		},
		{
			name: "another MAC answers",
			obs:  with(func(o *arpObservation) { o.Probe, o.Result = probe, answered(otherMAC) }),
			sev:  protocol.SeverityFail, msg: "ARP who-has 10.244.0.9 tell 10.244.0.1 on cbr0 was answered by 02:00:00:00:00:99 in 85µs, but the pod's eth0 has 0a:58:0a:f4:00:09: another interface claims 10.244.0.9 and the pod did not answer",
			remedy: "find the interface with MAC 02:00:00:00:00:99 (bridge fdb show br cbr0 | grep -i 02:00:00:00:00:99)", result: "other-mac", replyMAC: otherMAC,
		},
		{
			name: "another MAC answers on a routed veth",
			obs: with(func(o *arpObservation) {
				p := *probe
				p.Interface = "cali12345"
				o.Where, o.Routed, o.Probe, o.Result = "cali12345", true, &p, answered(otherMAC)
			}),
			sev:    protocol.SeverityFail,
			msg:    "ARP who-has 10.244.0.9 tell 10.244.0.1 on cali12345 was answered by 02:00:00:00:00:99 in 85µs, but the pod's eth0 has 0a:58:0a:f4:00:09: another interface claims 10.244.0.9 and the pod did not answer",
			remedy: "the /32 route for 10.244.0.9 via cali12345 leads to another interface", result: "other-mac", replyMAC: otherMAC,
		},
		{
			name: "the pod and another MAC answer",
			obs:  with(func(o *arpObservation) { o.Probe, o.Result = probe, answered(otherMAC, podMAC) }),
			sev:  protocol.SeverityFail, msg: "ARP who-has 10.244.0.9 tell 10.244.0.1 on cbr0 was answered by the pod's eth0 (0a:58:0a:f4:00:09) and also by 02:00:00:00:00:99: several interfaces claim 10.244.0.9",
			remedy: "remove the duplicate address", result: "conflict", replyMAC: otherMAC,
		},
		{
			name: "unknown pod MAC, one answer",
			obs: with(func(o *arpObservation) {
				o.Want, o.WantFrom, o.WantUnknown, o.Probe, o.Result = "", "", "no pod UID to find the pod's network namespace", probe, answered(otherMAC)
			}),
			sev: protocol.SeverityOK, msg: "ARP who-has 10.244.0.9 on cbr0 answered by 02:00:00:00:00:99 in 85µs; there was no neighbour entry (the pod's eth0 MAC is unknown, not compared: no pod UID to find the pod's network namespace)",
			result: "reply", replyMAC: otherMAC,
		},
		{
			name: "unknown pod MAC, two answers",
			obs: with(func(o *arpObservation) {
				o.Want, o.WantFrom, o.Probe, o.Result = "", "", probe, answered(otherMAC, podMAC)
			}),
			sev: protocol.SeverityFail, msg: "ARP who-has 10.244.0.9 tell 10.244.0.1 on cbr0 was answered by 02:00:00:00:00:99, 0a:58:0a:f4:00:09: several interfaces claim 10.244.0.9",
			result: "conflict", replyMAC: otherMAC,
		},
		{
			name: "the probe could not be sent, no entry",
			obs: with(func(o *arpObservation) {
				o.Probe, o.Result = probe, probeResult{Err: errors.New("opening a packet socket (needs CAP_NET_RAW): operation not permitted")}
			}),
			sev: protocol.SeverityWarn, msg: "no neighbour entry for 10.244.0.9 on cbr0 (the ARP who-has 10.244.0.9 could not be sent on cbr0: opening a packet socket (needs CAP_NET_RAW): operation not permitted)",
			result: "not-sent",
		},
		{
			name: "the probe could not be sent, stale entry with the pod's MAC",
			obs: with(func(o *arpObservation) {
				o.Entry, o.Probe, o.Result = &neighEntry{MAC: podMAC, State: "STALE"}, probe, probeResult{Err: errors.New("network is down")}
			}),
			sev: protocol.SeverityOK, msg: "neighbour entry for 10.244.0.9 on cbr0: 0a:58:0a:f4:00:09 STALE (the ARP who-has 10.244.0.9 could not be sent on cbr0: network is down)",
			result: "not-sent",
		},
		{
			name: "nothing to send it on",
			obs: with(func(o *arpObservation) {
				o.Where, o.NoProbe = "any interface", "no bridge and no /32 route via a veth to send it on"
			}),
			sev: protocol.SeverityWarn, msg: "no neighbour entry for 10.244.0.9 on any interface (not probed: no bridge and no /32 route via a veth to send it on)",
			result: "not-sent",
		},
		{
			name: "IPv6, the pod answers",
			obs: with(func(o *arpObservation) {
				o.IP, o.Entry, o.Probe, o.Result = probe6.Target, &neighEntry{MAC: podMAC, State: "DELAY"}, probe6, answered(podMAC)
			}),
			sev: protocol.SeverityOK, msg: "neighbour solicitation for fd00::9 on cbr0 answered by the pod's eth0 (0a:58:0a:f4:00:09) in 85µs; the neighbour entry was DELAY",
			result: "match", replyMAC: podMAC,
		},
		{
			name: "IPv6, nobody answers",
			obs: with(func(o *arpObservation) {
				o.IP, o.Probe, o.Result = probe6.Target, probe6, answered()
			}),
			sev: protocol.SeverityFail, msg: "no reply within 1s to neighbour solicitation for fd00::9 from fe80::1, sent on cbr0 from 3e:00:00:00:00:01; the pod's eth0 has 0a:58:0a:f4:00:09; there was no neighbour entry",
			remedy: "not tentative or dadfailed", result: "no-reply",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.obs.Data = protocol.ARPData{Pod: "shop/web"}
			f := judgeARP(tt.obs)
			if f.Check != CheckARP || f.Subject != "shop/web" || f.Severity != tt.sev || f.Message != tt.msg {
				t.Errorf("got %s %q\nwant %s %q", f.Severity, f.Message, tt.sev, tt.msg)
			}
			if !strings.Contains(f.Remedy, tt.remedy) || (tt.remedy == "" && f.Severity == protocol.SeverityOK && f.Remedy != "") {
				t.Errorf("remedy %q, want it to contain %q", f.Remedy, tt.remedy)
			}
			b, err := json.Marshal(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				PodMAC string `json:"podMAC"`
				Probe  *struct {
					Result   string `json:"result"`
					ReplyMAC string `json:"replyMAC"`
					Sent     *struct {
						SenderIP, SenderMAC, TargetIP string
					} `json:"sent"`
					Replies []struct {
						MAC string `json:"mac"`
						RTT int64  `json:"rttMicroseconds"`
					} `json:"replies"`
				} `json:"probe"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if d.PodMAC != tt.obs.Want {
				t.Errorf("data.podMAC %q", d.PodMAC)
			}
			if tt.result == "" {
				if d.Probe != nil {
					t.Errorf("data.probe without a probe: %s", b)
				}
				return
			}
			if d.Probe == nil || d.Probe.Result != tt.result || d.Probe.ReplyMAC != tt.replyMAC {
				t.Fatalf("data.probe: %s", b)
			}
			if tt.result == "not-sent" {
				if d.Probe.Sent != nil {
					t.Errorf("data.probe.sent for a probe not sent: %s", b)
				}
			} else if d.Probe.Sent == nil || d.Probe.Sent.TargetIP != tt.obs.Probe.Target.String() || d.Probe.Sent.SenderMAC != "3e:00:00:00:00:01" {
				t.Errorf("data.probe.sent: %s", b)
			}
			if n := len(tt.obs.Result.Replies); len(d.Probe.Replies) != n || (n > 0 && d.Probe.Replies[0].RTT != 85) {
				t.Errorf("data.probe.replies: %s", b)
			}
		})
	}
}
