//go:build !linux

package capture

import "errors"

// Open opens the capture socket; capture only works on Linux.
func Open(Config) (PacketSource, Source, error) {
	return nil, Source{}, errors.New("capture only works on Linux")
}
