//go:build cgo && libpcap

package capture

import (
	"fmt"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// HaveLibpcap says whether this build compiles filters with libpcap.
const HaveLibpcap = true

func compileFilter(linkType layers.LinkType, snaplen int, expr string) ([]bpf.RawInstruction, error) {
	insns, err := pcap.CompileBPFFilter(linkType, snaplen, expr)
	if err != nil {
		return nil, fmt.Errorf("invalid filter %q: %v", expr, err)
	}
	raw := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return raw, nil
}
