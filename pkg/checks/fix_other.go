//go:build !linux

package checks

import (
	"context"
	"syscall"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func bridgeUp(c Config, name string) protocol.Action {
	return protocol.Action{Action: "bridge-up", Target: name, Result: protocol.ActionFailed, Message: errOnlyLinux.Error()}
}

type pidfd struct{}

func openPidfd(pid int) (*pidfd, error) { return nil, errOnlyLinux }

func (p *pidfd) Signal(sig syscall.Signal) error { return errOnlyLinux }

func (p *pidfd) Wait(ctx context.Context, d time.Duration) (bool, error) {
	return false, errOnlyLinux
}

func (p *pidfd) Close() {}
