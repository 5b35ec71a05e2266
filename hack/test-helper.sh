#!/usr/bin/env bash
# Runs the helper's tests the way hack/build-helper.sh builds it: cgo with
# musl-gcc and the cached static libpcap (-tags libpcap), so the libpcap
# filter tests run too. As root it also builds the helper and runs the kernel
# integration tests (-tags integration) against that binary.
#
#   hack/test-helper.sh                # unit + libpcap tests (+ integration as root)
#   hack/test-helper.sh -run Corpus -v # extra arguments go to go test
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
eval "$(GOARCH=amd64 hack/build-helper.sh --print-env)"
tags=$NETDIAG_BUILD_TAGS
if [[ $(id -u) == 0 ]]; then
	tags+=",integration"
	GOARCH=amd64 OUT=${NETDIAG_HELPER_OUT:-$ROOT/_output/test/netdiag-helper} hack/build-helper.sh
	export NETDIAG_HELPER=${NETDIAG_HELPER_OUT:-$ROOT/_output/test/netdiag-helper}
else
	echo "test-helper: not root: skipping the kernel integration tests" >&2
fi
exec go test -tags "$tags" -ldflags "$NETDIAG_STATIC_LDFLAGS" -count=1 "$@" ./pkg/capture/... ./debugimage/...
