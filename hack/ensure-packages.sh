#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet
# (apt-get update first, once). A warm machine returns at once. A package of
# another architecture (NAME:ARCH, e.g. musl-dev:arm64) first adds that dpkg
# architecture (dpkg --add-architecture) if it is not there yet. apt-get waits
# for a lock held by another apt/dpkg run instead of failing.
#
#   hack/ensure-packages.sh busybox-static iproute2
#   hack/ensure-packages.sh gcc-aarch64-linux-gnu musl-dev:arm64
set -euo pipefail
missing=()
for pkg in "$@"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0
command -v apt-get >/dev/null || { echo "ensure-packages: missing ${missing[*]} and no apt-get to install them" >&2; exit 1; }
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
native=$(dpkg --print-architecture)
for pkg in "${missing[@]}"; do
	[[ $pkg == *:* ]] || continue
	arch=${pkg##*:}
	[[ $arch == "$native" || $arch == all ]] && continue
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		echo "ensure-packages: adding dpkg architecture $arch (for $pkg)" >&2
		"${sudo[@]}" dpkg --add-architecture "$arch"
	fi
done
lock=(-o DPkg::Lock::Timeout=600)
echo "ensure-packages: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get "${lock[@]}" update -qq >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get "${lock[@]}" install -y -qq "${missing[@]}" >&2
