#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet and kube-proxy from the Go module proxy (no git clone, no Docker) into
#   ${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}/k8s/${K8S_VERSION}/bin
# using a wrapper module that lives in the cache (never in the repo).
# Incremental per binary: only the missing ones are built (a binary added to
# the list later costs just its own build, not a rebuild of the others);
# nothing runs when all are present.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}"
K8S_CACHE="${CACHE_DIR}/k8s/${K8S_VERSION}"
BIN_DIR="${K8S_CACHE}/bin"
WRAP_DIR="${K8S_CACHE}/wrapper"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

have_all() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "${BIN_DIR}/${b}" ]] || return 1
  done
}

if have_all; then
  echo "k8s ${K8S_VERSION} binaries cached in ${BIN_DIR}"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build Kubernetes ${K8S_VERSION}" >&2; exit 1; }

mkdir -p "${BIN_DIR}" "${WRAP_DIR}"
staging_minor="v0.${K8S_VERSION#v1.}"   # v1.34.4 -> v0.34.4

# The go.mod of k8s.io/kubernetes at the wanted version.
modfile="$(cd "${WRAP_DIR}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" \
  | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "${modfile}" ]] || { echo "could not locate go.mod of k8s.io/kubernetes@${K8S_VERSION}" >&2; exit 1; }

# Wrapper go.mod: go line + require blocks of upstream; staging replaces
# rewritten to the published module versions.
{
  echo "module netdiag.local/k8s-wrapper"
  echo
  grep -m1 '^go ' "${modfile}"
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  awk '
    /^require \($/ {inreq=1; print; next}
    inreq && /^\)$/ {inreq=0; print; print ""; next}
    inreq {print; next}
    /^require [^(]/ {print}
  ' "${modfile}"
  echo "replace ("
  sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*$#\1#p' "${modfile}" \
    | sort -u | while read -r m; do echo "	${m} => ${m} ${staging_minor}"; done
  echo ")"
} > "${WRAP_DIR}/go.mod"

cat > "${WRAP_DIR}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2)"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2)"

build() {
  local name="$1" pkg="$2" start
  if [[ -x "${BIN_DIR}/${name}" ]]; then return 0; fi
  start=${SECONDS}
  echo "building ${name} (${pkg}) ..."
  (cd "${WRAP_DIR}" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "${ldflags}" \
      -o "${BIN_DIR}/${name}.tmp" "${pkg}")
  mv "${BIN_DIR}/${name}.tmp" "${BIN_DIR}/${name}"
  echo "built ${name} in $((SECONDS - start)) s"
}

total=${SECONDS}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
echo "k8s ${K8S_VERSION} binaries built in $((SECONDS - total)) s into ${BIN_DIR}"
