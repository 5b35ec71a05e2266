#!/usr/bin/env bash
# The dependency rule: the plugin never links the helper's engines (they
# run on nodes, and pull in netlink, raw sockets and libpcap), and the
# helper never links client-go (it never talks to the API server). The
# plugin asks DNS questions only through the helper: no DNS library either.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mod=$($GO list -m)

fail=0
check() { # PACKAGE FORBIDDEN-REGEX WHY
	local bad
	bad=$(GOOS=linux CGO_ENABLED=1 $GO list -deps "$1" | grep -E "$2" || true)
	if [ -n "$bad" ]; then
		echo "dependency rule broken: $1 links $3:" >&2
		sed 's/^/  /' <<<"$bad" >&2
		fail=1
	fi
}
check ./cmd/kubectl-netdiag \
	"^($mod/pkg/(checks|capture|dnsprobe)|github.com/miekg/dns|github.com/vishvananda/netlink|github.com/vishvananda/netns|github.com/gopacket/gopacket/(afpacket|pcap)|github.com/ti-mo/conntrack|github.com/mdlayher/netlink)(/|\$)" \
	"a helper-only package"
check ./debugimage "^k8s.io/(client-go|cli-runtime|kubectl)(/|\$)" "client-go"
if [ "$fail" = 0 ]; then
	echo "dependency rule holds: the plugin links no helper engine, the helper no client-go"
fi
exit $fail
