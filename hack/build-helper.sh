#!/usr/bin/env bash
# Builds the helper (debugimage/) as one statically linked linux/amd64 binary:
# Go + libpcap's filter compiler, linked with musl.
#
# libpcap comes from Debian's source package (see
# README, "How it works": a pure-Go filter compiler silently matched
# everything for portrange), built once with musl-gcc and cached
# under $CACHE_DIR/libpcap/<version>/, so later builds take no time.
#
#   OUT=_output/bin/netdiag-helper LDFLAGS='-s -w -X ...' hack/build-helper.sh
#   hack/build-helper.sh --print-env    # build/cache libpcap only, print the
#                                       # cgo environment (for hack/test-helper.sh)
#
# Environment:
#   OUT        output binary (default _output/bin/netdiag-helper)
#   LDFLAGS    extra Go linker flags (the Makefile passes -s -w and -X version flags)
#   CACHE_DIR  cache root (default $HOME/.cache/kubectl-netdiag)
#   GO         go command (default go)
set -euo pipefail

LIBPCAP_VERSION=1.10.3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-_output/bin/netdiag-helper}
LDFLAGS=${LDFLAGS:-}
GO=${GO:-go}
CACHE_DIR=${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}
PCAP_DIR=$CACHE_DIR/libpcap/$LIBPCAP_VERSION
KHDR_DIR=$CACHE_DIR/kernel-headers

log() { echo "build-helper: $*" >&2; }
die() { echo "build-helper: error: $*" >&2; exit 1; }

print_env=false
case "${1:-}" in
--print-env) print_env=true ;;
"") ;;
*) die "unknown argument ${1}; usage: hack/build-helper.sh [--print-env]" ;;
esac

[[ $(uname -s) == Linux ]] || die "the helper is built on Linux (it links musl and libpcap); on other systems use debugimage/Dockerfile"
[[ $(uname -m) == x86_64 ]] || die "this script builds linux/amd64 on an amd64 machine; use debugimage/Dockerfile for other architectures"

# kernel_headers makes a directory musl-gcc can use for <linux/...> and
# <asm/...>: symlinks to the glibc-side kernel headers.
kernel_headers() {
	[[ -e $KHDR_DIR/linux/if_packet.h ]] && return 0
	local arch_asm=/usr/include/x86_64-linux-gnu/asm
	[[ -d /usr/include/linux && -d $arch_asm && -d /usr/include/asm-generic ]] ||
		die "kernel headers not found under /usr/include (install linux-libc-dev)"
	mkdir -p "$KHDR_DIR"
	ln -sfn /usr/include/linux "$KHDR_DIR/linux"
	ln -sfn "$arch_asm" "$KHDR_DIR/asm"
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
	"$ROOT/hack/ensure-packages.sh" musl-tools flex bison dpkg-dev gcc make
	kernel_headers
	local start=$SECONDS
	mkdir -p "$CACHE_DIR/libpcap"
	local work
	work=$(mktemp -d "$CACHE_DIR/libpcap/build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT
	fetch_source "$work"
	local src=$work/libpcap-$LIBPCAP_VERSION
	[[ -d $src ]] || die "Debian's libpcap source is not version $LIBPCAP_VERSION (got: $(cd "$work" && ls -d libpcap-*/ 2>/dev/null | tr '\n' ' ')); update LIBPCAP_VERSION in $0"
	log "building libpcap $LIBPCAP_VERSION with musl-gcc"
	(
		cd "$src"
		CC=musl-gcc CFLAGS="-O2 -I$KHDR_DIR" ./configure --disable-shared \
			--disable-dbus --disable-rdma --disable-usb --disable-bluetooth \
			--disable-netmap --without-libnl --with-pcap=linux >configure.log 2>&1 ||
			{ tail -30 configure.log >&2; exit 1; }
		make -j"$(nproc)" libpcap.a >make.log 2>&1 || { tail -30 make.log >&2; exit 1; }
	) || die "libpcap build failed"
	local stage=$work/stage
	mkdir -p "$stage/lib" "$stage/include/pcap"
	cp "$src/libpcap.a" "$stage/lib/"
	cp "$src/pcap.h" "$stage/include/"
	cp "$src"/pcap/*.h "$stage/include/pcap/"
	rm -rf "$PCAP_DIR"
	mv "$stage" "$PCAP_DIR"
	rm -rf "$work"
	trap - EXIT
	log "libpcap $LIBPCAP_VERSION cached in $PCAP_DIR ($((SECONDS - start))s)"
}

ensure_libpcap

CGO_CFLAGS="-I$PCAP_DIR/include -I$KHDR_DIR"
CGO_LDFLAGS="-L$PCAP_DIR/lib"

if $print_env; then
	printf 'export CC=musl-gcc CGO_ENABLED=1 GOOS=linux GOARCH=amd64\n'
	printf 'export CGO_CFLAGS=%q CGO_LDFLAGS=%q\n' "$CGO_CFLAGS" "$CGO_LDFLAGS"
	printf 'export NETDIAG_STATIC_LDFLAGS=%q NETDIAG_BUILD_TAGS=libpcap\n' "-linkmode external -extldflags -static"
	exit 0
fi

command -v musl-gcc >/dev/null || "$ROOT/hack/ensure-packages.sh" musl-tools
cd "$ROOT"
mkdir -p "$(dirname "$OUT")"
log "building $OUT"
CC=musl-gcc CGO_ENABLED=1 GOOS=linux GOARCH=amd64 \
	CGO_CFLAGS="$CGO_CFLAGS" CGO_LDFLAGS="$CGO_LDFLAGS" \
	"$GO" build -trimpath -tags libpcap -ldflags "$LDFLAGS -linkmode external -extldflags -static" \
	-o "$OUT" ./debugimage

desc=$(file -b "$OUT")
[[ $desc == *"statically linked"* || $desc == *"static-pie linked"* ]] ||
	die "$OUT is not statically linked: $desc"
"$OUT" version >/dev/null || die "$OUT does not run"
# The filter compiler must be libpcap's: it rejects "tcp port" with its own
# syntax error (a build without libpcap says so instead).
probe=$("$OUT" capture -i lo -f 'tcp port' 2>&1 </dev/null >/dev/null || true)
[[ $probe == *"syntax error"* ]] || die "$OUT does not compile filters with libpcap: $probe"
log "ok: $OUT ($(du -h "$OUT" | cut -f1), $desc)"
