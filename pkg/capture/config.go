// Package capture is the helper's packet-capture engine: an AF_PACKET socket
// with a TPACKET_V3 ring, a filter compiled by libpcap and attached in the
// kernel, and pcap/pcapng written to a stream.
//
// The engine (Capture) reads from a PacketSource, so tests feed it packets;
// Run opens the real socket (Linux only) and hands it to the engine.
package capture

import (
	"fmt"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Output formats.
const (
	FormatPcap   = protocol.FormatPcap
	FormatPcapNG = protocol.FormatPcapNG
)

// Limits and defaults of a capture.
const (
	// DefaultSnaplen is tcpdump's default (and maximum) snapshot length.
	DefaultSnaplen = protocol.DefaultSnaplen
	// MaxSnaplen is the largest snapshot length accepted.
	MaxSnaplen = protocol.MaxSnaplen
	// DefaultInterface is the pod's interface.
	DefaultInterface = protocol.DefaultInterface
)

// Stop reasons reported in the stats line.
const (
	ReasonCount        = "count"
	ReasonDuration     = "duration"
	ReasonMaxBytes     = "max-bytes"
	ReasonSignal       = "signal"
	ReasonStdinEOF     = "stdin-eof"
	ReasonHeartbeat    = "heartbeat"
	ReasonStdoutClosed = "stdout-closed"
	ReasonError        = "error"
)

// Config is what `netdiag-helper capture` was asked to do.
type Config struct {
	Interface string
	Filter    string
	Snaplen   int
	// Count stops after this many packets; 0 means no limit.
	Count int64
	// Duration stops after this long; 0 means no limit.
	Duration time.Duration
	// MaxBytes stops before the packet data written would exceed this many
	// bytes; 0 means no limit.
	MaxBytes int64
	Format   string
	// Netns is a network namespace file (/proc/PID/ns/net, /run/netns/X) to
	// open the socket in; empty means the current one.
	Netns string
	// Heartbeat stops the capture when no byte arrived on stdin for this
	// long; 0 disables it.
	Heartbeat time.Duration
	// Application names the writer in a pcapng section header.
	Application string
}

// DefaultConfig returns the defaults of the contract.
func DefaultConfig() Config {
	return Config{
		Interface: DefaultInterface,
		Snaplen:   DefaultSnaplen,
		Format:    FormatPcap,
	}
}

// Validate checks the configuration; its messages name the flag.
func (c *Config) Validate() error {
	switch {
	case c.Interface == "":
		return fmt.Errorf("--interface must not be empty")
	case c.Snaplen <= 0 || c.Snaplen > MaxSnaplen:
		return fmt.Errorf("--snaplen must be between 1 and %d, not %d", MaxSnaplen, c.Snaplen)
	case c.Count < 0:
		return fmt.Errorf("--count must not be negative, not %d", c.Count)
	case c.Duration < 0:
		return fmt.Errorf("--duration must not be negative, not %s", c.Duration)
	case c.MaxBytes < 0:
		return fmt.Errorf("--max-bytes must not be negative, not %d", c.MaxBytes)
	case c.Heartbeat < 0:
		return fmt.Errorf("--heartbeat must not be negative, not %s", c.Heartbeat)
	case c.Format != FormatPcap && c.Format != FormatPcapNG:
		return fmt.Errorf("--format must be pcap or pcapng, not %q", c.Format)
	}
	return nil
}
