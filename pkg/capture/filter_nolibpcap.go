//go:build !(cgo && libpcap)

package capture

import (
	"fmt"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// HaveLibpcap says whether this build compiles filters with libpcap.
const HaveLibpcap = false

func compileFilter(_ layers.LinkType, _ int, expr string) ([]bpf.RawInstruction, error) {
	return nil, fmt.Errorf("cannot compile filter %q: this helper was built without libpcap (build it with hack/build-helper.sh, which uses -tags libpcap and cgo)", expr)
}
