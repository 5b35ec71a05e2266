#!/usr/bin/env bash
# Imports image archives (docker-archive or OCI tarballs, e.g. made by
# hack/mkimage) into the e2e cluster's containerd, namespace k8s.io, so pods
# can use them with imagePullPolicy: Never / IfNotPresent.
# Usage: e2e/cluster/import-image.sh FILE...
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/lib.sh
source "${HERE}/lib.sh"

[[ $# -gt 0 ]] || die "usage: $0 FILE..."
[[ -S "${CTRD_SOCK}" ]] || die "containerd socket ${CTRD_SOCK} not found; run ${HERE}/up.sh first"
for f in "$@"; do
  [[ -f "${f}" ]] || die "no such file: ${f}"
  log "importing ${f}"
  ctr --address "${CTRD_SOCK}" -n k8s.io images import "${f}"
done
