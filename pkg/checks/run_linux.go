package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// netState is the node's network as netlink shows it, in Config.NetNS.
type netState struct {
	h      *netlink.Handle
	hostNS netns.NsHandle

	bridgeLooked bool
	bridge       netlink.Link
	bridgeErr    error

	pods map[string]podNetResult
}

// Run runs the configured checks and emits their findings. A check that
// cannot run at all (netlink refused, /proc unreadable) makes Run return an
// error after the other checks ran; what a check finds, however bad, is a
// finding, not an error.
func Run(ctx context.Context, cfg Config, emit func(protocol.Finding)) error {
	cfg = cfg.withDefaults()
	ns, err := openNetNS(cfg.NetNS)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", nsName(cfg.NetNS), err)
	}
	defer h.Close()
	e := &env{cfg: cfg, net: &netState{h: h, hostNS: ns, pods: map[string]podNetResult{}}}
	defer e.closePods()

	var errs []error
	for _, name := range AllChecks {
		if want, _ := cfg.wants(name); !want {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch name {
		case CheckBridge:
			err = checkBridge(e, emit)
		case CheckVeth:
			err = checkVeth(e, emit)
		case CheckARP:
			err = checkARP(ctx, e, emit)
		case CheckMTU:
			err = checkMTU(e, emit)
		case CheckConntrack:
			err = checkConntrack(e, emit)
		case CheckStale:
			err = checkStale(ctx, e, emit)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func nsName(path string) string {
	if path == "" {
		return "the current network namespace"
	}
	return path
}

func openNetNS(path string) (netns.NsHandle, error) {
	if path == "" {
		ns, err := netns.GetFromPath("/proc/thread-self/ns/net")
		if err != nil {
			ns, err = netns.Get()
		}
		if err != nil {
			return netns.None(), fmt.Errorf("opening the current network namespace: %w", err)
		}
		return ns, nil
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("--netns %s: %w", path, err)
	}
	return ns, nil
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

// findBridge returns the configured bridge, or the first of cbr0, cni0,
// docker0 that exists, or the bridge with the lowest ifindex. A nil link
// and nil error: there is no bridge.
func (e *env) findBridge() (netlink.Link, error) {
	n := e.net
	if n.bridgeLooked {
		return n.bridge, n.bridgeErr
	}
	n.bridgeLooked = true
	if e.cfg.Bridge != "" {
		l, err := n.h.LinkByName(e.cfg.Bridge)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil, nil
			}
			n.bridgeErr = fmt.Errorf("bridge %s: %w", e.cfg.Bridge, err)
			return nil, n.bridgeErr
		}
		n.bridge = l
		return l, nil
	}
	for _, name := range []string{"cbr0", "cni0", "docker0"} {
		if l, err := n.h.LinkByName(name); err == nil && l.Type() == "bridge" {
			n.bridge = l
			return l, nil
		}
	}
	links, err := retryDump(n.h.LinkList)
	if err != nil {
		n.bridgeErr = fmt.Errorf("listing links: %w", err)
		return nil, n.bridgeErr
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Index < links[j].Attrs().Index })
	for _, l := range links {
		if l.Type() == "bridge" {
			n.bridge = l
			return l, nil
		}
	}
	return nil, nil
}

func (e *env) bridgeSubnets() []*net.IPNet {
	br, err := e.findBridge()
	if br == nil || err != nil {
		return nil
	}
	addrs, err := e.net.h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	var out []*net.IPNet
	for _, a := range addrs {
		if a.IPNet == nil || a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask})
	}
	return out
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

func operUp(l netlink.Link) bool {
	s := l.Attrs().OperState
	return s == netlink.OperUp || s == netlink.OperUnknown
}

func checkBridge(e *env, emit func(protocol.Finding)) error {
	br, err := e.findBridge()
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if br == nil {
		if e.cfg.Bridge != "" {
			emit(protocol.Finding{
				Check: CheckBridge, Severity: protocol.SeverityFail, Subject: e.cfg.Bridge,
				Message: fmt.Sprintf("bridge %s does not exist on this node", e.cfg.Bridge),
				Remedy:  "check the bridge name in the CNI config (/etc/cni/net.d) and --bridge; the CNI bridge plugin creates it when a pod starts",
				Data:    protocol.EncodeData(map[string]any{"bridge": e.cfg.Bridge, "exists": false}),
			})
			return nil
		}
		emit(protocol.Finding{
			Check: CheckBridge, Severity: protocol.SeverityInfo, Subject: "node",
			Message: "no bridge on this node (looked for cbr0, cni0, docker0 and any other bridge): pods are routed, nothing to check",
			Data:    protocol.EncodeData(map[string]any{"exists": false}),
		})
		return nil
	}
	a := br.Attrs()
	data := map[string]any{
		"bridge": a.Name, "ifindex": a.Index, "mtu": a.MTU, "mac": a.HardwareAddr.String(),
		"adminUp": isUp(br), "operState": a.OperState.String(),
	}
	addrs, err := e.net.h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("bridge %s: addresses: %w", a.Name, err)
	}
	var v4, all []string
	for _, ad := range addrs {
		all = append(all, ad.IPNet.String())
		if ad.IP.To4() != nil {
			v4 = append(v4, ad.IPNet.String())
		}
	}
	data["addresses"] = all
	data["ipv4"] = v4
	links, err := retryDump(e.net.h.LinkList)
	if err != nil {
		return fmt.Errorf("bridge %s: listing links: %w", a.Name, err)
	}
	var ports []map[string]any
	portsUp := 0
	for _, l := range links {
		la := l.Attrs()
		if la.MasterIndex != a.Index {
			continue
		}
		if isUp(l) && operUp(l) {
			portsUp++
		}
		ports = append(ports, map[string]any{"name": la.Name, "ifindex": la.Index, "mtu": la.MTU, "type": l.Type(), "operState": la.OperState.String(), "adminUp": isUp(l)})
	}
	data["ports"] = ports
	data["portsUp"] = portsUp

	f := protocol.Finding{Check: CheckBridge, Subject: a.Name, Data: protocol.EncodeData(data)}
	switch {
	case !isUp(br):
		f.Severity = protocol.SeverityFail
		f.Message = fmt.Sprintf("bridge %s is down: pods on it cannot reach the node, each other or the network", a.Name)
		f.Remedy = fmt.Sprintf("ip link set %s up (or: kubectl netdiag node check --fix)", a.Name)
	case !operUp(br):
		f.Severity = protocol.SeverityWarn
		if len(ports) == 0 {
			f.Message = fmt.Sprintf("bridge %s is up but has no carrier: it has no ports (no pod attached)", a.Name)
		} else {
			f.Message = fmt.Sprintf("bridge %s is up but has no carrier: none of its %d ports is up", a.Name, len(ports))
			f.Remedy = "bring the pod veths up (ip link set VETH up) or recreate the pods"
		}
	case len(v4) == 0:
		f.Severity = protocol.SeverityWarn
		f.Message = fmt.Sprintf("bridge %s has no IPv4 address: pods using it as their gateway cannot leave the node", a.Name)
		f.Remedy = fmt.Sprintf("the CNI bridge plugin (isGateway) adds the gateway address when a pod starts; add it back with ip address add GATEWAY/LEN dev %s", a.Name)
	default:
		f.Severity = protocol.SeverityOK
		f.Message = fmt.Sprintf("bridge %s is up with %v and %d ports (%d up)", a.Name, v4, len(ports), portsUp)
	}
	emit(f)
	return nil
}

// podNetResult is a pod's network namespace as seen from one of its
// processes.
type podNetResult struct {
	PID         int
	NetNS       string
	HostNetwork bool
	Interface   string
	Index       int
	MTU         int
	MAC         string
	PeerIndex   int // IFLA_LINK of a veth: the host side's ifindex
	Addrs       []net.IP
	ns          netns.NsHandle
	err         error
}

func (e *env) closePods() {
	for _, p := range e.net.pods {
		if p.ns.IsOpen() {
			p.ns.Close()
		}
	}
}

// podNet enters the network namespace of a pod's processes (found by the pod
// UID in their cgroups) and reads its eth0 (or its only non-loopback
// interface).
func (e *env) podNet(uid string) podNetResult {
	uid = normalizeUID(uid)
	if r, ok := e.net.pods[uid]; ok {
		return r
	}
	r := e.lookupPodNet(uid)
	e.net.pods[uid] = r
	return r
}

func (e *env) lookupPodNet(uid string) podNetResult {
	procs, err := e.processes(uid)
	if err != nil {
		return podNetResult{err: err}
	}
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.PID)
	}
	if len(pids) == 0 {
		pids = podPIDsFromCgroupfs(e.cfg.Sys, uid)
	}
	if len(pids) == 0 {
		return podNetResult{err: fmt.Errorf("no process of pod UID %s found in %s/*/cgroup or %s/fs/cgroup (is the pod on this node?)", uid, e.cfg.Proc, e.cfg.Sys)}
	}
	var lastErr error
	for _, pid := range pids {
		path := filepath.Join(e.cfg.Proc, strconv.Itoa(pid), "ns", "net")
		ns, err := netns.GetFromPath(path)
		if err != nil {
			lastErr = err
			continue
		}
		r := podNetResult{PID: pid, NetNS: path, ns: ns}
		if ns.Equal(e.net.hostNS) {
			r.HostNetwork = true
			r.err = fmt.Errorf("pod UID %s uses the node's network namespace (hostNetwork)", uid)
			return r
		}
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			ns.Close()
			lastErr = fmt.Errorf("netlink in %s: %w", path, err)
			continue
		}
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
			h.Close()
			ns.Close()
			lastErr = fmt.Errorf("no eth0 in %s", path)
			continue
		}
		a := l.Attrs()
		r.Interface, r.Index, r.MTU, r.MAC, r.PeerIndex = a.Name, a.Index, a.MTU, a.HardwareAddr.String(), a.ParentIndex
		if addrs, err := h.AddrList(l, netlink.FAMILY_ALL); err == nil {
			for _, ad := range addrs {
				r.Addrs = append(r.Addrs, ad.IP)
			}
		}
		h.Close()
		return r
	}
	return podNetResult{err: fmt.Errorf("entering the network namespace of pod UID %s: %w", uid, lastErr)}
}

func family(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func hostPrefix(ip net.IP) *net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

// vethResult is the host side of a pod.
type vethResult struct {
	Link   netlink.Link
	Bridge netlink.Link
	Method string
	MAC    string // the pod's MAC the lookup went through, if any
}

// findVeth finds the host interface of a pod: a /32 (/128) route via a
// veth, else the neighbour entry's MAC looked up in the bridge FDB, else the
// peer ifindex of the pod's eth0. tried says what was tried, for the
// message when nothing answers.
func (e *env) findVeth(t PodInfo) (res vethResult, tried []string, err error) {
	h := e.net.h
	if t.IP != nil {
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return h.RouteListFiltered(family(t.IP), &netlink.Route{Dst: hostPrefix(t.IP)}, netlink.RT_FILTER_DST)
		})
		if err != nil {
			return res, tried, fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range routes {
			if r.LinkIndex <= 0 {
				continue
			}
			l, err := h.LinkByIndex(r.LinkIndex)
			if err == nil && l.Type() == "veth" {
				return vethResult{Link: l, Method: "route"}, tried, nil
			}
		}
		tried = append(tried, "no /32 route via a veth")

		br, err := e.findBridge()
		if err != nil {
			return res, tried, err
		}
		if br != nil {
			if mac, ok, err := e.neighMAC(br, t.IP); err != nil {
				return res, tried, err
			} else if !ok {
				tried = append(tried, fmt.Sprintf("no neighbour entry on %s (entries appear only after traffic)", br.Attrs().Name))
			} else if port, err := e.fdbPort(br, mac); err != nil {
				return res, tried, err
			} else if port == nil {
				tried = append(tried, fmt.Sprintf("MAC %s not in the FDB of %s", mac, br.Attrs().Name))
			} else {
				return vethResult{Link: port, Bridge: br, Method: "neighbour+fdb", MAC: mac.String()}, tried, nil
			}
		}
	}
	if t.UID != "" {
		pn := e.podNet(t.UID)
		if pn.err != nil {
			tried = append(tried, pn.err.Error())
		} else if pn.PeerIndex <= 0 {
			tried = append(tried, fmt.Sprintf("the pod's %s has no peer interface", pn.Interface))
		} else if l, err := h.LinkByIndex(pn.PeerIndex); err != nil {
			tried = append(tried, fmt.Sprintf("the pod's %s peer ifindex %d is not in the node's namespace", pn.Interface, pn.PeerIndex))
		} else {
			res := vethResult{Link: l, Method: "pod-netns-iflink", MAC: pn.MAC}
			if m := l.Attrs().MasterIndex; m > 0 {
				res.Bridge, _ = h.LinkByIndex(m)
			}
			return res, tried, nil
		}
	} else {
		tried = append(tried, "no --pod-uid to enter the pod's network namespace")
	}
	return vethResult{}, tried, nil
}

// neighMAC returns the MAC of a usable neighbour entry for ip on link.
func (e *env) neighMAC(link netlink.Link, ip net.IP) (net.HardwareAddr, bool, error) {
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return e.net.h.NeighList(link.Attrs().Index, family(ip)) })
	if err != nil {
		return nil, false, fmt.Errorf("listing neighbours: %w", err)
	}
	for _, n := range neighs {
		if n.IP.Equal(ip) && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
			return n.HardwareAddr, true, nil
		}
	}
	return nil, false, nil
}

// fdbPort returns the bridge port whose FDB entry holds mac.
func (e *env) fdbPort(br netlink.Link, mac net.HardwareAddr) (netlink.Link, error) {
	fdb, err := retryDump(func() ([]netlink.Neigh, error) { return e.net.h.NeighList(0, unix.AF_BRIDGE) })
	if err != nil {
		return nil, fmt.Errorf("listing the bridge FDB: %w", err)
	}
	bi := br.Attrs().Index
	for _, n := range fdb {
		if n.LinkIndex == bi || n.HardwareAddr.String() != mac.String() {
			continue
		}
		l, err := e.net.h.LinkByIndex(n.LinkIndex)
		if err != nil || l.Attrs().MasterIndex != bi {
			continue
		}
		return l, nil
	}
	return nil, nil
}

func checkVeth(e *env, emit func(protocol.Finding)) error {
	var anyTarget bool
	for _, t := range e.cfg.targets() {
		if t.IP == nil && t.UID == "" {
			continue
		}
		anyTarget = true
		res, tried, err := e.findVeth(t)
		if err != nil {
			return fmt.Errorf("veth: %s: %w", t.Label(), err)
		}
		data := map[string]any{"pod": t.Label()}
		if t.IP != nil {
			data["podIP"] = t.IP.String()
		}
		if res.Link == nil {
			data["tried"] = tried
			emit(protocol.Finding{
				Check: CheckVeth, Severity: protocol.SeverityWarn, Subject: t.Label(),
				Message: fmt.Sprintf("no host interface found for %s: %s", t.Label(), strings.Join(tried, "; ")),
				Remedy:  "send traffic to the pod (neighbour entries appear only after traffic) or pass --pod-uid, then re-run",
				Data:    protocol.EncodeData(data),
			})
			continue
		}
		a := res.Link.Attrs()
		data["hostInterface"] = a.Name
		data["ifindex"] = a.Index
		data["mtu"] = a.MTU
		data["method"] = res.Method
		data["operState"] = a.OperState.String()
		if res.MAC != "" {
			data["podMAC"] = res.MAC
		}
		bridge := ""
		if res.Bridge != nil {
			bridge = res.Bridge.Attrs().Name
		} else if a.MasterIndex > 0 {
			if m, err := e.net.h.LinkByIndex(a.MasterIndex); err == nil {
				bridge = m.Attrs().Name
			}
		}
		data["bridge"] = bridge
		f := protocol.Finding{Check: CheckVeth, Subject: t.Label(), Severity: protocol.SeverityOK}
		where := ""
		if bridge != "" {
			where = ", bridge " + bridge
		}
		f.Message = fmt.Sprintf("%s is on host interface %s (ifindex %d, MTU %d%s; found by %s)", t.Label(), a.Name, a.Index, a.MTU, where, res.Method)
		// Cross-check a route/FDB answer against the pod's own view.
		if res.Method != "pod-netns-iflink" && t.UID != "" {
			if pn := e.podNet(t.UID); pn.err == nil && pn.PeerIndex > 0 && pn.PeerIndex != a.Index {
				data["podPeerIfindex"] = pn.PeerIndex
				f.Severity = protocol.SeverityFail
				f.Message = fmt.Sprintf("%s: the %s points to host interface %s (ifindex %d) but the pod's %s is paired with ifindex %d", t.Label(), res.Method, a.Name, a.Index, pn.Interface, pn.PeerIndex)
				f.Remedy = "a stale route or neighbour entry: delete it (ip neigh del / ip route del) or recreate the pod"
			}
		}
		if f.Severity == protocol.SeverityOK && (!isUp(res.Link) || !operUp(res.Link)) {
			f.Severity = protocol.SeverityFail
			f.Message = fmt.Sprintf("%s: host interface %s is down (%s)", t.Label(), a.Name, a.OperState)
			f.Remedy = fmt.Sprintf("ip link set %s up", a.Name)
		}
		f.Data = protocol.EncodeData(data)
		emit(f)
	}
	if !anyTarget {
		emit(skipped(CheckVeth, "needs --pod-ip or --pod-uid (or --pods-json/--pod)"))
	}
	return nil
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

// checkARP looks up each pod's neighbour entry and, where it is missing
// or unconfirmed, probes the pod (one ARP request or neighbour
// solicitation per pod, all at once) and judges the answer (judgeARP).
func checkARP(ctx context.Context, e *env, emit func(protocol.Finding)) error {
	br, err := e.findBridge()
	if err != nil {
		return fmt.Errorf("arp: %w", err)
	}
	var obs []arpObservation
	for _, t := range e.cfg.targets() {
		if t.IP == nil {
			continue
		}
		o, err := e.observeARP(t, br)
		if err != nil {
			return fmt.Errorf("arp: %w", err)
		}
		obs = append(obs, o)
	}
	if len(obs) == 0 {
		emit(skipped(CheckARP, "needs the node's pods (--pods-json or --pod) or --pod-ip"))
		return nil
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
		prober := e.cfg.prober
		if prober == nil {
			prober = rawProber{ns: e.net.hostNS}
		}
		results := prober.Probe(ctx, probes, e.cfg.ARPWait)
		for k, i := range which {
			obs[i].Wait = e.cfg.ARPWait
			if k < len(results) {
				obs[i].Result = results[k]
			}
		}
	}
	for _, o := range obs {
		emit(judgeARP(o))
	}
	return nil
}

// observeARP finds the interface the node reaches the pod through (the veth
// of a /32 route, else the bridge), the pod's neighbour entry on it, the
// MAC of the pod's eth0, and the probe to send when the entry does not
// settle the question.
func (e *env) observeARP(t PodInfo, br netlink.Link) (arpObservation, error) {
	h := e.net.h
	o := arpObservation{Subject: t.Label(), IP: t.IP, Where: "any interface"}
	data := map[string]any{"pod": t.Label(), "podIP": t.IP.String()}
	o.Data = data

	var link netlink.Link
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family(t.IP), &netlink.Route{Dst: hostPrefix(t.IP)}, netlink.RT_FILTER_DST)
	})
	if err != nil {
		return o, fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.LinkIndex <= 0 {
			continue
		}
		if l, err := h.LinkByIndex(r.LinkIndex); err == nil && l.Type() == "veth" {
			link, o.Routed = l, true
			data["layout"] = "routed"
			break
		}
	}
	if link == nil && br != nil {
		link = br
		data["layout"] = "bridge"
	}
	idx := 0
	if link != nil {
		idx, o.Where = link.Attrs().Index, link.Attrs().Name
	}
	data["interface"] = o.Where

	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(idx, family(t.IP)) })
	if err != nil {
		return o, fmt.Errorf("listing neighbours: %w", err)
	}
	for _, n := range neighs {
		if !n.IP.Equal(t.IP) {
			continue
		}
		o.Entry = &neighEntry{State: neighStateName(n.State)}
		if len(n.HardwareAddr) > 0 {
			o.Entry.MAC = n.HardwareAddr.String()
		}
		if link == nil {
			if l, err := h.LinkByIndex(n.LinkIndex); err == nil {
				o.Where = l.Attrs().Name
				data["interface"] = o.Where
			}
		}
		break
	}

	if t.UID != "" {
		if pn := e.podNet(t.UID); pn.err == nil && pn.MAC != "" {
			o.Want, o.WantFrom = pn.MAC, "pod-netns"
		} else if pn.err != nil {
			data["podNetnsError"] = pn.err.Error()
			o.WantUnknown = pn.err.Error()
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
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 {
		o.NoProbe = fmt.Sprintf("%s has no Ethernet MAC address", o.Where)
		return o, nil
	}
	o.Probe = &neighProbe{
		Ifindex: idx, Interface: o.Where, SrcMAC: mac, Target: t.IP,
		SrcIP: e.probeSource(link, t.IP),
	}
	return o, nil
}

// probeSource is the sender address of a probe on link: the link's address
// whose subnet holds the target, else (IPv6) its link-local address, else
// its first address; nil (0.0.0.0 or ::) when it has none.
func (e *env) probeSource(link netlink.Link, target net.IP) net.IP {
	addrs, err := e.net.h.AddrList(link, family(target))
	if err != nil {
		return nil
	}
	var first, linkLocal net.IP
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if a.IP.IsLinkLocalUnicast() {
			if linkLocal == nil {
				linkLocal = a.IP
			}
			continue
		}
		if a.Contains(target) {
			return a.IP
		}
		if first == nil {
			first = a.IP
		}
	}
	if target.To4() == nil && linkLocal != nil {
		return linkLocal
	}
	if first != nil {
		return first
	}
	return linkLocal
}

// overlay is a tunnel device lowering the path MTU.
type overlay struct {
	Name     string
	Kind     string
	Overhead int
}

// overlayOverhead returns the largest header overhead among the node's up
// tunnel devices: VXLAN and Geneve 50, IPIP 20, WireGuard 80.
func overlayOverhead(links []netlink.Link) (overlay, bool) {
	var best overlay
	found := false
	for _, l := range links {
		if !isUp(l) {
			continue
		}
		o := overlay{Name: l.Attrs().Name, Kind: l.Type()}
		switch {
		case l.Type() == "vxlan" || l.Type() == "geneve":
			o.Overhead = 50
		case l.Type() == "wireguard":
			o.Overhead = 80
		case l.Type() == "ipip":
			o.Overhead = 20
		default:
			switch o.Name {
			case "flannel.1", "cilium_vxlan", "cilium_geneve", "vxlan.calico", "weave":
				o.Overhead = 50
			case "wireguard.cali":
				o.Overhead = 80
			case "tunl0":
				o.Overhead = 20
			default:
				continue
			}
		}
		if !found || o.Overhead > best.Overhead {
			best, found = o, true
		}
	}
	return best, found
}

// uplink returns the interface of the default route.
func (e *env) uplink() (netlink.Link, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return e.net.h.RouteListFiltered(fam, &netlink.Route{Dst: nil}, netlink.RT_FILTER_DST)
		})
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			idx := r.LinkIndex
			if idx <= 0 && len(r.MultiPath) > 0 {
				idx = r.MultiPath[0].LinkIndex
			}
			if idx > 0 {
				return e.net.h.LinkByIndex(idx)
			}
		}
	}
	return nil, nil
}

func checkMTU(e *env, emit func(protocol.Finding)) error {
	var anyTarget bool
	links, err := retryDump(e.net.h.LinkList)
	if err != nil {
		return fmt.Errorf("mtu: listing links: %w", err)
	}
	ov, hasOverlay := overlayOverhead(links)
	up, err := e.uplink()
	if err != nil {
		return fmt.Errorf("mtu: default route: %w", err)
	}
	for _, t := range e.cfg.targets() {
		if t.UID == "" {
			continue
		}
		anyTarget = true
		data := map[string]any{"pod": t.Label(), "podUID": normalizeUID(t.UID)}
		pn := e.podNet(t.UID)
		if pn.err != nil {
			sev := protocol.SeverityWarn
			if pn.HostNetwork {
				sev = protocol.SeverityInfo
			}
			data["error"] = pn.err.Error()
			emit(protocol.Finding{Check: CheckMTU, Severity: sev, Subject: t.Label(), Message: "cannot read the pod's MTU: " + pn.err.Error(), Data: protocol.EncodeData(data)})
			continue
		}
		data["podInterface"] = pn.Interface
		data["podMTU"] = pn.MTU
		data["pid"] = pn.PID
		type hop struct {
			what string
			mtu  int
		}
		var hops []hop
		if pn.PeerIndex > 0 {
			if l, err := e.net.h.LinkByIndex(pn.PeerIndex); err == nil {
				data["hostInterface"] = l.Attrs().Name
				data["hostMTU"] = l.Attrs().MTU
				hops = append(hops, hop{"host veth " + l.Attrs().Name, l.Attrs().MTU})
				if m := l.Attrs().MasterIndex; m > 0 {
					if br, err := e.net.h.LinkByIndex(m); err == nil {
						data["bridge"] = br.Attrs().Name
						data["bridgeMTU"] = br.Attrs().MTU
						hops = append(hops, hop{"bridge " + br.Attrs().Name, br.Attrs().MTU})
					}
				}
			}
		}
		if up != nil {
			data["uplink"] = up.Attrs().Name
			data["uplinkMTU"] = up.Attrs().MTU
		}
		if hasOverlay {
			data["overlay"] = ov.Name
			data["overlayType"] = ov.Kind
			data["overhead"] = ov.Overhead
		}
		switch {
		case e.cfg.ExpectedMTU > 0:
			data["expectedMTU"] = e.cfg.ExpectedMTU
			hops = append(hops, hop{"--expected-mtu", e.cfg.ExpectedMTU})
		case up != nil:
			exp := up.Attrs().MTU
			what := "uplink " + up.Attrs().Name
			if hasOverlay {
				exp -= ov.Overhead
				what += fmt.Sprintf(" minus %d for %s", ov.Overhead, ov.Name)
			}
			data["expectedMTU"] = exp
			hops = append(hops, hop{what, exp})
		}
		f := protocol.Finding{Check: CheckMTU, Subject: t.Label()}
		if len(hops) == 0 {
			f.Severity = protocol.SeverityInfo
			f.Message = fmt.Sprintf("pod MTU %d; no host veth, bridge, default route or --expected-mtu to compare it with", pn.MTU)
			f.Data = protocol.EncodeData(data)
			emit(f)
			continue
		}
		limit := hops[0]
		for _, h := range hops[1:] {
			if h.mtu < limit.mtu {
				limit = h
			}
		}
		data["pathMTU"] = limit.mtu
		data["limitedBy"] = limit.what
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
		emit(f)
	}
	if !anyTarget {
		emit(skipped(CheckMTU, "needs --pod-uid (or --pods-json/--pod entries with UIDs) to read the pod's eth0"))
	}
	return nil
}
