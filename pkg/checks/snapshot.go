package checks

import (
	"net"
	"net/netip"
)

// The network checks (bridge, veth, arp, mtu) work in two steps, like the
// conntrack and stale checks and prometheus/procfs: a Linux-only gather
// (gather_linux.go) reads netlink in the node's network namespace and each
// pod's into a netSnapshot of plain values, and portable judges
// (judge_net.go, arp.go) turn the snapshot into findings. The judges run
// in table tests on any OS from snapshots written as Go literals or JSON
// fixtures (testdata/net); only the gather and the ARP prober's raw
// sockets need a kernel.

// netSnapshot is the node's network as the network checks judge it.
type netSnapshot struct {
	// Links are the node's interfaces, in ifindex order as the kernel
	// lists them; each carries its addresses.
	Links []snapLink `json:"links"`
	// Routes are the main table's routes (IPv4 then IPv6, kernel order),
	// without cloned ones: the /32 and /128 routes that lead to routed
	// pods' veths and the default routes that name the uplink.
	Routes []snapRoute `json:"routes,omitempty"`
	// Neighbours are the IPv4 and IPv6 neighbour entries of every
	// interface.
	Neighbours []snapNeigh `json:"neighbours,omitempty"`
	// FDB is the bridges' forwarding database.
	FDB []snapFDB `json:"fdb,omitempty"`
	// Pods are the network namespaces of the pods named by UID
	// (normalized), read only for the veth, arp and mtu checks.
	Pods map[string]snapPod `json:"pods,omitempty"`

	// What could not be read; a judge needing it returns the error.
	LinksErr  error `json:"-"`
	AddrsErr  error `json:"-"`
	RoutesErr error `json:"-"`
	NeighErr  error `json:"-"`
	FDBErr    error `json:"-"`
}

// snapLink is one interface of the node.
type snapLink struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Type is the link kind (bridge, veth, vxlan, geneve, ipip,
	// wireguard, device, ...).
	Type string `json:"type"`
	MTU  int    `json:"mtu"`
	MAC  string `json:"mac,omitempty"`
	// AdminUp is IFF_UP; OperState is the RFC 2863 state as netlink
	// names it (up, down, unknown, lower-layer-down, dormant, ...).
	AdminUp   bool   `json:"adminUp"`
	OperState string `json:"operState"`
	// MasterIndex is the bridge (or bond) it is a port of; ParentIndex
	// is IFLA_LINK (a veth's peer, a tunnel's lower device).
	MasterIndex int `json:"masterIndex,omitempty"`
	ParentIndex int `json:"parentIndex,omitempty"`
	// Addrs are its addresses with their prefix length, in kernel order
	// (IPv4 first).
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	// Underlay is the address family a tunnel's packets travel in
	// ("ipv4", "ipv6"), when the device says (a VXLAN's local or group
	// address, a Geneve's remote); "" when it does not.
	Underlay string `json:"underlay,omitempty"`
}

// operUp says the link passes traffic: up, or unknown (drivers without
// carrier reporting).
func (l *snapLink) operUp() bool { return l.OperState == "up" || l.OperState == "unknown" }

// snapRoute is one route: its destination (0.0.0.0/0 or ::/0 for a
// default route) and its interface (the first nexthop's for a multipath
// route).
type snapRoute struct {
	Dst       netip.Prefix `json:"dst"`
	LinkIndex int          `json:"linkIndex,omitempty"`
}

// snapNeigh is one neighbour entry.
type snapNeigh struct {
	LinkIndex int        `json:"linkIndex"`
	IP        netip.Addr `json:"ip"`
	MAC       string     `json:"mac,omitempty"`
	// State is the NUD state's name: INCOMPLETE, REACHABLE, STALE,
	// DELAY, PROBE, FAILED, NOARP, PERMANENT (NONE for none).
	State string `json:"state"`
}

// usable says the entry has a MAC the kernel would send to.
func (n *snapNeigh) usable() bool {
	return n.MAC != "" && n.State != "INCOMPLETE" && n.State != "FAILED"
}

// snapFDB is one bridge forwarding entry: MAC is behind LinkIndex.
type snapFDB struct {
	LinkIndex int    `json:"linkIndex"`
	MAC       string `json:"mac"`
}

// snapPod is a pod's network namespace as seen from one of its processes:
// its eth0 (or only non-loopback interface), or why it could not be read.
type snapPod struct {
	PID         int    `json:"pid,omitempty"`
	NetNS       string `json:"netns,omitempty"`
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	Interface   string `json:"interface,omitempty"`
	Index       int    `json:"index,omitempty"`
	MTU         int    `json:"mtu,omitempty"`
	MAC         string `json:"mac,omitempty"`
	// PeerIndex is the host side's ifindex (IFLA_LINK of the veth).
	PeerIndex int          `json:"peerIndex,omitempty"`
	Addrs     []netip.Addr `json:"addrs,omitempty"`
	// Err says why the namespace could not be read ("" when it was).
	Err string `json:"err,omitempty"`
}

func (p snapPod) ok() bool { return p.Err == "" }

// link returns the link with ifindex idx (nil: none).
func (s *netSnapshot) link(idx int) *snapLink {
	if idx <= 0 {
		return nil
	}
	for i := range s.Links {
		if s.Links[i].Index == idx {
			return &s.Links[i]
		}
	}
	return nil
}

// linkByName returns the link named name (nil: none).
func (s *netSnapshot) linkByName(name string) *snapLink {
	for i := range s.Links {
		if s.Links[i].Name == name {
			return &s.Links[i]
		}
	}
	return nil
}

// pod returns the network namespace read for the pod UID.
func (s *netSnapshot) pod(uid string) snapPod {
	if p, ok := s.Pods[normalizeUID(uid)]; ok {
		return p
	}
	return snapPod{Err: "pod UID " + normalizeUID(uid) + " was not looked up"}
}

// addrOf converts ip (4- or 16-byte) to a netip.Addr, IPv4 unmapped.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// hostRouteVeth returns the veth of a /32 (/128) route to ip (nil: none).
func (s *netSnapshot) hostRouteVeth(ip net.IP) *snapLink {
	a := addrOf(ip)
	if !a.IsValid() {
		return nil
	}
	want := netip.PrefixFrom(a, a.BitLen())
	for _, r := range s.Routes {
		if r.LinkIndex <= 0 || r.Dst != want {
			continue
		}
		if l := s.link(r.LinkIndex); l != nil && l.Type == "veth" {
			return l
		}
	}
	return nil
}

// neighbour returns the first entry for ip on link idx (0: any link) in
// the family of ip.
func (s *netSnapshot) neighbour(idx int, ip net.IP) *snapNeigh {
	a := addrOf(ip)
	for i := range s.Neighbours {
		n := &s.Neighbours[i]
		if (idx == 0 || n.LinkIndex == idx) && n.IP.Unmap() == a {
			return n
		}
	}
	return nil
}

// usableNeighbourMAC returns the MAC of a usable entry for ip on link idx.
func (s *netSnapshot) usableNeighbourMAC(idx int, ip net.IP) (string, bool) {
	a := addrOf(ip)
	for i := range s.Neighbours {
		n := &s.Neighbours[i]
		if n.LinkIndex == idx && n.IP.Unmap() == a && n.usable() {
			return n.MAC, true
		}
	}
	return "", false
}

// fdbPort returns the port of bridge br whose FDB entry holds mac.
func (s *netSnapshot) fdbPort(br *snapLink, mac string) *snapLink {
	for _, f := range s.FDB {
		if f.LinkIndex == br.Index || !sameMAC(f.MAC, mac) {
			continue
		}
		if l := s.link(f.LinkIndex); l != nil && l.MasterIndex == br.Index {
			return l
		}
	}
	return nil
}

// familyName is "ipv4" or "ipv6", the family of a.
func familyName(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}
