#!/usr/bin/env bash
# Builds a release in $RELEASE_DIR (default _output/release), after
# `make release-image` wrote the helper image index there:
#   kubectl-netdiag_<VERSION>_<os>_<arch>.tar.gz   the plugin for linux,
#       darwin and windows × amd64 and arm64, with LICENSE and the
#       kubectl_complete-netdiag completion script;
#   checksums.txt                                  sha256 of every archive;
#   netdiag.yaml                                   the krew manifest, rendered
#       from plugins/krew/netdiag.yaml.
# Every plugin binary injects IMAGE_REPO@<index digest> by default: the
# helper runs with capabilities (privileged on nodes), so a release pins it.
#
#   VERSION=v0.1.0 IMAGE_REPO=registry.example/netdiag-helper hack/release.sh
#   hack/release.sh --check     # only check VERSION and IMAGE_REPO
#
# Environment:
#   VERSION      semver with a leading v (krew requires it)
#   IMAGE_REPO   where the helper image index is published
#   GO_LDFLAGS   extra Go linker flags (the Makefile passes -s -w and -X version flags)
#   RELEASE_DIR  output directory; must hold helper-image.digest
#   RELEASE_URL  where the archives will be downloaded from (default: the
#                project's release page for VERSION)
#   GO           go command (default go)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
VERSION=${VERSION:-}
IMAGE_REPO=${IMAGE_REPO:-}
GO_LDFLAGS=${GO_LDFLAGS:-}
RELEASE_DIR=${RELEASE_DIR:-$ROOT/_output/release}
RELEASE_URL=${RELEASE_URL:-https://github.com/kubectl-netdiag/kubectl-netdiag/releases/download/$VERSION}
PLATFORMS=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64)
PKG=github.com/kubectl-netdiag/kubectl-netdiag/pkg/version

log() { echo "release: $*" >&2; }
die() { echo "release: error: $*" >&2; exit 1; }

[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
	die "VERSION must be a semantic version with a leading v, e.g. make release VERSION=v0.1.0 (got '${VERSION}')"
[[ -n $IMAGE_REPO && $IMAGE_REPO != localhost/* ]] ||
	die "IMAGE_REPO must name the registry repository the helper image is pushed to, e.g. make release IMAGE_REPO=registry.example/netdiag-helper (got '${IMAGE_REPO}')"
# --check: only the variables, before anything is built (make release runs
# it first, so a bad VERSION does not cost a helper build).
[[ ${1:-} != --check ]] || exit 0
digest=$(cat "$RELEASE_DIR/helper-image.digest" 2>/dev/null) || die "$RELEASE_DIR/helper-image.digest is missing: run make release-image first"
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "$RELEASE_DIR/helper-image.digest does not hold a sha256 digest: '$digest'"
image="$IMAGE_REPO@$digest"

cd "$ROOT"
# Reproducible archives: fixed owner, order and time (the commit's).
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 946684800)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
rm -f "$RELEASE_DIR"/kubectl-netdiag_*.tar.gz "$RELEASE_DIR/checksums.txt" "$RELEASE_DIR/netdiag.yaml"
declare -A sums
for p in "${PLATFORMS[@]}"; do
	os=${p%/*} arch=${p#*/} ext=
	[[ $os == windows ]] && ext=.exe
	d=$stage/$os-$arch
	mkdir -p "$d"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath \
		-ldflags "$GO_LDFLAGS -X $PKG.HelperImageDigest=$digest" \
		-o "$d/kubectl-netdiag$ext" ./cmd/kubectl-netdiag
	cp LICENSE "$d/"
	if [[ $os == windows ]]; then
		printf '@echo off\r\nkubectl-netdiag.exe __complete %%*\r\n' >"$d/kubectl_complete-netdiag.cmd"
	else
		install -m 0755 plugins/krew/kubectl_complete-netdiag "$d/"
	fi
	a=kubectl-netdiag_${VERSION}_${os}_${arch}.tar.gz
	tar -C "$d" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -cf - . |
		gzip -n -9 >"$RELEASE_DIR/$a"
	sums[${os}_${arch}]=$(sha256sum "$RELEASE_DIR/$a" | cut -d' ' -f1)
	log "$a ($(du -h "$RELEASE_DIR/$a" | cut -f1))"
done
(cd "$RELEASE_DIR" && sha256sum kubectl-netdiag_*.tar.gz >checksums.txt)

# The template without its leading comment.
manifest=$(sed '/^#/d' plugins/krew/netdiag.yaml)
manifest=${manifest//'{{VERSION}}'/$VERSION}
manifest=${manifest//'{{URL}}'/${RELEASE_URL%/}}
manifest=${manifest//'{{IMAGE}}'/$image}
for k in "${!sums[@]}"; do
	manifest=${manifest//"{{SHA256_$k}}"/${sums[$k]}}
done
[[ $manifest != *'{{'* ]] || die "plugins/krew/netdiag.yaml has a placeholder this script does not fill: $(grep -o '{{[^}]*}}' <<<"$manifest" | sort -u | tr '\n' ' ')"
printf '%s\n' "$manifest" >"$RELEASE_DIR/netdiag.yaml"
log "netdiag.yaml: version $VERSION, helper image $image"
