package checks

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// checkDNS runs the dns check in the node's network namespace: skipped
// without a ClusterIP to ask; nothing is opened then.
func checkDNS(ctx context.Context, e *env) ([]protocol.Finding, error) {
	d := e.cfg.DNS
	if why := dnsSkipReason(d); why != "" {
		return []protocol.Finding{skipped(CheckDNS, why)}, nil
	}
	ex := e.cfg.dnsExchange
	if ex == nil {
		ex = exchangeDNS
		if e.cfg.NetNS != "" {
			ns := e.net.hostNS
			if !e.net.owned {
				var err error
				if ns, err = openNetNS(e.cfg.NetNS); err != nil {
					return nil, fmt.Errorf("dns: %w", err)
				}
				e.net.hostNS, e.net.owned = ns, true
			}
			ex = exchangeInNS(ns)
		}
	}
	return judgeDNS(d, gatherDNS(ctx, d, ex)), nil
}

// exchangeInNS sends each query from a thread in ns: the socket belongs to
// the namespace it is created in.
func exchangeInNS(ns netns.NsHandle) dnsExchanger {
	return func(ctx context.Context, t protocol.DNSCheckTarget, name string, timeout time.Duration) protocol.DNSCheckTarget {
		runtime.LockOSThread()
		cur, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			t.Error = "opening the current network namespace: " + err.Error()
			return t
		}
		defer cur.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			t.Error = "entering the node's network namespace: " + err.Error()
			return t
		}
		t = exchangeDNS(ctx, t, name, timeout)
		// A thread that cannot switch back stays locked: Go discards it
		// when the goroutine ends.
		if netns.Set(cur) == nil {
			runtime.UnlockOSThread()
		}
		return t
	}
}
