//go:build !linux

package checks

import (
	"syscall"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func bridgeUp(c Config, name string) protocol.Action {
	return protocol.Action{Action: "bridge-up", Target: name, Result: protocol.ActionFailed, Message: errOnlyLinux.Error()}
}

func signalProcess(pid int, sig syscall.Signal) error { return errOnlyLinux }
