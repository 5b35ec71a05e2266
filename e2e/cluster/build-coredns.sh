#!/usr/bin/env bash
# Builds the trimmed CoreDNS of the local e2e cluster (the module in
# e2e/cluster/coredns: coremain + only the plugins the cluster uses) into
#   ${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}/coredns/<version>/coredns
# where <version> is the github.com/coredns/coredns version in its go.mod.
# Skips the build when that binary is there and was built from the same
# main.go, go.mod and go.sum (their sha256 is kept beside it), so the
# cluster's later ups and CI on the same machine reuse it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="${HERE}/coredns"
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}"

version="$(awk '$1 == "github.com/coredns/coredns" {print $2; exit} $1 == "require" && $2 == "github.com/coredns/coredns" {print $3; exit}' "${SRC}/go.mod")"
[[ -n "${version}" ]] || { echo "no github.com/coredns/coredns requirement in ${SRC}/go.mod" >&2; exit 1; }
OUT_DIR="${CACHE_DIR}/coredns/${version}"
BIN="${OUT_DIR}/coredns"
STAMP="${OUT_DIR}/coredns.src-sha256"
src_sum="$(cd "${SRC}" && cat main.go go.mod go.sum | sha256sum | cut -d' ' -f1)"

if [[ -x "${BIN}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${src_sum}" ]]; then
  echo "coredns ${version} cached in ${BIN}"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build CoreDNS ${version}" >&2; exit 1; }
mkdir -p "${OUT_DIR}"
start=${SECONDS}
echo "building coredns ${version} (trimmed, ${SRC}) ..."
(cd "${SRC}" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${BIN}.tmp" .)
mv "${BIN}.tmp" "${BIN}"
echo "${src_sum}" >"${STAMP}"
echo "built coredns ${version} in $((SECONDS - start)) s into ${BIN} ($(($(stat -c %s "${BIN}") / 1000000)) MB)"
