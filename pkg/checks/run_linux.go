package checks

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// netState is the node's network namespace (Config.NetNS) and what was
// read in it. Nothing is opened for a run that does not need it: the
// namespace and a netlink handle for the network checks (bridge, veth,
// arp, mtu), the namespace alone for the conntrack table dump when
// --netns names one, a netlink handle for the bridge's subnets when the
// conntrack check scopes its top IPs without --pod-cidr.
type netState struct {
	// hostNS is the node's namespace; 0 (never closed) means the calling
	// thread's, the current one, when nothing was opened.
	hostNS netns.NsHandle
	owned  bool
	h      *netlink.Handle
	// snap is what the network checks judge (nil: not gathered).
	snap *netSnapshot
	// links is the links and addresses read for bridgeSubnets alone.
	links *netSnapshot
}

func (n *netState) close() {
	if n.h != nil {
		n.h.Close()
	}
	if n.owned {
		n.hostNS.Close()
	}
}

// networkChecks are the checks judged from a netSnapshot.
var networkChecks = []string{CheckBridge, CheckVeth, CheckARP, CheckMTU}

// wantsAny says whether any of the checks was asked for.
func (c Config) wantsAny(names ...string) bool {
	for _, n := range names {
		if w, _ := c.wants(n); w {
			return true
		}
	}
	return false
}

// Run runs the configured checks and emits their findings. A check that
// cannot run at all (netlink refused, /proc unreadable) makes Run return an
// error after the other checks ran; what a check finds, however bad, is a
// finding, not an error.
func Run(ctx context.Context, cfg Config, emit func(protocol.Finding)) error {
	cfg = cfg.withDefaults()
	e := &env{cfg: cfg, net: &netState{}}
	defer e.net.close()

	network := cfg.wantsAny(networkChecks...)
	conntrackDump := cfg.wantsAny(CheckConntrack) && cfg.Top > 0 && cfg.dumpConntrack == nil
	if network || (conntrackDump && cfg.NetNS != "") {
		ns, err := openNetNS(cfg.NetNS)
		if err != nil {
			return err
		}
		e.net.hostNS, e.net.owned = ns, true
	}
	if network {
		h, err := netlink.NewHandleAt(e.net.hostNS)
		if err != nil {
			return fmt.Errorf("netlink in %s: %w", nsName(cfg.NetNS), err)
		}
		e.net.h = h
		e.net.snap = gatherNet(ctx, h, e.net.hostNS, e)
	}

	var errs []error
	for _, name := range AllChecks {
		if want, _ := cfg.wants(name); !want {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var fs []protocol.Finding
		var err error
		switch name {
		case CheckBridge:
			var f protocol.Finding
			if f, err = judgeBridge(e.net.snap, cfg.Bridge); err == nil {
				fs = []protocol.Finding{f}
			}
		case CheckVeth:
			fs, err = judgeVeths(e.net.snap, cfg)
		case CheckARP:
			fs, err = judgeARPs(ctx, e.net.snap, cfg, e.probe)
		case CheckMTU:
			fs, err = judgeMTU(e.net.snap, cfg)
		case CheckConntrack:
			err = checkConntrack(e, emit)
		case CheckStale:
			err = checkStale(ctx, e, emit)
		case CheckDNS:
			fs, err = checkDNS(ctx, e)
		}
		for _, f := range fs {
			emit(f)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probe sends the arp check's probes from the node's namespace (or
// through Config.prober in tests).
func (e *env) probe(ctx context.Context, probes []neighProbe) []probeResult {
	prober := e.cfg.prober
	if prober == nil {
		prober = rawProber{ns: e.net.hostNS}
	}
	return prober.Probe(ctx, probes, e.cfg.ARPWait)
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

// bridgeSubnets are the subnets of the bridge's addresses (link-local ones
// left out), for the conntrack check's scope; nil when there is no bridge
// or netlink cannot tell.
func (e *env) bridgeSubnets() []*net.IPNet {
	s := e.net.snap
	if s == nil {
		s = e.net.readLinks(e.cfg.NetNS)
	}
	br, err := s.findBridge(e.cfg.Bridge)
	if br == nil || err != nil || s.AddrsErr != nil {
		return nil
	}
	var out []*net.IPNet
	for _, a := range br.Addrs {
		if a.Addr().IsLinkLocalUnicast() {
			continue
		}
		m := a.Masked()
		out = append(out, &net.IPNet{IP: net.IP(m.Addr().AsSlice()), Mask: net.CIDRMask(m.Bits(), m.Addr().BitLen())})
	}
	return out
}

// readLinks reads the links and addresses of the namespace at path (""
// the current one) once, opening the namespace and a netlink handle if the
// run has not; what cannot be opened or read is in the snapshot's LinksErr.
func (n *netState) readLinks(path string) *netSnapshot {
	if n.links != nil {
		return n.links
	}
	n.links = &netSnapshot{}
	if n.h == nil {
		if !n.owned && path != "" {
			ns, err := openNetNS(path)
			if err != nil {
				n.links.LinksErr = err
				return n.links
			}
			n.hostNS, n.owned = ns, true
		}
		var h *netlink.Handle
		var err error
		if n.owned {
			h, err = netlink.NewHandleAt(n.hostNS)
		} else {
			h, err = netlink.NewHandle()
		}
		if err != nil {
			n.links.LinksErr = fmt.Errorf("netlink in %s: %w", nsName(path), err)
			return n.links
		}
		n.h = h
	}
	n.links = gatherLinks(n.h)
	return n.links
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

func operUp(l netlink.Link) bool {
	s := l.Attrs().OperState
	return s == netlink.OperUp || s == netlink.OperUnknown
}
