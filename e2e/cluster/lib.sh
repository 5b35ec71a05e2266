#!/usr/bin/env bash
# Shared settings and functions of the local single-node e2e cluster
# (e2e/cluster/up.sh, down.sh, import-image.sh). Source it; do not run it.
# shellcheck disable=SC2034  # variables are used by the sourcing scripts

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}"
K8S_BIN="${CACHE_DIR}/k8s/${K8S_VERSION}/bin"
# The trimmed CoreDNS (e2e/cluster/coredns, built by build-coredns.sh).
COREDNS_VERSION="$(awk '$1 == "github.com/coredns/coredns" {print $2; exit} $1 == "require" && $2 == "github.com/coredns/coredns" {print $3; exit}' "$(dirname "${BASH_SOURCE[0]}")/coredns/go.mod" 2>/dev/null || true)"
COREDNS_BIN="${CACHE_DIR}/coredns/${COREDNS_VERSION}/coredns"

# All state lives under this one directory.
NETDIAG_CLUSTER_DIR="${NETDIAG_CLUSTER_DIR:-/var/lib/netdiag-cluster}"
NETDIAG_CLUSTER_DIR="${NETDIAG_CLUSTER_DIR%/}"
D="${NETDIAG_CLUSTER_DIR}"
LOG_DIR="${D}/logs"
RUN_DIR="${D}/run"
PKI="${D}/pki"
KCFG_DIR="${D}/kubeconfig"
CTRD_DIR="${D}/containerd"
CTRD_SOCK="${CTRD_DIR}/containerd.sock"
CNI_CONF_DIR="${D}/cni/net.d"
CNI_IPAM_DIR="${D}/cni/ipam"
CNI_NET_NAME="netdiag"
KUBELET_DIR="${D}/kubelet"
ETCD_DIR="${D}/etcd"
IMG_DIR="${D}/images"
ENV_FILE="${D}/env"
ADMIN_KUBECONFIG="${KCFG_DIR}/admin.kubeconfig"
SYSCTL_SAVE="${D}/sysctl.saved"
# Host directories that did not exist before the first up (removed on down).
CREATED_SAVE="${D}/created-dirs.saved"
# Set when up.sh made /run/netns a mount point (removed on down).
NETNS_BIND_SAVE="${D}/netns-bind.saved"
HOST_DIRS=(/run/netns /run/containerd /var/lib/cni /var/log/containers)
# Logs of the last torn-down cluster are moved here by down.sh.
LAST_LOGS_DIR="${D}.last-logs"

NODE_NAME="${NETDIAG_NODE_NAME:-netdiag-node}"
POD_CIDR="10.244.0.0/24"
POD_GW="10.244.0.1"
SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP="10.96.0.1"
# The kube-dns Service's ClusterIP (the 10th IP of SERVICE_CIDR) and the
# cluster's DNS domain.
DNS_IP="10.96.0.10"
CLUSTER_DOMAIN="cluster.local"
# The node's test upstream DNS server (CoreDNS, zone TEST_ZONE) that the
# cluster's CoreDNS forwards everything else to. It listens on a link-local
# /32 added to the node's lo (these kernels have no dummy links): pods reach
# it through their default route (the node), unlike 127.0.0.1. Nothing is
# forwarded further.
DNS_ADDR_DEV="lo"
UPSTREAM_DNS="169.254.53.53"
TEST_ZONE="example.test"
# Optional NodeLocal-DNSCache-style cache (up.sh with
# NETDIAG_CLUSTER_NODELOCAL=1): CoreDNS on the node at this address (a /32
# on lo too), the kubelet's clusterDNS; it forwards the cluster domain to the
# kube-dns ClusterIP and everything else to the upstream. The marker file
# says that the running cluster has it.
NODELOCAL_DNS="169.254.20.10"
NODELOCAL_SAVE="${D}/nodelocal.enabled"
BRIDGE="cbr0"
PAUSE_IMAGE="localhost/netdiag-pause:v1"
WEB_IMAGE="localhost/netdiag-web:v1"
COREDNS_IMAGE="localhost/netdiag-coredns:${COREDNS_VERSION}"
# The cluster's own OCI registry (plain HTTP, loopback only, in memory):
# containerd pulls REGISTRY/... from it, as from a real registry.
REGISTRY_ADDR="127.0.0.1:5000"
REGISTRY="localhost:5000"

# Daemons in start order; stop order is the reverse.
# upstream-dns is ${COREDNS_BIN} run as ${D}/bin/upstream-dns (a symlink),
# so its name is its own.
DAEMONS=(containerd registry upstream-dns etcd kube-apiserver kube-proxy kube-controller-manager kube-scheduler kubelet)
# TCP ports our daemons listen on (kube-proxy: 10249 metrics, 10256 healthz).
PORTS=(2379 2380 5000 6443 10248 10249 10250 10256 10257 10259)
# Sysctls rewritten by the kubelet / CNI bridge plugin; saved on up, restored on down.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.bridge.bridge-nf-call-iptables)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_root() {
  [[ ${EUID} -eq 0 ]] || die "must run as root (it runs containerd, the kubelet and changes the host network)"
}

# kubectl within version skew of the cluster: kubectl.1.33 beside the real
# kubectl (Google Cloud SDK layout), else kubectl on PATH.
find_kubectl() {
  local k real
  k="$(command -v kubectl 2>/dev/null || true)"
  if [[ -n "${k}" ]]; then
    real="$(readlink -f "${k}")"
    if [[ -x "$(dirname "${real}")/kubectl.1.33" ]]; then
      echo "$(dirname "${real}")/kubectl.1.33"
      return
    fi
    echo "${k}"
    return
  fi
  echo kubectl
}

kc() { "${KUBECTL:-$(find_kubectl)}" --kubeconfig "${ADMIN_KUBECONFIG}" "$@"; }

# ---------------------------------------------------------------- processes

# proc_alive PID: the process exists and is not a zombie.
proc_alive() {
  local st
  [[ -r "/proc/$1/stat" ]] || return 1
  st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "${st}" && "${st}" != Z && "${st}" != X ]]
}

proc_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# is_ours PID: the process's argv names our state directory and its program
# is one of ours (containerd, shims, registry, etcd, kube-*, kubelet).
is_ours() {
  local cmd prog
  proc_alive "$1" || return 1
  cmd="$(proc_cmdline "$1")"
  [[ "${cmd}" == *"${D}/"* ]] || return 1
  prog="$(basename "${cmd%% *}")"
  case "${prog}" in
    containerd | containerd-shim* | registry | upstream-dns | nodelocal-dns | etcd | kube-apiserver | kube-proxy | kube-controller-manager | kube-scheduler | kubelet) return 0 ;;
  esac
  return 1
}

# pid_of NAME: pid from our pid file if that process is alive and ours.
pid_of() {
  local f="${RUN_DIR}/$1.pid" pid
  [[ -f "${f}" ]] || return 1
  pid="$(cat "${f}")"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  is_ours "${pid}" || return 1
  [[ "$(basename "$(proc_cmdline "${pid}" | cut -d' ' -f1)")" == "$1" ]] || return 1
  echo "${pid}"
}

# our_pids: every live process that is provably ours. (One grep over all
# cmdlines first: forking per process is slow on a busy machine.)
our_pids() {
  local f pid
  while IFS= read -r f; do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    [[ "${pid}" == "$$" || "${pid}" == "${BASHPID}" ]] && continue
    is_ours "${pid}" && echo "${pid}"
  done < <(grep -lsF -- "${D}/" /proc/[0-9]*/cmdline 2>/dev/null || true)
  return 0
}

# stop_pids SECONDS PID...: SIGTERM, wait up to SECONDS, then SIGKILL.
stop_pids() {
  local timeout="$1" pid left i
  shift
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    left=0
    for pid in "$@"; do proc_alive "${pid}" && left=1; done
    [[ ${left} -eq 0 ]] && return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if proc_alive "${pid}"; then
      log "killing ${pid} ($(proc_cmdline "${pid}" | cut -c1-80)) with SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 50; i++)); do
    left=0
    for pid in "$@"; do proc_alive "${pid}" && left=1; done
    [[ ${left} -eq 0 ]] && return 0
    sleep 0.1
  done
}

stop_daemon() {
  local name="$1" timeout="${2:-10}" pid t0=${SECONDS}
  if pid="$(pid_of "${name}")"; then
    stop_pids "${timeout}" "${pid}"
    log "stopped ${name} (pid ${pid}) in $((SECONDS - t0)) s"
  fi
  rm -f "${RUN_DIR}/${name}.pid"
}

# close_fds: close every file descriptor above 2 of the current (sub)shell.
# Call it in the subshell that execs a daemon, so the daemon does not keep
# what its starter had open, e.g. flock(1)'s lock when a cluster script runs
# under `flock /tmp/netdiag-e2e.lock ...` (a daemon holding it would block
# every later e2e run):
#   ( close_fds; exec setsid CMD... ) >>LOG 2>&1 </dev/null &
close_fds() {
  local fd
  for fd in /proc/"${BASHPID}"/fd/*; do
    fd="${fd##*/}"
    [[ "${fd}" =~ ^[0-9]+$ ]] && ((fd > 2)) && eval "exec ${fd}>&-" 2>/dev/null
  done
  return 0
}

# foreign_kubelet: prints the pid of a kubelet that is not ours, if any.
foreign_kubelet() {
  local f pid cmd
  while IFS= read -r f; do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    proc_alive "${pid}" || continue
    cmd="$(proc_cmdline "${pid}")"
    [[ "$(basename "${cmd%% *}")" == kubelet ]] || continue
    is_ours "${pid}" && continue
    echo "${pid}"
    return 0
  done < <(grep -lsF -- kubelet /proc/[0-9]*/cmdline 2>/dev/null || true)
  return 1
}

# ------------------------------------------------------------------ cleanup

kill_kubepods() {
  local cg procs pid
  if foreign_kubelet >/dev/null; then
    log "another kubelet runs on this machine; leaving kubepods cgroups alone"
    return 0
  fi
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "${cg}" ]] || continue
    procs="$(find "${cg}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    for pid in ${procs}; do kill -KILL "${pid}" 2>/dev/null || true; done
  done
  sleep 0.2
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "${cg}" ]] || continue
    # Thaw a frozen tree so killed tasks can exit.
    if [[ -f "${cg}/freezer.state" ]]; then
      find "${cg}" -name freezer.state -exec sh -c 'echo THAWED > "$1"' _ {} \; 2>/dev/null || true
    fi
    find "${cg}" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    if [[ -d "${cg}" ]]; then
      sleep 0.5
      find "${cg}" -depth -type d -exec rmdir {} \; 2>/dev/null || log "could not remove cgroup ${cg}"
    fi
  done
}

unmount_all() {
  local m i
  for ((i = 0; i < 3; i++)); do
    # Deepest first.
    mapfile -t mnts < <(awk -v d="${D}/" '{ gsub(/\\040/, " ", $5); if (index($5, d) == 1) print $5 }' /proc/self/mountinfo | sort -r -u)
    [[ ${#mnts[@]} -eq 0 ]] && break
    for m in "${mnts[@]}"; do
      umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true
    done
  done
  # The kubelet bind-mounts its root dir onto itself; the dir itself may be a mount.
  if awk -v d="${D}" '$5 == d {f=1} END {exit !f}' /proc/self/mountinfo; then
    umount "${D}" 2>/dev/null || umount -l "${D}" 2>/dev/null || true
  fi
}

# Network namespaces made by containerd's CRI for pods; only those no live
# process still uses (a used one belongs to someone else's running pod).
cleanup_netns() {
  local ns ino used
  [[ -d /run/netns ]] || return 0
  unhide_netns
  used="$(stat -L -c %i /proc/[0-9]*/ns/net 2>/dev/null | sort -u || true)"
  for ns in /run/netns/cni-*; do
    [[ -e "${ns}" ]] || continue
    ino="$(stat -L -c %i "${ns}" 2>/dev/null || true)"
    if [[ -n "${ino}" ]] && grep -qx "${ino}" <<<"${used}"; then
      continue
    fi
    umount "${ns}" 2>/dev/null || umount -l "${ns}" 2>/dev/null || true
    rm -f "${ns}"
  done
}

# netns_dir_mount_id: the mount ID of the mount at /run/netns itself, if any
# (the last one: the one on top).
netns_dir_mount_id() {
  awk '$5 == "/run/netns" {id = $1} END {if (id != "") print id}' /proc/self/mountinfo
}

# hidden_netns: nsfs mounts on /run/netns/cni-* that lie under a later bind
# of /run/netns onto itself: `ip netns add` makes one when /run/netns is not
# a mount point yet. Those mounts can then be neither unmounted nor unlinked
# (EBUSY) through /run/netns, and containerd cannot remove its sandboxes.
hidden_netns() {
  local top
  top="$(netns_dir_mount_id)"
  [[ -n "${top}" ]] || return 0
  awk -v top="${top}" '$5 ~ "^/run/netns/cni-" && $9 == "nsfs" && $2 != top {print $5}' /proc/self/mountinfo
}

# unhide_netns: lift such a bind so the cluster's namespaces can be removed.
unhide_netns() {
  local hidden
  hidden="$(hidden_netns)"
  [[ -n "${hidden}" ]] || return 0
  log "a later bind mount of /run/netns hides $(wc -l <<<"${hidden}") pod network namespaces; unmounting it"
  umount -l /run/netns 2>/dev/null || log "could not unmount /run/netns"
}

# ensure_netns_dir: make /run/netns a shared mount point of its own before
# containerd mounts pod namespaces in it (as `ip netns add` does), so that
# nothing stacks a bind over the cluster's namespaces later. Recorded, and
# undone by restore_netns_dir.
ensure_netns_dir() {
  mkdir -p /run/netns
  if [[ -z "$(netns_dir_mount_id)" ]]; then
    mount --rbind /run/netns /run/netns && mount --make-rshared /run/netns ||
      die "could not make /run/netns a shared mount point"
    echo /run/netns >"${NETNS_BIND_SAVE}"
  fi
}

# restore_netns_dir: undo ensure_netns_dir's bind when nothing is left in it.
restore_netns_dir() {
  [[ -f "${NETNS_BIND_SAVE}" ]] || return 0
  if [[ -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null || log "could not unmount /run/netns"
  fi
  rm -f "${NETNS_BIND_SAVE}"
}

cleanup_links() {
  local l
  if [[ -d "/sys/class/net/${BRIDGE}" ]]; then
    for l in "/sys/class/net/${BRIDGE}/brif"/*; do
      [[ -e "${l}" ]] || continue
      ip link delete "$(basename "${l}")" 2>/dev/null || true
    done
    ip link delete "${BRIDGE}" 2>/dev/null || true
  fi
  local a
  for a in "${UPSTREAM_DNS}" "${NODELOCAL_DNS}"; do
    if dns_addr_present "${a}"; then
      ip addr del "${a}/32" dev "${DNS_ADDR_DEV}" 2>/dev/null || log "could not remove ${a}/32 from ${DNS_ADDR_DEV}"
    fi
  done
}

# dns_addr_present [ADDR]: ADDR (default: any of the cluster's node DNS
# addresses) is on DNS_ADDR_DEV.
dns_addr_present() {
  local a addrs
  addrs="$(ip -4 -o addr show dev "${DNS_ADDR_DEV}" 2>/dev/null || true)"
  for a in "${1:-${UPSTREAM_DNS}}" "${1:-${NODELOCAL_DNS}}"; do
    grep -qF " ${a}/32 " <<<"${addrs}" && return 0
  done
  return 1
}

# set_nodelocal 0|1: whether the cluster has the node-local DNS cache
# (NODELOCAL; nodelocal-dns in DAEMONS, last: started after kube-proxy).
set_nodelocal() {
  local n kept=()
  for n in "${DAEMONS[@]}"; do [[ "${n}" == nodelocal-dns ]] || kept+=("${n}"); done
  DAEMONS=("${kept[@]}")
  NODELOCAL="$1"
  [[ "${NODELOCAL}" == 1 ]] && DAEMONS+=(nodelocal-dns)
  return 0
}
if [[ -f "${NODELOCAL_SAVE}" ]]; then set_nodelocal 1; else set_nodelocal 0; fi

# Remove every KUBE-* and CNI-* chain (and the jumps to them) from the
# iptables and ip6tables tables.
cleanup_iptables() {
  local cmd table rule chain
  for cmd in iptables ip6tables; do
    command -v "${cmd}" >/dev/null || continue
    for table in filter nat mangle raw; do
      "${cmd}" -t "${table}" -S >/dev/null 2>&1 || continue
      # Rules that jump to our chains, from built-in or any chain.
      while read -r rule; do
        [[ -n "${rule}" ]] || continue
        eval "${cmd} -t ${table} -D ${rule#-A }" 2>/dev/null || true
      done < <("${cmd}" -t "${table}" -S 2>/dev/null | grep -E '^-A ' | grep -E -- '-j (KUBE-|CNI-)' || true)
      while read -r chain; do
        [[ -n "${chain}" ]] || continue
        "${cmd}" -t "${table}" -F "${chain}" 2>/dev/null || true
      done < <("${cmd}" -t "${table}" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}')
      while read -r chain; do
        [[ -n "${chain}" ]] || continue
        "${cmd}" -t "${table}" -X "${chain}" 2>/dev/null || true
      done < <("${cmd}" -t "${table}" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}')
    done
  done
}

# Files outside ${D} that containerd / libcni / the kubelet create.
cleanup_host_files() {
  local f id
  # libcni's result cache: our network's entries and the loopback entries
  # of the same sandboxes (the name holds the sandbox id).
  for f in /var/lib/cni/results/"${CNI_NET_NAME}"-*; do
    [[ -e "${f}" ]] || continue
    id="${f#/var/lib/cni/results/"${CNI_NET_NAME}"-}"
    id="${id%%-*}"
    rm -f "${f}" "/var/lib/cni/results/cni-loopback-${id}-lo"
  done
  for f in "${CTRD_DIR}"/root/io.containerd.grpc.v1.cri/sandboxes/*; do
    [[ -e "${f}" ]] || continue
    rm -f "/var/lib/cni/results/cni-loopback-$(basename "${f}")-lo"
  done
  rmdir /var/lib/cni/results 2>/dev/null || true
  for f in /var/log/containers/*; do
    [[ -L "${f}" ]] || continue
    [[ "$(readlink "${f}")" == "${D}/"* ]] && rm -f "${f}"
  done
  rmdir /run/containerd/s 2>/dev/null || true
}

# cleanup_runtime: stop everything of ours and undo host side effects,
# without touching ${D}'s files (except mounts) or the saved sysctls.
cleanup_runtime() {
  local name pids i t0=${SECONDS}
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name="${DAEMONS[i]}"
    stop_daemon "${name}" 5
  done
  mapfile -t pids < <(our_pids)
  if [[ ${#pids[@]} -gt 0 ]]; then
    log "stopping leftover processes of this cluster: ${pids[*]}"
    stop_pids 5 "${pids[@]}"
  fi
  kill_kubepods
  unmount_all
  cleanup_netns
  cleanup_links
  cleanup_iptables
  cleanup_host_files
  log "host cleanup done in $((SECONDS - t0)) s"
}

save_created_dirs() {
  local d
  [[ -f "${CREATED_SAVE}" ]] && return 0
  for d in "${HOST_DIRS[@]}"; do
    [[ -e "${d}" ]] || echo "${d}"
  done >"${CREATED_SAVE}.tmp"
  mv "${CREATED_SAVE}.tmp" "${CREATED_SAVE}"
}

# remove_created_dirs: remove the host dirs the cluster created, when empty
# (containerd bind-mounts /run/netns onto itself; undo that too).
remove_created_dirs() {
  local d
  [[ -f "${CREATED_SAVE}" ]] || return 0
  while IFS= read -r d; do
    [[ -n "${d}" && -d "${d}" ]] || continue
    [[ -z "$(ls -A "${d}" 2>/dev/null)" ]] || continue
    if awk -v m="${d}" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo; then
      umount "${d}" 2>/dev/null || true
    fi
    rmdir "${d}" 2>/dev/null || true
  done <"${CREATED_SAVE}"
  rm -f "${CREATED_SAVE}"
}

# save_sysctls: record the values from before the first up; keys added to
# SYSCTLS since then are appended (already saved ones are kept).
save_sysctls() {
  local k v
  if [[ -f "${SYSCTL_SAVE}" ]]; then cp "${SYSCTL_SAVE}" "${SYSCTL_SAVE}.tmp"; else : >"${SYSCTL_SAVE}.tmp"; fi
  for k in "${SYSCTLS[@]}"; do
    grep -q "^${k}=" "${SYSCTL_SAVE}.tmp" && continue
    v="$(sysctl -n "${k}" 2>/dev/null)" || continue
    printf '%s=%s\n' "${k}" "${v}" >>"${SYSCTL_SAVE}.tmp"
  done
  mv "${SYSCTL_SAVE}.tmp" "${SYSCTL_SAVE}"
}

restore_sysctls() {
  local line
  [[ -f "${SYSCTL_SAVE}" ]] || return 0
  while IFS= read -r line; do
    [[ -n "${line}" ]] || continue
    sysctl -q -w "${line}" >/dev/null 2>&1 || log "could not restore sysctl ${line}"
  done <"${SYSCTL_SAVE}"
  rm -f "${SYSCTL_SAVE}"
}
