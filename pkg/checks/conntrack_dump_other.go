//go:build !linux

package checks

import "net/netip"

func (e *env) countConntrack(scope func(netip.Addr) bool) (map[netip.Addr]uint32, error) {
	return nil, errOnlyLinux
}
