//go:build !linux

package checks

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

var errOnlyLinux = errors.New("netdiag-helper check runs only on Linux")

type netState struct{}

// Run is only implemented on Linux.
func Run(ctx context.Context, cfg Config, emit func(protocol.Finding)) error {
	return errOnlyLinux
}

func (e *env) bridgeSubnets() []*net.IPNet { return nil }

func readKmsg(path string) ([]kmsgRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseKmsg(f)
}
