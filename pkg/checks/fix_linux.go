package checks

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vishvananda/netlink"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// bridgeUp brings a bridge up in the node's network namespace (--netns, or
// the current one: the node pod has the host's network).
func bridgeUp(c Config, name string) protocol.Action {
	a := protocol.Action{Action: "bridge-up", Target: name, Data: protocol.EncodeData(protocol.ActionData{Bridge: name})}
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

// pidfd holds one process: signals sent through it reach that process or
// nobody, never another one that got its PID.
type pidfd struct{ fd int }

func openPidfd(pid int) (*pidfd, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("already gone")
	case errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("this kernel has no pidfd_open (Linux 5.3 or later is needed to signal a process safely): not signalled")
	case err != nil:
		return nil, fmt.Errorf("pidfd_open: %v: not signalled", err)
	}
	return &pidfd{fd: fd}, nil
}

// Signal sends sig (0 only checks the process is still there).
func (p *pidfd) Signal(sig syscall.Signal) error {
	return unix.PidfdSendSignal(p.fd, sig, nil, 0)
}

// Wait waits up to d for the process to exit (a pidfd turns readable
// then); it says whether it did.
func (p *pidfd) Wait(ctx context.Context, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		ms := min(left, 100*time.Millisecond).Milliseconds()
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(max(ms, 1)))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("waiting for the process: %v", err)
		}
		if n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

func (p *pidfd) Close() { _ = unix.Close(p.fd) }
