package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// gatherNet reads what the network checks cfg asks for judge: links and
// their addresses always (bridge); routes for veth, arp and mtu;
// neighbours for veth and arp; the bridge FDB for veth; and the network
// namespace of each pod named by UID for veth, arp and mtu. What cannot be
// read is recorded in the snapshot's error fields for the judges to report.
func gatherNet(ctx context.Context, h *netlink.Handle, hostNS netns.NsHandle, e *env) *netSnapshot {
	cfg := e.cfg
	want := cfg.wantsAny
	s := gatherLinks(h)
	if want(CheckVeth, CheckARP, CheckMTU) {
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := retryDump(func() ([]netlink.Route, error) { return h.RouteList(nil, fam) })
			if err != nil {
				s.RoutesErr = err
				break
			}
			for _, r := range routes {
				s.Routes = append(s.Routes, snapRouteOf(fam, r))
			}
		}
	}
	if want(CheckVeth, CheckARP) {
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(0, fam) })
			if err != nil {
				s.NeighErr = err
				break
			}
			for _, n := range neighs {
				sn := snapNeigh{LinkIndex: n.LinkIndex, IP: addrOf(n.IP), State: neighStateName(n.State)}
				if len(n.HardwareAddr) > 0 {
					sn.MAC = n.HardwareAddr.String()
				}
				s.Neighbours = append(s.Neighbours, sn)
			}
		}
	}
	if want(CheckVeth) {
		fdb, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(0, unix.AF_BRIDGE) })
		if err != nil {
			s.FDBErr = err
		}
		for _, n := range fdb {
			s.FDB = append(s.FDB, snapFDB{LinkIndex: n.LinkIndex, MAC: n.HardwareAddr.String()})
		}
	}
	if want(CheckVeth, CheckARP, CheckMTU) {
		s.Pods = map[string]snapPod{}
		for _, t := range cfg.targets() {
			if t.UID == "" || ctx.Err() != nil {
				continue
			}
			uid := normalizeUID(t.UID)
			if _, ok := s.Pods[uid]; !ok {
				s.Pods[uid] = e.readPodNet(uid, hostNS)
			}
		}
	}
	return s
}

// gatherLinks reads the links and their addresses.
func gatherLinks(h *netlink.Handle) *netSnapshot {
	s := &netSnapshot{}
	links, err := retryDump(h.LinkList)
	if err != nil {
		s.LinksErr = err
		return s
	}
	at := map[int]int{}
	for _, l := range links {
		a := l.Attrs()
		sl := snapLink{
			Name: a.Name, Index: a.Index, Type: l.Type(), MTU: a.MTU,
			AdminUp: a.Flags&net.FlagUp != 0, OperState: a.OperState.String(),
			MasterIndex: a.MasterIndex, ParentIndex: a.ParentIndex,
			Underlay: underlayOf(l),
		}
		if len(a.HardwareAddr) > 0 {
			sl.MAC = a.HardwareAddr.String()
		}
		at[a.Index] = len(s.Links)
		s.Links = append(s.Links, sl)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		s.AddrsErr = err
		return s
	}
	for _, ad := range addrs {
		i, ok := at[ad.LinkIndex]
		if !ok || ad.IPNet == nil {
			continue
		}
		ones, _ := ad.Mask.Size()
		s.Links[i].Addrs = append(s.Links[i].Addrs, netip.PrefixFrom(addrOf(ad.IP), ones))
	}
	return s
}

// underlayOf is the family of a tunnel's own outer address, "" when the
// device names none (or is no tunnel).
func underlayOf(l netlink.Link) string {
	var ip net.IP
	switch v := l.(type) {
	case *netlink.Vxlan:
		ip = v.SrcAddr
		if ip == nil {
			ip = v.Group
		}
	case *netlink.Geneve:
		ip = v.Remote
	}
	if len(ip) == 0 || ip.IsUnspecified() {
		return ""
	}
	return familyName(addrOf(ip))
}

func snapRouteOf(fam int, r netlink.Route) snapRoute {
	sr := snapRoute{LinkIndex: r.LinkIndex}
	if sr.LinkIndex <= 0 && len(r.MultiPath) > 0 {
		sr.LinkIndex = r.MultiPath[0].LinkIndex
	}
	if r.Dst != nil {
		ones, _ := r.Dst.Mask.Size()
		sr.Dst = netip.PrefixFrom(addrOf(r.Dst.IP), ones)
	} else if fam == netlink.FAMILY_V4 {
		sr.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	} else {
		sr.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return sr
}

var neighStates = []struct {
	bit  int
	name string
}{
	{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
	{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
	{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
}

func neighStateName(s int) string {
	for _, n := range neighStates {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return "NONE"
}

// readPodNet enters the network namespace of a pod's processes (found by
// the pod UID in their cgroups) and reads its eth0 (or its only
// non-loopback interface).
func (e *env) readPodNet(uid string, hostNS netns.NsHandle) snapPod {
	procs, err := e.processes(uid)
	if err != nil {
		return snapPod{Err: err.Error()}
	}
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.PID)
	}
	if len(pids) == 0 {
		pids = podPIDsFromCgroupfs(e.cfg.Sys, uid)
	}
	if len(pids) == 0 {
		return snapPod{Err: fmt.Sprintf("no process of pod UID %s found in %s/*/cgroup or %s/fs/cgroup (is the pod on this node?)", uid, e.cfg.Proc, e.cfg.Sys)}
	}
	var lastErr error
	for _, pid := range pids {
		path := filepath.Join(e.cfg.Proc, strconv.Itoa(pid), "ns", "net")
		r, err := readPodNetAt(path, hostNS)
		if err == nil {
			r.PID = pid
			if r.HostNetwork {
				r.Err = fmt.Sprintf("pod UID %s uses the node's network namespace (hostNetwork)", uid)
			}
			return r
		}
		lastErr = err
	}
	return snapPod{Err: fmt.Sprintf("entering the network namespace of pod UID %s: %v", uid, lastErr)}
}

// readPodNetAt reads the pod interface of the network namespace at path.
func readPodNetAt(path string, hostNS netns.NsHandle) (snapPod, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return snapPod{}, err
	}
	defer ns.Close()
	r := snapPod{NetNS: path}
	if ns.Equal(hostNS) {
		r.HostNetwork = true
		return r, nil
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return snapPod{}, fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		links, lerr := retryDump(h.LinkList)
		if lerr == nil {
			for _, c := range links {
				if c.Attrs().Flags&net.FlagLoopback == 0 {
					l, err = c, nil
					break
				}
			}
		}
	}
	if err != nil || l == nil {
		return snapPod{}, fmt.Errorf("no eth0 in %s", path)
	}
	a := l.Attrs()
	r.Interface, r.Index, r.MTU, r.MAC, r.PeerIndex = a.Name, a.Index, a.MTU, a.HardwareAddr.String(), a.ParentIndex
	if addrs, err := h.AddrList(l, netlink.FAMILY_ALL); err == nil {
		for _, ad := range addrs {
			r.Addrs = append(r.Addrs, addrOf(ad.IP))
		}
	}
	return r, nil
}

// retryDump repeats a netlink dump the kernel interrupted (the table
// changed while it was read).
func retryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// family is the netlink address family of ip.
func family(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
