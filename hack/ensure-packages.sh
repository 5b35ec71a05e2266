#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet
# (apt-get update first, once). A warm machine returns at once.
#
#   hack/ensure-packages.sh busybox-static iproute2
set -euo pipefail
missing=()
for pkg in "$@"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0
command -v apt-get >/dev/null || { echo "ensure-packages: missing ${missing[*]} and no apt-get to install them" >&2; exit 1; }
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "ensure-packages: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >&2
