package capture

import (
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// CompileFilter compiles a tcpdump (pcap-filter) expression for the link
// type with libpcap itself, so the kernel runs exactly the program tcpdump
// would. An empty expression gives a program that keeps every packet, cut
// to snaplen. Errors read `invalid filter "EXPR": <libpcap's message>`.
func CompileFilter(linkType layers.LinkType, snaplen int, expr string) ([]bpf.RawInstruction, error) {
	if expr == "" {
		return []bpf.RawInstruction{{Op: 0x06, K: uint32(snaplen)}}, nil // ret #snaplen
	}
	return compileFilter(linkType, snaplen, expr)
}
