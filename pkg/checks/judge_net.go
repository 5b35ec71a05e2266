package checks

import (
	"fmt"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The judges of the bridge, veth and mtu checks (arp's are in arp.go):
// pure functions of a netSnapshot and the Config, so every branch is
// table-tested without root (judge_net_test.go).

// findBridge returns the bridge the checks look at: the one named (of any
// type; nil when there is no such link), else the first of cbr0, cni0,
// docker0 that is a bridge, else the bridge with the lowest ifindex. A nil
// link and nil error: there is no bridge.
func (s *netSnapshot) findBridge(name string) (*snapLink, error) {
	if s.LinksErr != nil {
		if name != "" {
			return nil, fmt.Errorf("bridge %s: %w", name, s.LinksErr)
		}
		return nil, fmt.Errorf("listing links: %w", s.LinksErr)
	}
	if name != "" {
		return s.linkByName(name), nil
	}
	for _, n := range []string{"cbr0", "cni0", "docker0"} {
		if l := s.linkByName(n); l != nil && l.Type == "bridge" {
			return l, nil
		}
	}
	var best *snapLink
	for i := range s.Links {
		l := &s.Links[i]
		if l.Type == "bridge" && (best == nil || l.Index < best.Index) {
			best = l
		}
	}
	return best, nil
}

// judgeBridge judges the pod bridge: missing (named or not), down, up
// without carrier, without an IPv4 address, or ok.
func judgeBridge(s *netSnapshot, name string) (protocol.Finding, error) {
	br, err := s.findBridge(name)
	if err != nil {
		return protocol.Finding{}, fmt.Errorf("bridge: %w", err)
	}
	if br == nil {
		if name != "" {
			return protocol.Finding{
				Check: CheckBridge, Severity: protocol.SeverityFail, Subject: name,
				Message: fmt.Sprintf("bridge %s does not exist on this node", name),
				Remedy:  "check the bridge name in the CNI config (/etc/cni/net.d) and --bridge; the CNI bridge plugin creates it when a pod starts",
				Data:    protocol.EncodeData(protocol.BridgeData{Bridge: name, Exists: ptr(false)}),
			}, nil
		}
		return protocol.Finding{
			Check: CheckBridge, Severity: protocol.SeverityInfo, Subject: "node",
			Message: "no bridge on this node (looked for cbr0, cni0, docker0 and any other bridge): pods are routed, nothing to check",
			Data:    protocol.EncodeData(protocol.BridgeData{Exists: ptr(false)}),
		}, nil
	}
	if s.AddrsErr != nil {
		return protocol.Finding{}, fmt.Errorf("bridge %s: addresses: %w", br.Name, s.AddrsErr)
	}
	data := protocol.BridgeData{
		Bridge: br.Name, Ifindex: br.Index, MTU: br.MTU, MAC: br.MAC,
		AdminUp: ptr(br.AdminUp), OperState: br.OperState,
	}
	var v4 []string
	for _, a := range br.Addrs {
		data.Addresses = append(data.Addresses, a.String())
		if a.Addr().Unmap().Is4() {
			v4 = append(v4, a.String())
		}
	}
	data.IPv4 = v4
	portsUp := 0
	for _, l := range s.Links {
		if l.MasterIndex != br.Index {
			continue
		}
		if l.AdminUp && l.operUp() {
			portsUp++
		}
		data.Ports = append(data.Ports, protocol.BridgePort{Name: l.Name, Ifindex: l.Index, MTU: l.MTU, Type: l.Type, OperState: l.OperState, AdminUp: l.AdminUp})
	}
	data.PortsUp = ptr(portsUp)
	ports := len(data.Ports)

	f := protocol.Finding{Check: CheckBridge, Subject: br.Name, Data: protocol.EncodeData(data)}
	switch {
	case !br.AdminUp:
		f.Severity = protocol.SeverityFail
		f.Message = fmt.Sprintf("bridge %s is down: pods on it cannot reach the node, each other or the network", br.Name)
		f.Remedy = fmt.Sprintf("ip link set %s up (or: kubectl netdiag node check --fix)", br.Name)
	case !br.operUp():
		f.Severity = protocol.SeverityWarn
		if ports == 0 {
			f.Message = fmt.Sprintf("bridge %s is up but has no carrier: it has no ports (no pod attached)", br.Name)
		} else {
			f.Message = fmt.Sprintf("bridge %s is up but has no carrier: none of its %d ports is up", br.Name, ports)
			f.Remedy = "bring the pod veths up (ip link set VETH up) or recreate the pods"
		}
	case len(v4) == 0:
		f.Severity = protocol.SeverityWarn
		f.Message = fmt.Sprintf("bridge %s has no IPv4 address: pods using it as their gateway cannot leave the node", br.Name)
		f.Remedy = fmt.Sprintf("the CNI bridge plugin (isGateway) adds the gateway address when a pod starts; add it back with ip address add GATEWAY/LEN dev %s", br.Name)
	default:
		f.Severity = protocol.SeverityOK
		f.Message = fmt.Sprintf("bridge %s is up with %v and %d ports (%d up)", br.Name, v4, ports, portsUp)
	}
	return f, nil
}

// vethResult is the host side of a pod.
type vethResult struct {
	Link   *snapLink
	Bridge *snapLink
	Method string
	MAC    string // the pod's MAC the lookup went through, if any
}

// findVeth finds the host interface of a pod: a /32 (/128) route via a
// veth, else the neighbour entry's MAC looked up in the bridge FDB, else the
// peer ifindex of the pod's eth0. tried says what was tried, for the
// message when nothing answers.
func (s *netSnapshot) findVeth(t PodInfo, bridge string) (res vethResult, tried []string, err error) {
	if t.IP != nil {
		if s.RoutesErr != nil {
			return res, tried, fmt.Errorf("listing routes: %w", s.RoutesErr)
		}
		if l := s.hostRouteVeth(t.IP); l != nil {
			return vethResult{Link: l, Method: "route"}, tried, nil
		}
		tried = append(tried, "no /32 route via a veth")

		br, err := s.findBridge(bridge)
		if err != nil {
			return res, tried, err
		}
		if br != nil {
			if s.NeighErr != nil {
				return res, tried, fmt.Errorf("listing neighbours: %w", s.NeighErr)
			}
			mac, ok := s.usableNeighbourMAC(br.Index, t.IP)
			switch {
			case !ok:
				tried = append(tried, fmt.Sprintf("no neighbour entry on %s (entries appear only after traffic)", br.Name))
			case s.FDBErr != nil:
				return res, tried, fmt.Errorf("listing the bridge FDB: %w", s.FDBErr)
			default:
				port := s.fdbPort(br, mac)
				if port == nil {
					tried = append(tried, fmt.Sprintf("MAC %s not in the FDB of %s", mac, br.Name))
				} else {
					return vethResult{Link: port, Bridge: br, Method: "neighbour+fdb", MAC: mac}, tried, nil
				}
			}
		}
	}
	if t.UID == "" {
		return vethResult{}, append(tried, "no --pod-uid to enter the pod's network namespace"), nil
	}
	pn := s.pod(t.UID)
	switch l := s.link(pn.PeerIndex); {
	case !pn.ok():
		tried = append(tried, pn.Err)
	case pn.PeerIndex <= 0:
		tried = append(tried, fmt.Sprintf("the pod's %s has no peer interface", pn.Interface))
	case l == nil:
		tried = append(tried, fmt.Sprintf("the pod's %s peer ifindex %d is not in the node's namespace", pn.Interface, pn.PeerIndex))
	default:
		return vethResult{Link: l, Bridge: s.link(l.MasterIndex), Method: "pod-netns-iflink", MAC: pn.MAC}, tried, nil
	}
	return vethResult{}, tried, nil
}

// judgeVeth judges the host side of one pod (which has an IP or a UID):
// not found (warn), found through a route or the FDB while the pod's eth0
// is paired with another ifindex (fail), down (fail), or ok.
func judgeVeth(s *netSnapshot, t PodInfo, bridge string) (protocol.Finding, error) {
	if s.LinksErr != nil {
		return protocol.Finding{}, fmt.Errorf("veth: %s: listing links: %w", t.Label(), s.LinksErr)
	}
	res, tried, err := s.findVeth(t, bridge)
	if err != nil {
		return protocol.Finding{}, fmt.Errorf("veth: %s: %w", t.Label(), err)
	}
	data := protocol.VethData{Pod: t.Label()}
	if t.IP != nil {
		data.PodIP = t.IP.String()
	}
	if res.Link == nil {
		data.Tried = tried
		return protocol.Finding{
			Check: CheckVeth, Severity: protocol.SeverityWarn, Subject: t.Label(),
			Message: fmt.Sprintf("no host interface found for %s: %s", t.Label(), strings.Join(tried, "; ")),
			Remedy:  "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run",
			Data:    protocol.EncodeData(data),
		}, nil
	}
	l := res.Link
	data.HostInterface, data.Ifindex, data.MTU, data.Method, data.OperState, data.PodMAC = l.Name, l.Index, l.MTU, res.Method, l.OperState, res.MAC
	bridgeName := ""
	if res.Bridge != nil {
		bridgeName = res.Bridge.Name
	} else if m := s.link(l.MasterIndex); m != nil {
		bridgeName = m.Name
	}
	data.Bridge = &bridgeName
	f := protocol.Finding{Check: CheckVeth, Subject: t.Label(), Severity: protocol.SeverityOK}
	where := ""
	if bridgeName != "" {
		where = ", bridge " + bridgeName
	}
	f.Message = fmt.Sprintf("%s is on host interface %s (ifindex %d, MTU %d%s; found by %s)", t.Label(), l.Name, l.Index, l.MTU, where, res.Method)
	// Cross-check a route/FDB answer against the pod's own view.
	if res.Method != "pod-netns-iflink" && t.UID != "" {
		if pn := s.pod(t.UID); pn.ok() && pn.PeerIndex > 0 && pn.PeerIndex != l.Index {
			data.PodPeerIfindex = pn.PeerIndex
			f.Severity = protocol.SeverityFail
			f.Message = fmt.Sprintf("%s: the %s points to host interface %s (ifindex %d) but the pod's %s is paired with ifindex %d", t.Label(), res.Method, l.Name, l.Index, pn.Interface, pn.PeerIndex)
			f.Remedy = "a stale route or neighbour entry: delete it (ip neigh del / ip route del) or recreate the pod"
		}
	}
	if f.Severity == protocol.SeverityOK && (!l.AdminUp || !l.operUp()) {
		f.Severity = protocol.SeverityFail
		f.Message = fmt.Sprintf("%s: host interface %s is down (%s)", t.Label(), l.Name, l.OperState)
		f.Remedy = fmt.Sprintf("ip link set %s up", l.Name)
	}
	f.Data = protocol.EncodeData(data)
	return f, nil
}

// judgeVeths judges every target with an IP or a UID; without any, the
// check is skipped.
func judgeVeths(s *netSnapshot, cfg Config) ([]protocol.Finding, error) {
	var out []protocol.Finding
	for _, t := range cfg.targets() {
		if t.IP == nil && t.UID == "" {
			continue
		}
		f, err := judgeVeth(s, t, cfg.Bridge)
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		out = append(out, skipped(CheckVeth, "needs --pod-ip or --pod-uid (or --pods-json/--pod)"))
	}
	return out, nil
}

// overlay is a tunnel device lowering the path MTU.
type overlay struct {
	Name     string
	Kind     string
	Underlay string // ipv4 or ipv6
	Overhead int
}

// Tunnel overheads, in bytes, by underlay (outer) family:
//   - VXLAN: outer Ethernet 14 + IP 20/40 + UDP 8 + VXLAN header 8 = 50/70
//     (RFC 7348 section 5; Linux's VXLAN_HEADROOM and VXLAN6_HEADROOM).
//   - Geneve without options: the same 50/70 (RFC 8926 section 3; Linux's
//     GENEVE_IPV4_HLEN and GENEVE_IPV6_HLEN plus the inner Ethernet 14).
//   - IPIP: the outer IPv4 header, 20 (RFC 2003); always over IPv4.
//   - WireGuard: outer IP 20/40 + UDP 8 + message header 16 + Poly1305
//     tag 16 = 60/80 (the WireGuard whitepaper, section 5.4.6; Calico's
//     MTU documentation uses the same 60 and 80; wg-quick's default 1420
//     is 1500 minus the IPv6 figure).
func tunnelOverhead(kind, underlay string) int {
	v6 := underlay == "ipv6"
	switch kind {
	case "vxlan", "geneve":
		if v6 {
			return 70
		}
		return 50
	case "ipip":
		return 20
	case "wireguard":
		if v6 {
			return 80
		}
		return 60
	}
	return 0
}

// tunnelKind is the overlay kind of a link: its type, or for a device of
// another type, what its well-known name says (flannel.1, cilium_vxlan,
// vxlan.calico, weave: VXLAN; cilium_geneve: Geneve; wireguard.cali:
// WireGuard; tunl0: IPIP). "" means not a tunnel.
func tunnelKind(l *snapLink) string {
	switch l.Type {
	case "vxlan", "geneve", "wireguard", "ipip":
		return l.Type
	}
	switch l.Name {
	case "flannel.1", "cilium_vxlan", "vxlan.calico", "weave":
		return "vxlan"
	case "cilium_geneve":
		return "geneve"
	case "wireguard.cali":
		return "wireguard"
	case "tunl0":
		return "ipip"
	}
	return ""
}

// overlayOverhead returns the admin-up tunnel device with the largest
// overhead (the first of equals). A device that does not say its underlay
// family is taken to use fallback's (the uplink's default route family),
// IPv4 when that is unknown too.
func overlayOverhead(links []snapLink, fallback string) (overlay, bool) {
	var best overlay
	found := false
	for i := range links {
		l := &links[i]
		kind := tunnelKind(l)
		if !l.AdminUp || kind == "" {
			continue
		}
		under := l.Underlay
		if kind == "ipip" {
			under = "ipv4"
		}
		if under == "" {
			under = fallback
		}
		if under == "" {
			under = "ipv4"
		}
		o := overlay{Name: l.Name, Kind: l.Type, Underlay: under, Overhead: tunnelOverhead(kind, under)}
		if !found || o.Overhead > best.Overhead {
			best, found = o, true
		}
	}
	return best, found
}

// uplink returns the interface of the first default route (IPv4 routes
// first) and that route's family.
func (s *netSnapshot) uplink() (*snapLink, string) {
	for _, r := range s.Routes {
		if r.Dst.Bits() != 0 || r.LinkIndex <= 0 {
			continue
		}
		if l := s.link(r.LinkIndex); l != nil {
			return l, familyName(r.Dst.Addr())
		}
	}
	return nil, ""
}

// mtuPath is what the mtu check compares with: the uplink, the overlay,
// and the expected pod MTU (--expected-mtu, else the uplink's MTU minus
// the overlay's overhead).
type mtuPath struct {
	up         *snapLink
	ov         overlay
	hasOverlay bool
	// hasExpected is false when there is neither --expected-mtu nor an
	// uplink.
	hasExpected  bool
	expected     int
	expectedWhat string
}

func (s *netSnapshot) mtuPath(expectedMTU int) (mtuPath, error) {
	if s.LinksErr != nil {
		return mtuPath{}, fmt.Errorf("mtu: listing links: %w", s.LinksErr)
	}
	if s.RoutesErr != nil {
		return mtuPath{}, fmt.Errorf("mtu: default route: %w", s.RoutesErr)
	}
	var p mtuPath
	var fam string
	p.up, fam = s.uplink()
	p.ov, p.hasOverlay = overlayOverhead(s.Links, fam)
	switch {
	case expectedMTU > 0:
		p.hasExpected, p.expected, p.expectedWhat = true, expectedMTU, "--expected-mtu"
	case p.up != nil:
		p.hasExpected, p.expected, p.expectedWhat = true, p.up.MTU, "uplink "+p.up.Name
		if p.hasOverlay {
			p.expected -= p.ov.Overhead
			p.expectedWhat += fmt.Sprintf(" minus %d for %s", p.ov.Overhead, p.ov.Name)
		}
	}
	return p, nil
}

// fill sets the path's fields of an mtu finding's data.
func (p mtuPath) fill(d *protocol.MTUData) {
	if p.up != nil {
		d.Uplink, d.UplinkMTU = p.up.Name, p.up.MTU
	}
	if p.hasOverlay {
		d.Overlay, d.OverlayType, d.Overhead, d.OverlayUnderlay = p.ov.Name, p.ov.Kind, p.ov.Overhead, p.ov.Underlay
	}
	if p.hasExpected {
		d.ExpectedMTU = p.expected
	}
}

// judgeMTUPod judges one pod's eth0 MTU against its path: the host veth,
// its bridge, and the expected MTU. Above the path: fail; more than 100
// below: info; else ok.
func judgeMTUPod(s *netSnapshot, p mtuPath, t PodInfo) protocol.Finding {
	data := protocol.MTUData{Pod: t.Label(), PodUID: normalizeUID(t.UID)}
	pn := s.pod(t.UID)
	if !pn.ok() {
		sev := protocol.SeverityWarn
		if pn.HostNetwork {
			sev = protocol.SeverityInfo
		}
		data.Error = pn.Err
		return protocol.Finding{Check: CheckMTU, Severity: sev, Subject: t.Label(), Message: "cannot read the pod's MTU: " + pn.Err, Data: protocol.EncodeData(data)}
	}
	data.PodInterface, data.PodMTU, data.PID = pn.Interface, pn.MTU, pn.PID
	type hop struct {
		what string
		mtu  int
	}
	var hops []hop
	if l := s.link(pn.PeerIndex); l != nil {
		data.HostInterface, data.HostMTU = l.Name, l.MTU
		hops = append(hops, hop{"host veth " + l.Name, l.MTU})
		if br := s.link(l.MasterIndex); br != nil {
			data.Bridge, data.BridgeMTU = br.Name, br.MTU
			hops = append(hops, hop{"bridge " + br.Name, br.MTU})
		}
	}
	p.fill(&data)
	if p.hasExpected {
		hops = append(hops, hop{p.expectedWhat, p.expected})
	}
	f := protocol.Finding{Check: CheckMTU, Subject: t.Label()}
	if len(hops) == 0 {
		f.Severity = protocol.SeverityInfo
		f.Message = fmt.Sprintf("pod MTU %d; no host veth, bridge, default route or --expected-mtu to compare it with", pn.MTU)
		f.Data = protocol.EncodeData(data)
		return f
	}
	limit := hops[0]
	for _, h := range hops[1:] {
		if h.mtu < limit.mtu {
			limit = h
		}
	}
	data.PathMTU, data.LimitedBy = limit.mtu, limit.what
	switch {
	case pn.MTU > limit.mtu:
		f.Severity = protocol.SeverityFail
		f.Message = fmt.Sprintf("pod MTU %d is above the path MTU %d (%s): large packets are dropped", pn.MTU, limit.mtu, limit.what)
		f.Remedy = fmt.Sprintf("set the \"mtu\" of the pod network to %d in the CNI config (/etc/cni/net.d) and recreate the pods", limit.mtu)
	case pn.MTU < limit.mtu-100:
		f.Severity = protocol.SeverityInfo
		f.Message = fmt.Sprintf("pod MTU %d is %d below the path MTU %d (%s): it works, with more packets than needed", pn.MTU, limit.mtu-pn.MTU, limit.mtu, limit.what)
	default:
		f.Severity = protocol.SeverityOK
		f.Message = fmt.Sprintf("pod MTU %d fits the path MTU %d (%s)", pn.MTU, limit.mtu, limit.what)
	}
	f.Data = protocol.EncodeData(data)
	return f
}

// hostVeths are the host sides of the node's pods: veths that are ports of
// the bridge or carry a /32 or /128 route (routed CNIs), the uplink
// excepted.
func (s *netSnapshot) hostVeths(br, up *snapLink) []*snapLink {
	routed := map[int]bool{}
	for _, r := range s.Routes {
		if r.Dst.IsValid() && r.Dst.Bits() == r.Dst.Addr().BitLen() {
			routed[r.LinkIndex] = true
		}
	}
	var out []*snapLink
	for i := range s.Links {
		l := &s.Links[i]
		if l.Type != "veth" || (up != nil && l.Index == up.Index) {
			continue
		}
		if (br != nil && l.MasterIndex == br.Index) || routed[l.Index] {
			out = append(out, l)
		}
	}
	return out
}

// judgeMTUNode judges the node's side of the pod network when no pod UID
// says which pod's eth0 to read (a node without pods, or only --pod-ip):
//
//   - with --expected-mtu, the uplink must carry it: an uplink whose MTU
//     minus the overlay's overhead is below it fails (subject: the uplink);
//   - the bridge and every host veth (bridge ports, veths of /32 or /128
//     routes) above the path MTU (--expected-mtu, else the uplink minus the
//     overhead) fail, one finding each (subject: the interface): the pod
//     behind a host veth has the same MTU on its eth0 (the CNI creates the
//     pair with one MTU), so its large packets are dropped on the path;
//   - when nothing fails, one summary: ok naming what fits, or info when
//     the node has no bridge and no pod veth;
//   - without --expected-mtu and without a default route there is nothing
//     to compare with: the check is skipped.
func judgeMTUNode(s *netSnapshot, p mtuPath, bridge string) ([]protocol.Finding, error) {
	if !p.hasExpected {
		return []protocol.Finding{skipped(CheckMTU, "needs --pod-uid (or --pods-json/--pod entries with UIDs) to read the pod's eth0, or a default route or --expected-mtu to judge the node's interfaces")}, nil
	}
	br, err := s.findBridge(bridge)
	if err != nil {
		return nil, fmt.Errorf("mtu: %w", err)
	}
	base := protocol.MTUData{Scope: "node", PathMTU: p.expected, LimitedBy: p.expectedWhat}
	p.fill(&base)
	var out []protocol.Finding
	if p.expectedWhat == "--expected-mtu" && p.up != nil {
		room, what := p.up.MTU, fmt.Sprintf("uplink %s MTU %d", p.up.Name, p.up.MTU)
		if p.hasOverlay {
			room -= p.ov.Overhead
			what += fmt.Sprintf(" minus %d for %s", p.ov.Overhead, p.ov.Name)
		}
		if room < p.expected {
			d := base
			d.PathMTU, d.LimitedBy = room, "uplink "+p.up.Name
			out = append(out, protocol.Finding{
				Check: CheckMTU, Severity: protocol.SeverityFail, Subject: p.up.Name,
				Message: fmt.Sprintf("%s leaves %d, below --expected-mtu %d: pods at that MTU send packets the uplink drops", what, room, p.expected),
				Remedy:  fmt.Sprintf("set --expected-mtu and the \"mtu\" of the pod network in the CNI config (/etc/cni/net.d) to %d, or raise the MTU of %s", room, p.up.Name),
				Data:    protocol.EncodeData(d),
			})
		}
	}
	remedy := fmt.Sprintf("set the \"mtu\" of the pod network to %d in the CNI config (/etc/cni/net.d) and recreate the pods", p.expected)
	if br != nil && br.MTU > p.expected {
		d := base
		d.Bridge, d.BridgeMTU = br.Name, br.MTU
		out = append(out, protocol.Finding{
			Check: CheckMTU, Severity: protocol.SeverityFail, Subject: br.Name,
			Message: fmt.Sprintf("bridge %s MTU %d is above the path MTU %d (%s): pods on it can send packets the path drops", br.Name, br.MTU, p.expected, p.expectedWhat),
			Remedy:  remedy + fmt.Sprintf("; ip link set %s mtu %d", br.Name, p.expected),
			Data:    protocol.EncodeData(d),
		})
	}
	veths := s.hostVeths(br, p.up)
	lo, hi := 0, 0
	for _, v := range veths {
		base.HostVeths = append(base.HostVeths, protocol.MTUInterface{Name: v.Name, MTU: v.MTU})
		if lo == 0 || v.MTU < lo {
			lo = v.MTU
		}
		hi = max(hi, v.MTU)
		if v.MTU <= p.expected {
			continue
		}
		d := base
		d.HostVeths = nil
		d.HostInterface, d.HostMTU = v.Name, v.MTU
		if m := s.link(v.MasterIndex); m != nil {
			d.Bridge, d.BridgeMTU = m.Name, m.MTU
		}
		out = append(out, protocol.Finding{
			Check: CheckMTU, Severity: protocol.SeverityFail, Subject: v.Name,
			Message: fmt.Sprintf("host veth %s MTU %d is above the path MTU %d (%s): its pod's eth0 has the same MTU and its large packets are dropped", v.Name, v.MTU, p.expected, p.expectedWhat),
			Remedy:  remedy,
			Data:    protocol.EncodeData(d),
		})
	}
	if len(out) > 0 {
		return out, nil
	}
	var parts []string
	if br != nil {
		base.Bridge, base.BridgeMTU = br.Name, br.MTU
		parts = append(parts, fmt.Sprintf("bridge %s (MTU %d)", br.Name, br.MTU))
	}
	if len(veths) > 0 {
		mtus := fmt.Sprintf("MTU %d", lo)
		if hi != lo {
			mtus = fmt.Sprintf("MTU %d-%d", lo, hi)
		}
		n := "1 host veth"
		if len(veths) > 1 {
			n = fmt.Sprintf("%d host veths", len(veths))
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", n, mtus))
	}
	f := protocol.Finding{Check: CheckMTU, Subject: "node", Data: protocol.EncodeData(base)}
	if len(parts) == 0 {
		f.Severity = protocol.SeverityInfo
		f.Message = fmt.Sprintf("no bridge and no pod veth on this node to compare with the path MTU %d (%s)", p.expected, p.expectedWhat)
		return []protocol.Finding{f}, nil
	}
	verb := "fits"
	if len(parts) > 1 || len(veths) > 1 {
		verb = "fit"
	}
	f.Severity = protocol.SeverityOK
	f.Message = fmt.Sprintf("%s %s the path MTU %d (%s); no pod UID given, so no pod's eth0 was read", strings.Join(parts, " and "), verb, p.expected, p.expectedWhat)
	return []protocol.Finding{f}, nil
}

// judgeMTU judges every target with a UID (judgeMTUPod) or, when none has
// one, the node's side (judgeMTUNode).
func judgeMTU(s *netSnapshot, cfg Config) ([]protocol.Finding, error) {
	p, err := s.mtuPath(cfg.ExpectedMTU)
	if err != nil {
		return nil, err
	}
	var out []protocol.Finding
	for _, t := range cfg.targets() {
		if t.UID != "" {
			out = append(out, judgeMTUPod(s, p, t))
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	return judgeMTUNode(s, p, cfg.Bridge)
}
