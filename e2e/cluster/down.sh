#!/usr/bin/env bash
# Tears down the cluster started by e2e/cluster/up.sh and undoes its host
# side effects: pods are deleted while the kubelet is still healthy (bounded
# time), daemons are stopped by PID, leftover pod processes/shims are killed,
# mounts under the state dir and CNI netns are removed, veths and cbr0 are
# deleted (and the upstream DNS server's address on lo), KUBE-*/CNI-* iptables
# chains (the kubelet's and kube-proxy's) are removed, the kubepods cgroups
# are removed and the sysctls the kubelet rewrote are restored. The state
# directory is removed; its logs are kept in ${NETDIAG_CLUSTER_DIR}.last-logs.
# The binary cache (${CACHE_DIR}) is kept.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/lib.sh
source "${HERE}/lib.sh"

require_root
START=${SECONDS}

if [[ ! -e "${D}" ]] && [[ ! -d "/sys/class/net/${BRIDGE}" ]] && ! dns_addr_present && [[ -z "$(our_pids)" ]]; then
  log "nothing to tear down (${D} does not exist)"
  exit 0
fi

KUBECTL="$(find_kubectl)"
export KUBECTL
if pid_of kube-apiserver >/dev/null && pid_of kubelet >/dev/null && [[ -f "${ADMIN_KUBECONFIG}" ]]; then
  # Controllers would recreate deleted pods.
  stop_daemon kube-controller-manager 5
  stop_daemon kube-scheduler 5
  log "deleting pods while the kubelet is healthy (at most 40 s)"
  kc --request-timeout=10s delete pods --all-namespaces --all --grace-period=2 --wait=false >/dev/null 2>&1 || true
  deadline=$((SECONDS + 40))
  while ((SECONDS < deadline)); do
    n="$(kc --request-timeout=5s get pods --all-namespaces --no-headers 2>/dev/null | wc -l)" || n=1
    [[ "${n}" -eq 0 ]] && break
    sleep 0.5
  done
  [[ "${n:-0}" -eq 0 ]] || log "${n} pods still present; continuing with a forced cleanup"
  # Give the kubelet a moment to tear the sandboxes (CNI DEL) down.
  for _ in $(seq 1 20); do
    [[ -z "$(ls -A "/sys/class/net/${BRIDGE}/brif" 2>/dev/null)" ]] && break
    sleep 0.25
  done
fi

log "stopping daemons"
cleanup_runtime
restore_sysctls
restore_netns_dir
remove_created_dirs

if [[ -d "${D}" ]]; then
  if [[ -d "${LOG_DIR}" ]]; then
    rm -rf "${LAST_LOGS_DIR}"
    mv "${LOG_DIR}" "${LAST_LOGS_DIR}"
  fi
  # Make sure nothing is mounted below before removing the tree.
  unmount_all
  if awk -v d="${D}" '$5 == d || index($5, d "/") == 1 {f=1} END {exit !f}' /proc/self/mountinfo; then
    die "mounts remain under ${D}; not removing it (see: grep ${D} /proc/self/mountinfo)"
  fi
  rm -rf --one-file-system "${D}"
fi
log "cluster torn down in $((SECONDS - START)) s (logs kept in ${LAST_LOGS_DIR})"
