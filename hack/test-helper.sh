#!/usr/bin/env bash
# Runs the helper's tests the way hack/build-helper.sh builds it: cgo with
# musl-gcc and the cached static libpcap (-tags libpcap), so the libpcap
# filter tests run too. As root it also builds the helper and runs the kernel
# integration tests (-tags integration) against that binary.
#
#   hack/test-helper.sh                # unit + libpcap tests (+ integration as root)
#   hack/test-helper.sh -run Corpus -v # extra arguments go to go test
#   hack/test-helper.sh --pkg ./pkg/filter -run '^$' -fuzz '^FuzzAgainstLibpcap$' -fuzztime 30s
#                                      # one other package, libpcap tests only
#                                      # (go test -fuzz takes one package)
set -euo pipefail
pkgs=(./pkg/capture/... ./debugimage/...)
integration=true
if [[ ${1:-} == --pkg ]]; then
	[[ -n ${2:-} ]] || { echo "test-helper: --pkg needs a package, e.g. --pkg ./pkg/filter" >&2; exit 2; }
	pkgs=("$2")
	integration=false
	shift 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
eval "$(GOARCH=amd64 hack/build-helper.sh --print-env)"
tags=$NETDIAG_BUILD_TAGS
if $integration && [[ $(id -u) == 0 ]]; then
	tags+=",integration"
	GOARCH=amd64 OUT=${NETDIAG_HELPER_OUT:-$ROOT/_output/test/netdiag-helper} hack/build-helper.sh
	export NETDIAG_HELPER=${NETDIAG_HELPER_OUT:-$ROOT/_output/test/netdiag-helper}
elif $integration; then
	echo "test-helper: not root: skipping the kernel integration tests" >&2
fi
exec go test -tags "$tags" -ldflags "$NETDIAG_STATIC_LDFLAGS" -count=1 "$@" "${pkgs[@]}"
