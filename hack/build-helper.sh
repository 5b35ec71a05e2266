#!/usr/bin/env bash
# Builds the helper (debugimage/) as one statically linked linux binary for
# amd64 or arm64: Go + libpcap's filter compiler, linked with musl.
#
# libpcap comes from Debian's source package (see
# README, "How it works": a pure-Go filter compiler silently matched
# everything for portrange), built once per architecture with musl and
# cached under $LIBPCAP_CACHE_DIR/<version>/<arch>/, so later builds take no
# time.
#
# amd64 is built natively with musl-gcc (Debian's musl-tools). arm64 is
# cross-compiled on the amd64 machine with aarch64-linux-musl-gcc (Debian's
# musl-dev:arm64 wrapper around gcc-aarch64-linux-gnu; the arm64 dpkg
# architecture is added if needed) and checked under qemu-aarch64-static.
#
#   OUT=_output/bin/netdiag-helper GO_LDFLAGS='-s -w -X ...' hack/build-helper.sh
#   GOARCH=arm64 OUT=_output/release/netdiag-helper-linux-arm64 hack/build-helper.sh
#   hack/build-helper.sh --print-env    # build/cache libpcap only, print the
#                                       # cgo environment (for hack/test-helper.sh)
#
# Environment:
#   GOARCH     target architecture: amd64 (default) or arm64
#   OUT        output binary (default _output/bin/netdiag-helper for amd64,
#              _output/bin/netdiag-helper-linux-arm64 for arm64)
#   GO_LDFLAGS extra Go linker flags (the Makefile passes -s -w and -X version flags)
#   CACHE_DIR  cache root (default $HOME/.cache/kubectl-netdiag)
#   LIBPCAP_CACHE_DIR
#              libpcap builds, in <version>/<arch>/ (default $CACHE_DIR/libpcap);
#              an empty directory here makes a cold libpcap build
#   GO         go command (default go)
set -euo pipefail

LIBPCAP_VERSION=1.10.3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GOARCH=${GOARCH:-amd64}
GO_LDFLAGS=${GO_LDFLAGS:-}
GO=${GO:-go}
CACHE_DIR=${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}
LIBPCAP_CACHE_DIR=${LIBPCAP_CACHE_DIR:-$CACHE_DIR/libpcap}
PCAP_DIR=$LIBPCAP_CACHE_DIR/$LIBPCAP_VERSION/$GOARCH
KHDR_DIR=$CACHE_DIR/kernel-headers/$GOARCH

log() { echo "build-helper: $*" >&2; }
die() { echo "build-helper: error: $*" >&2; exit 1; }

# Per architecture: the C compiler (also libpcap's), the packages that
# provide it, configure's --host, the kernel's asm/ headers and their
# package, what `file` calls the architecture, and how to run the result
# here (and its package).
case $GOARCH in
amd64)
	OUT=${OUT:-_output/bin/netdiag-helper}
	CC=musl-gcc
	CC_PACKAGES=(musl-tools)
	HOST_ARGS=()
	ARCH_ASM=/usr/include/x86_64-linux-gnu/asm
	ASM_PACKAGE=linux-libc-dev
	FILE_ARCH=x86-64
	RUN=()
	RUN_PACKAGES=()
	;;
arm64)
	OUT=${OUT:-_output/bin/netdiag-helper-linux-arm64}
	CC=aarch64-linux-musl-gcc
	CC_PACKAGES=(gcc-aarch64-linux-gnu musl-dev:arm64 linux-libc-dev:arm64)
	HOST_ARGS=(--host=aarch64-linux-musl)
	ARCH_ASM=/usr/include/aarch64-linux-gnu/asm
	ASM_PACKAGE=linux-libc-dev:arm64
	FILE_ARCH="ARM aarch64"
	RUN=(qemu-aarch64-static)
	RUN_PACKAGES=(qemu-user-static)
	;;
*) die "GOARCH=$GOARCH: the helper is built for amd64 or arm64" ;;
esac

print_env=false
case "${1:-}" in
--print-env) print_env=true ;;
"") ;;
*) die "unknown argument ${1}; usage: [GOARCH=amd64|arm64] hack/build-helper.sh [--print-env]" ;;
esac

[[ $(uname -s) == Linux ]] || die "the helper is built on Linux (it links musl and libpcap); on other systems use debugimage/Dockerfile"
[[ $(uname -m) == x86_64 ]] || die "this script builds linux/amd64 and linux/arm64 on an amd64 machine; use debugimage/Dockerfile elsewhere"

# kernel_headers makes a directory the musl compiler can use for <linux/...>
# and <asm/...>: symlinks to the glibc-side kernel headers of $GOARCH.
kernel_headers() {
	[[ -e $KHDR_DIR/linux/if_packet.h && -e $KHDR_DIR/asm/types.h ]] && return 0
	[[ -d /usr/include/linux && -d $ARCH_ASM && -d /usr/include/asm-generic ]] ||
		die "kernel headers not found under /usr/include (install $ASM_PACKAGE)"
	mkdir -p "$KHDR_DIR"
	ln -sfn /usr/include/linux "$KHDR_DIR/linux"
	ln -sfn "$ARCH_ASM" "$KHDR_DIR/asm"
	ln -sfn /usr/include/asm-generic "$KHDR_DIR/asm-generic"
}

# fetch_source downloads Debian's libpcap source package into $1 with a
# private sources list and lists dir (deb entries turned into deb-src), so
# the machine's apt configuration and caches are left alone.
fetch_source() {
	local work=$1 f
	local etc=$work/apt/etc
	mkdir -p "$etc/sources.list.d" "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
	: >"$etc/sources.list"
	if [[ -f /etc/apt/sources.list ]]; then
		sed -n -E 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >>"$etc/sources.list"
	fi
	for f in /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		sed -n -E 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$etc/sources.list"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		# deb822: "Types: deb" (maybe with deb-src already) becomes deb-src.
		sed -E 's/^Types:.*$/Types: deb-src/' "$f" >"$etc/sources.list.d/$(basename "$f")"
	done
	local apt_opts=(
		-o "Dir::Etc::SourceList=$etc/sources.list"
		-o "Dir::Etc::SourceParts=$etc/sources.list.d"
		-o "Dir::State::Lists=$work/apt/lists"
		-o "Dir::Cache=$work/apt/cache"
		-o "APT::Sandbox::User=root"
		-o "Debug::NoLocking=1"
	)
	log "fetching Debian source package libpcap ($LIBPCAP_VERSION)"
	# A third-party repository without sources makes update fail; the
	# source fetch below says clearly whether libpcap was found.
	apt-get "${apt_opts[@]}" update -qq >&2 || log "apt-get update reported errors (continuing)"
	(cd "$work" && apt-get "${apt_opts[@]}" source -qq "libpcap" >&2) ||
		die "apt-get source libpcap failed (is a Debian mirror reachable?)"
}

ensure_libpcap() {
	if [[ -f $PCAP_DIR/lib/libpcap.a && -f $PCAP_DIR/include/pcap/pcap.h ]]; then
		kernel_headers
		return 0
	fi
	"$ROOT/hack/ensure-packages.sh" "${CC_PACKAGES[@]}" "${RUN_PACKAGES[@]}" flex bison dpkg-dev gcc make
	command -v "$CC" >/dev/null || die "$CC not found after installing ${CC_PACKAGES[*]}"
	kernel_headers
	local start=$SECONDS
	mkdir -p "$LIBPCAP_CACHE_DIR"
	local work
	work=$(mktemp -d "$LIBPCAP_CACHE_DIR/build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT
	fetch_source "$work"
	local src=$work/libpcap-$LIBPCAP_VERSION
	[[ -d $src ]] || die "Debian's libpcap source is not version $LIBPCAP_VERSION (got: $(cd "$work" && ls -d libpcap-*/ 2>/dev/null | tr '\n' ' ')); update LIBPCAP_VERSION in $0"
	log "building libpcap $LIBPCAP_VERSION for $GOARCH with $CC"
	(
		cd "$src"
		# A caller's generic build variables (LDFLAGS, CPPFLAGS, LIBS, ...)
		# belong to some other build: libpcap's configure must not see them.
		unset LDFLAGS CPPFLAGS CXXFLAGS LIBS CPP
		export CC CFLAGS="-O2 -I$KHDR_DIR"
		./configure "${HOST_ARGS[@]}" --disable-shared \
			--disable-dbus --disable-rdma --disable-usb --disable-bluetooth \
			--disable-netmap --without-libnl --with-pcap=linux >configure.log 2>&1 ||
			{ tail -30 configure.log >&2; exit 1; }
		make -j"$(nproc)" libpcap.a >make.log 2>&1 || { tail -30 make.log >&2; exit 1; }
	) || die "libpcap build for $GOARCH failed"
	local stage=$work/stage
	mkdir -p "$stage/lib" "$stage/include/pcap"
	cp "$src/libpcap.a" "$stage/lib/"
	cp "$src/pcap.h" "$stage/include/"
	cp "$src"/pcap/*.h "$stage/include/pcap/"
	mkdir -p "$(dirname "$PCAP_DIR")"
	rm -rf "$PCAP_DIR"
	mv "$stage" "$PCAP_DIR"
	rm -rf "$work"
	trap - EXIT
	log "libpcap $LIBPCAP_VERSION for $GOARCH cached in $PCAP_DIR ($((SECONDS - start))s)"
}

ensure_libpcap

CGO_CFLAGS="-I$PCAP_DIR/include -I$KHDR_DIR"
CGO_LDFLAGS="-L$PCAP_DIR/lib"

if $print_env; then
	printf 'export CC=%q CGO_ENABLED=1 GOOS=linux GOARCH=%q\n' "$CC" "$GOARCH"
	printf 'export CGO_CFLAGS=%q CGO_LDFLAGS=%q\n' "$CGO_CFLAGS" "$CGO_LDFLAGS"
	printf 'export NETDIAG_STATIC_LDFLAGS=%q NETDIAG_BUILD_TAGS=libpcap\n' "-linkmode external -extldflags -static"
	exit 0
fi

command -v "$CC" >/dev/null || "$ROOT/hack/ensure-packages.sh" "${CC_PACKAGES[@]}"
((${#RUN[@]} == 0)) || command -v "${RUN[0]}" >/dev/null || "$ROOT/hack/ensure-packages.sh" "${RUN_PACKAGES[@]}"
cd "$ROOT"
mkdir -p "$(dirname "$OUT")"
log "building $OUT (linux/$GOARCH)"
start=$SECONDS
# -buildid= keeps the binary (and so the release image digest) the same for
# the same sources wherever the caches are: Go's build ID hashes the cgo
# flags, which hold the libpcap cache path.
CC=$CC CGO_ENABLED=1 GOOS=linux GOARCH=$GOARCH \
	CGO_CFLAGS="$CGO_CFLAGS" CGO_LDFLAGS="$CGO_LDFLAGS" \
	"$GO" build -trimpath -tags libpcap -ldflags "$GO_LDFLAGS -buildid= -linkmode external -extldflags -static" \
	-o "$OUT" ./debugimage
build_secs=$((SECONDS - start))

desc=$(file -b "$OUT")
[[ $desc == *"statically linked"* || $desc == *"static-pie linked"* ]] ||
	die "$OUT is not statically linked: $desc"
[[ $desc == *"$FILE_ARCH"* ]] || die "$OUT is not a linux/$GOARCH binary: $desc"
# arm64 runs under qemu-aarch64-static (called directly: no binfmt needed).
"${RUN[@]}" "$OUT" version >/dev/null || die "$OUT does not run${RUN:+ under ${RUN[*]}}"
# The filter compiler must be libpcap's: it rejects "tcp port" with its own
# syntax error (a build without libpcap says so instead).
probe=$("${RUN[@]}" "$OUT" capture -i lo -f 'tcp port' 2>&1 </dev/null >/dev/null || true)
[[ $probe == *"syntax error"* ]] || die "$OUT does not compile filters with libpcap${RUN:+ (under ${RUN[*]})}: $probe"
log "ok: $OUT (built in ${build_secs}s; $(du -h "$OUT" | cut -f1), $desc${RUN:+; ran under ${RUN[*]}})"
