package checks

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The arp check asks instead of reporting an absence: when a pod's
// neighbour entry is missing or not confirmed (STALE, DELAY, PROBE,
// INCOMPLETE, FAILED), the helper sends one ARP request (IPv4) or neighbour
// solicitation (IPv6) for the pod's IP out of the interface the node reaches
// the pod through (the bridge, or the veth of a /32 route) on a raw packet
// socket, and compares the MAC that answers with the MAC of the pod's eth0.
// Nothing is written to the neighbour table: what the kernel learns from
// the reply by itself is its business.

// DefaultARPWait bounds how long the arp check waits for answers to its
// probes (all pods are probed at once).
const DefaultARPWait = time.Second

// arpSettle is how long the prober keeps listening once every probe has an
// answer, to catch a second interface answering for the same IP.
const arpSettle = 50 * time.Millisecond

// neighProbe is one neighbour probe: an ARP request (IPv4 target) or a
// neighbour solicitation (IPv6 target) for Target, sent out of the
// interface Ifindex from SrcMAC/SrcIP. A nil or unspecified SrcIP sends an
// ARP probe (sender 0.0.0.0) or a solicitation from ::.
type neighProbe struct {
	Ifindex   int
	Interface string
	SrcMAC    net.HardwareAddr
	SrcIP     net.IP
	Target    net.IP
}

func (p neighProbe) v6() bool { return p.Target.To4() == nil }

// protocolName is "arp" or "ndp".
func (p neighProbe) protocolName() string {
	if p.v6() {
		return "ndp"
	}
	return "arp"
}

// srcIP is the sender address as sent.
func (p neighProbe) srcIP() net.IP {
	if p.SrcIP != nil && !p.SrcIP.IsUnspecified() {
		return p.SrcIP
	}
	if p.v6() {
		return net.IPv6unspecified
	}
	return net.IPv4zero
}

// describe is the request as tcpdump would name it.
func (p neighProbe) describe() string {
	if p.v6() {
		return fmt.Sprintf("neighbour solicitation for %s from %s", p.Target, p.srcIP())
	}
	return fmt.Sprintf("ARP who-has %s tell %s", p.Target, p.srcIP())
}

// short names the request without its sender.
func (p neighProbe) short() string {
	if p.v6() {
		return "neighbour solicitation for " + p.Target.String()
	}
	return "ARP who-has " + p.Target.String()
}

// neighReply is one answer to a probe.
type neighReply struct {
	MAC net.HardwareAddr
	RTT time.Duration
}

// probeResult is what became of one probe.
type probeResult struct {
	// Sent says the request left; Err says why it did not (or why the
	// socket could not be opened).
	Sent bool
	Err  error
	// Replies are the distinct MACs that answered, first answer first.
	Replies []neighReply
	// Waited is how long the prober listened after sending.
	Waited time.Duration
}

// neighProber sends neighbour probes and collects the answers. Probe sends
// one request per probe, all at once, and returns one result per probe (in
// the same order) once every probe has an answer (plus arpSettle) or after
// wait.
type neighProber interface {
	Probe(ctx context.Context, probes []neighProbe, wait time.Duration) []probeResult
}

// probeCollector matches answers to probes; the prober feeds it what it
// reads from its sockets.
type probeCollector struct {
	probes  []neighProbe
	sentAt  []time.Time
	results []probeResult
	// byKey indexes probes by interface and target.
	byKey map[probeKey][]int
}

type probeKey struct {
	ifindex int
	ip      string
}

func newProbeCollector(probes []neighProbe) *probeCollector {
	c := &probeCollector{
		probes:  probes,
		sentAt:  make([]time.Time, len(probes)),
		results: make([]probeResult, len(probes)),
		byKey:   map[probeKey][]int{},
	}
	for i, p := range probes {
		k := probeKey{p.Ifindex, p.Target.String()}
		c.byKey[k] = append(c.byKey[k], i)
	}
	return c
}

// sent records that probe i left at t (or failed with err).
func (c *probeCollector) sent(i int, t time.Time, err error) {
	if err != nil {
		c.results[i].Err = err
		return
	}
	c.results[i].Sent = true
	c.sentAt[i] = t
}

// reply records that mac answered for ip on ifindex at t; answers nobody
// asked for are ignored, and each MAC counts once per probe.
func (c *probeCollector) reply(ifindex int, ip net.IP, mac net.HardwareAddr, t time.Time) {
	for _, i := range c.byKey[probeKey{ifindex, ip.String()}] {
		r := &c.results[i]
		if !r.Sent {
			continue
		}
		dup := false
		for _, x := range r.Replies {
			dup = dup || sameMAC(x.MAC.String(), mac.String())
		}
		if dup {
			continue
		}
		rtt := t.Sub(c.sentAt[i])
		if rtt < 0 {
			rtt = 0
		}
		r.Replies = append(r.Replies, neighReply{MAC: append(net.HardwareAddr(nil), mac...), RTT: rtt})
	}
}

// done says every sent probe has an answer.
func (c *probeCollector) done() bool {
	for _, r := range c.results {
		if r.Sent && len(r.Replies) == 0 {
			return false
		}
	}
	return true
}

// finish stamps how long the prober listened.
func (c *probeCollector) finish(end time.Time) []probeResult {
	for i := range c.results {
		if c.results[i].Sent {
			c.results[i].Waited = end.Sub(c.sentAt[i])
		}
	}
	return c.results
}

// neighEntry is a neighbour-table entry as the arp check found it.
type neighEntry struct {
	MAC   string
	State string
}

// confirmed says the kernel trusts the entry without asking again.
func (n *neighEntry) confirmed() bool {
	switch n.State {
	case "REACHABLE", "PERMANENT", "NOARP":
		return true
	}
	return false
}

// arpObservation is everything the arp check found about one pod; judgeARP
// turns it into the finding.
type arpObservation struct {
	Subject string
	IP      net.IP
	// Where is the interface the entry was looked up on (and the probe
	// sent on): the bridge, the routed veth, or "any interface".
	Where string
	// Entry is the neighbour entry before any probe (nil: none).
	Entry *neighEntry
	// Routed says Where is the veth of a /32 route (not a bridge).
	Routed bool
	// Want is the MAC of the pod's eth0 (empty: unknown), WantFrom where
	// it came from, WantUnknown why it is unknown.
	Want, WantFrom, WantUnknown string
	// Probe is the probe sent (nil: none), Result its outcome. NoProbe
	// says why no probe was sent when one was needed.
	Probe   *neighProbe
	Result  probeResult
	NoProbe string
	// Wait is the bound the prober waited for answers.
	Wait time.Duration
	// Data is the finding's data so far (pod, interface, layout, ...).
	Data protocol.ARPData
}

// needsProbe says the entry does not settle the question.
func (o *arpObservation) needsProbe() bool { return o.Entry == nil || !o.Entry.confirmed() }

// entryNote describes the entry before the probe, for messages.
func (o *arpObservation) entryNote() string {
	if o.Entry == nil {
		return "there was no neighbour entry"
	}
	return fmt.Sprintf("the neighbour entry was %s", o.Entry.State)
}

func fmtRTT(d time.Duration) string {
	if d < time.Microsecond {
		return d.String()
	}
	return d.Round(time.Microsecond).String()
}

func macList(rs []neighReply) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.MAC.String()
	}
	return strings.Join(s, ", ")
}

// judgeARP turns what the arp check found about one pod into its finding.
func judgeARP(o arpObservation) protocol.Finding {
	f, data := judgeARPData(o)
	f.Data = protocol.EncodeData(data)
	return f
}

func judgeARPData(o arpObservation) (protocol.Finding, protocol.ARPData) {
	data := o.Data
	if o.Want != "" {
		data.PodMAC = o.Want
		data.PodMACFrom = o.WantFrom
	}
	if o.Entry != nil {
		data.State = o.Entry.State
		data.MAC = ptr(o.Entry.MAC)
	}
	f := protocol.Finding{Check: CheckARP, Subject: o.Subject}
	ip, where := o.IP, o.Where

	if !o.needsProbe() || o.Probe == nil {
		f.Severity, f.Message, f.Remedy = judgeEntry(o)
		if o.needsProbe() && o.NoProbe != "" {
			data.Probe = &protocol.ARPProbeData{Result: "not-sent", Error: o.NoProbe}
			f.Message += " (not probed: " + o.NoProbe + ")"
		}
		return f, data
	}

	p, r := *o.Probe, o.Result
	pd := &protocol.ARPProbeData{Protocol: p.protocolName(), Interface: p.Interface}
	data.Probe = pd
	if r.Err != nil || !r.Sent {
		pd.Result = "not-sent"
		err := "not sent"
		if r.Err != nil {
			err = r.Err.Error()
		}
		pd.Error = err
		f.Severity, f.Message, f.Remedy = judgeEntry(o)
		f.Message += fmt.Sprintf(" (the %s could not be sent on %s: %s)", p.short(), p.Interface, err)
		return f, data
	}
	pd.Sent = &protocol.ARPProbeSent{SenderMAC: p.SrcMAC.String(), SenderIP: p.srcIP().String(), TargetIP: p.Target.String()}
	pd.WaitedMilliseconds = ptr(r.Waited.Milliseconds())
	pd.Replies = make([]protocol.ARPReply, 0, len(r.Replies))
	for _, x := range r.Replies {
		pd.Replies = append(pd.Replies, protocol.ARPReply{MAC: x.MAC.String(), RTTMicroseconds: x.RTT.Microseconds()})
	}
	if len(r.Replies) > 0 {
		pd.ReplyMAC = r.Replies[0].MAC.String()
		pd.RTTMicroseconds = ptr(r.Replies[0].RTT.Microseconds())
	}

	var match *neighReply
	var others []neighReply
	for i := range r.Replies {
		if o.Want != "" && sameMAC(r.Replies[i].MAC.String(), o.Want) {
			match = &r.Replies[i]
		} else {
			others = append(others, r.Replies[i])
		}
	}
	// why: what to check when the pod does not answer.
	links := fmt.Sprintf("the pod's eth0 and its host veth are up and on %s (veth check)", where)
	if o.Routed {
		links = fmt.Sprintf("the pod's eth0 and the host veth %s are up (veth check)", where)
	}
	why := links + ", and that the pod does not ignore ARP (ip link show eth0: NOARP; sysctl net.ipv4.conf.eth0.arp_ignore)"
	if p.v6() {
		why = links + ", and that the pod's address is not tentative or dadfailed (ip -6 address show eth0)"
	}
	findOther := func(mac net.HardwareAddr) string {
		if o.Routed {
			return fmt.Sprintf("the /32 route for %s via %s leads to another interface (MAC %s): check it (ip route get %s) and recreate the pod if the route is stale", ip, where, mac, ip)
		}
		return fmt.Sprintf("find the interface with MAC %s (bridge fdb show br %s | grep -i %s) and remove the duplicate address", mac, where, mac)
	}
	switch {
	case len(r.Replies) == 0:
		pd.Result = "no-reply"
		f.Severity = protocol.SeverityFail
		f.Message = fmt.Sprintf("no reply within %s to %s, sent on %s from %s", orDuration(o.Wait, r.Waited.Round(time.Millisecond)), p.describe(), p.Interface, p.SrcMAC)
		if o.Want != "" {
			f.Message += fmt.Sprintf("; the pod's eth0 has %s", o.Want)
		}
		f.Message += "; " + o.entryNote()
		f.Remedy = "check that " + why
	case o.Want == "" && len(r.Replies) == 1:
		pd.Result = "reply"
		f.Severity = protocol.SeverityOK
		f.Message = fmt.Sprintf("%s on %s answered by %s in %s; %s (the pod's eth0 MAC is unknown, not compared: %s)", p.short(), p.Interface, r.Replies[0].MAC, fmtRTT(r.Replies[0].RTT), o.entryNote(), orText(o.WantUnknown, "no pod UID"))
	case match != nil && len(others) == 0:
		pd.Result = "match"
		f.Severity = protocol.SeverityOK
		f.Message = fmt.Sprintf("%s on %s answered by the pod's eth0 (%s) in %s; %s", p.short(), p.Interface, match.MAC, fmtRTT(match.RTT), o.entryNote())
		if o.Entry != nil && o.Entry.MAC != "" && !sameMAC(o.Entry.MAC, o.Want) {
			f.Message += fmt.Sprintf(" with MAC %s, from an earlier interface with this IP", o.Entry.MAC)
		}
	case match != nil || o.Want == "":
		pd.Result = "conflict"
		f.Severity = protocol.SeverityFail
		if match != nil {
			f.Message = fmt.Sprintf("%s on %s was answered by the pod's eth0 (%s) and also by %s: several interfaces claim %s", p.describe(), p.Interface, match.MAC, macList(others), ip)
		} else {
			f.Message = fmt.Sprintf("%s on %s was answered by %s: several interfaces claim %s", p.describe(), p.Interface, macList(others), ip)
		}
		f.Remedy = findOther(others[len(others)-1].MAC) + fmt.Sprintf("; until then traffic for %s goes to whichever answered last", ip)
	default:
		pd.Result = "other-mac"
		f.Severity = protocol.SeverityFail
		f.Message = fmt.Sprintf("%s on %s was answered by %s in %s, but the pod's eth0 has %s: another interface claims %s and the pod did not answer", p.describe(), p.Interface, macList(others), fmtRTT(others[0].RTT), o.Want, ip)
		f.Remedy = findOther(others[0].MAC) + "; then check that " + why
	}
	return f, data
}

// sameMAC compares MACs written any way net.ParseMAC accepts.
func sameMAC(a, b string) bool {
	x, err1 := net.ParseMAC(a)
	y, err2 := net.ParseMAC(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x.String() == y.String()
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// judgeEntry judges the neighbour entry alone (no probe was sent or could
// be).
func judgeEntry(o arpObservation) (protocol.Severity, string, string) {
	ip, where, e := o.IP, o.Where, o.Entry
	switch {
	case e == nil:
		return protocol.SeverityWarn,
			fmt.Sprintf("no neighbour entry for %s on %s", ip, where),
			"send traffic to the pod from the node (e.g. a probe) and re-run"
	case e.State == "FAILED":
		return protocol.SeverityFail,
			fmt.Sprintf("neighbour entry for %s on %s is FAILED: the pod did not answer ARP", ip, where),
			"check that the pod's veth is up and on the bridge (veth check); ip neigh flush " + ip.String()
	case e.State == "INCOMPLETE":
		return protocol.SeverityWarn,
			fmt.Sprintf("neighbour entry for %s on %s is INCOMPLETE: resolution is in progress or unanswered", ip, where),
			"re-run; if it stays INCOMPLETE, check the pod's veth (veth check)"
	case o.Want != "" && e.MAC != "" && !sameMAC(e.MAC, o.Want):
		return protocol.SeverityFail,
			fmt.Sprintf("neighbour entry for %s on %s has MAC %s but the pod's eth0 has %s", ip, where, e.MAC, o.Want),
			fmt.Sprintf("ip neigh del %s dev %s (a stale entry from an earlier pod with this IP)", ip, where)
	default:
		return protocol.SeverityOK, fmt.Sprintf("neighbour entry for %s on %s: %s %s", ip, where, e.MAC, e.State), ""
	}
}

// observeARP finds, in the snapshot, the interface the node reaches the pod
// through (the veth of a /32 route, else the bridge br), the pod's
// neighbour entry on it, the MAC of the pod's eth0, and the probe to send
// when the entry does not settle the question (nil Probe and a NoProbe
// reason when none can be).
func observeARP(s *netSnapshot, t PodInfo, br *snapLink) (arpObservation, error) {
	o := arpObservation{Subject: t.Label(), IP: t.IP, Where: "any interface"}
	o.Data = protocol.ARPData{Pod: t.Label(), PodIP: t.IP.String()}
	if s.RoutesErr != nil {
		return o, fmt.Errorf("listing routes: %w", s.RoutesErr)
	}
	link := s.hostRouteVeth(t.IP)
	switch {
	case link != nil:
		o.Routed = true
		o.Data.Layout = "routed"
	case br != nil:
		link = br
		o.Data.Layout = "bridge"
	}
	idx := 0
	if link != nil {
		idx, o.Where = link.Index, link.Name
	}
	o.Data.Interface = o.Where

	if s.NeighErr != nil {
		return o, fmt.Errorf("listing neighbours: %w", s.NeighErr)
	}
	if n := s.neighbour(idx, t.IP); n != nil {
		o.Entry = &neighEntry{State: n.State, MAC: n.MAC}
		if link == nil {
			if l := s.link(n.LinkIndex); l != nil {
				o.Where = l.Name
				o.Data.Interface = o.Where
			}
		}
	}

	if t.UID != "" {
		if pn := s.pod(t.UID); pn.ok() && pn.MAC != "" {
			o.Want, o.WantFrom = pn.MAC, "pod-netns"
		} else if !pn.ok() {
			o.Data.PodNetnsError = pn.Err
			o.WantUnknown = pn.Err
		}
	} else {
		o.WantUnknown = "no pod UID to find the pod's network namespace"
	}
	if o.Want == "" && t.MAC != "" {
		o.Want, o.WantFrom = t.MAC, "caller"
	}

	if !o.needsProbe() {
		return o, nil
	}
	if link == nil {
		o.NoProbe = "no bridge and no /32 route via a veth to send it on"
		return o, nil
	}
	mac, err := net.ParseMAC(link.MAC)
	if err != nil || len(mac) != 6 {
		o.NoProbe = fmt.Sprintf("%s has no Ethernet MAC address", o.Where)
		return o, nil
	}
	o.Probe = &neighProbe{
		Ifindex: idx, Interface: o.Where, SrcMAC: mac, Target: t.IP,
		SrcIP: probeSource(link, t.IP),
	}
	return o, nil
}

// probeSource is the sender address of a probe on link: the link's address
// whose subnet holds the target, else (IPv6) its link-local address, else
// its first address; nil (0.0.0.0 or ::) when it has none.
func probeSource(link *snapLink, target net.IP) net.IP {
	ta := addrOf(target)
	var first, linkLocal net.IP
	for _, p := range link.Addrs {
		a := p.Addr().Unmap()
		if a.Is4() != ta.Is4() {
			continue
		}
		ip := net.IP(a.AsSlice())
		if a.IsLinkLocalUnicast() {
			if linkLocal == nil {
				linkLocal = ip
			}
			continue
		}
		if p.Contains(ta) {
			return ip
		}
		if first == nil {
			first = ip
		}
	}
	if !ta.Is4() && linkLocal != nil {
		return linkLocal
	}
	if first != nil {
		return first
	}
	return linkLocal
}

// judgeARPs observes every target with an IP (the probes are sent by
// probe, which fills each observation's Result) and judges them; without
// any, the check is skipped.
func judgeARPs(ctx context.Context, s *netSnapshot, cfg Config, probe func(context.Context, []neighProbe) []probeResult) ([]protocol.Finding, error) {
	br, err := s.findBridge(cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("arp: %w", err)
	}
	var obs []arpObservation
	for _, t := range cfg.targets() {
		if t.IP == nil {
			continue
		}
		o, err := observeARP(s, t, br)
		if err != nil {
			return nil, fmt.Errorf("arp: %w", err)
		}
		obs = append(obs, o)
	}
	if len(obs) == 0 {
		return []protocol.Finding{skipped(CheckARP, "needs the node's pods (--pods-json or --pod) or --pod-ip")}, nil
	}
	var probes []neighProbe
	var which []int
	for i := range obs {
		if obs[i].Probe != nil {
			probes = append(probes, *obs[i].Probe)
			which = append(which, i)
		}
	}
	if len(probes) > 0 {
		results := probe(ctx, probes)
		for k, i := range which {
			obs[i].Wait = cfg.ARPWait
			if k < len(results) {
				obs[i].Result = results[k]
			}
		}
	}
	out := make([]protocol.Finding, 0, len(obs))
	for _, o := range obs {
		out = append(out, judgeARP(o))
	}
	return out, nil
}
