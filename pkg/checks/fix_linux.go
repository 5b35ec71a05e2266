package checks

import (
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// bridgeUp brings a bridge up in the node's network namespace (--netns, or
// the current one: the node pod has the host's network).
func bridgeUp(c Config, name string) protocol.Action {
	a := protocol.Action{Action: "bridge-up", Target: name, Data: map[string]any{"bridge": name}}
	ns, err := openNetNS(c.NetNS)
	if err != nil {
		a.Result, a.Message = protocol.ActionFailed, err.Error()
		return a
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("netlink: %v", err)
		return a
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("no link %s: %v", name, err)
		return a
	}
	if l.Type() != "bridge" {
		a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("%s is a %s, not a bridge: left alone", name, l.Type())
		return a
	}
	if isUp(l) {
		a.Result, a.Message = protocol.ActionSkipped, fmt.Sprintf("bridge %s is already up", name)
		return a
	}
	if err := h.LinkSetUp(l); err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("ip link set %s up: %v", name, err)
		return a
	}
	a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("bridge %s brought up", name)
	return a
}

func signalProcess(pid int, sig syscall.Signal) error {
	return syscall.Kill(pid, sig)
}
