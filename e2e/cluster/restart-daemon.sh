#!/usr/bin/env bash
# Stops one daemon of the local e2e cluster (e2e/cluster/up.sh), keeps it down
# for a while, starts it again with the very command line, environment and
# working directory it had (read from /proc before stopping it, so it stays
# exactly what up.sh started), and waits until it is healthy again. For
# testing how the plugin survives a control-plane or node daemon outage, e.g.
# a capture whose exec stream breaks when the API server dies.
#
#   e2e/cluster/restart-daemon.sh DAEMON [--kill] [--down DURATION] [--timeout SECONDS]
#
#   --kill             SIGKILL (a crash); default: SIGTERM, wait up to 30 s, then SIGKILL
#   --down DURATION    how long it stays down: 10s, 1.5s, 500ms, 2m (default 0)
#   --timeout SECONDS  how long to wait for it to be healthy again (default 120)
#
# Run it under the e2e lock, like the e2e tests:
#
#   flock /tmp/netdiag-e2e.lock e2e/cluster/restart-daemon.sh kube-apiserver --kill --down 10s
#
# The command line is saved in ${RUN_DIR}/DAEMON.launch.* while the daemon is
# down; if this script is interrupted (Ctrl-C, SIGTERM), it starts the daemon
# before exiting (status 130, without waiting for it to be healthy), and if it
# was killed outright, running it again for the same daemon starts the daemon
# from the saved command line. The daemon gets none of this script's open
# files: under flock(1) it must not hold the e2e lock. The restarted daemon
# appends to the same log (${LOG_DIR}/DAEMON.log) and pid file as up.sh's.
# Exit status: 0 when the daemon and the cluster are healthy again, 1 otherwise.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/lib.sh
source "${HERE}/lib.sh"

KUBECTL="$(find_kubectl)"
export KUBECTL

usage() {
  cat >&2 <<EOF
usage: $0 DAEMON [--kill] [--down DURATION] [--timeout SECONDS]
DAEMON is one of: ${DAEMONS[*]}
EOF
  exit 2
}

NAME=""
KILL=0
DOWN="0"
TIMEOUT=120
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kill) KILL=1 ;;
    --down)
      [[ $# -ge 2 ]] || die "--down needs a duration, e.g. --down 10s"
      DOWN="$2"
      shift
      ;;
    --down=*) DOWN="${1#--down=}" ;;
    --timeout)
      [[ $# -ge 2 ]] || die "--timeout needs a number of seconds, e.g. --timeout 120"
      TIMEOUT="$2"
      shift
      ;;
    --timeout=*) TIMEOUT="${1#--timeout=}" ;;
    -h | --help) usage ;;
    -*) die "unknown flag $1 (flags: --kill, --down DURATION, --timeout SECONDS)" ;;
    *)
      [[ -z "${NAME}" ]] || die "only one daemon at a time (got ${NAME} and $1)"
      NAME="$1"
      ;;
  esac
  shift
done
[[ -n "${NAME}" ]] || usage
known=0
for n in "${DAEMONS[@]}"; do [[ "${n}" == "${NAME}" ]] && known=1; done
[[ ${known} -eq 1 ]] || die "unknown daemon \"${NAME}\"; the cluster's daemons are: ${DAEMONS[*]}"
[[ "${TIMEOUT}" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a whole number of seconds, e.g. --timeout 120 (got \"${TIMEOUT}\")"

# to_seconds DURATION: 10s, 1.5s, 500ms, 2m or a bare number of seconds →
# seconds as accepted by sleep(1).
to_seconds() {
  local v="$1" n unit
  [[ "${v}" =~ ^([0-9]+(\.[0-9]+)?)(ms|s|m)?$ ]] || return 1
  n="${BASH_REMATCH[1]}"
  unit="${BASH_REMATCH[3]}"
  case "${unit}" in
    ms) awk -v n="${n}" 'BEGIN { printf "%.3f\n", n / 1000 }' ;;
    m) awk -v n="${n}" 'BEGIN { printf "%.3f\n", n * 60 }' ;;
    *) echo "${n}" ;;
  esac
}
DOWN_S="$(to_seconds "${DOWN}")" || die "--down must be a duration like 10s, 1.5s, 500ms or 2m (got \"${DOWN}\")"

require_root
[[ -d "${RUN_DIR}" && -f "${ENV_FILE}" ]] || die "no cluster in ${D}; start it with ${HERE}/up.sh"

LAUNCH="${RUN_DIR}/${NAME}.launch"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
https_ok() { curl -ksSf --max-time 3 -o /dev/null "$1" 2>/dev/null; }
apiserver_ready() { kc --request-timeout=3s get --raw /readyz >/dev/null 2>&1; }
# dns_answers SERVER NAME: SERVER resolves NAME.
dns_answers() {
  local out
  out="$(timeout 5 busybox nslookup "$2" "$1" 2>&1)" || return 1
  grep -q '^Address:.*[0-9]' <<<"$(sed -n '/^Name:/,$p' <<<"${out}")"
}
node_ready() {
  [[ "$(kc --request-timeout=3s get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# ready NAME: the daemon itself answers (and what depends on it directly).
ready() {
  case "$1" in
    containerd) ctr --address "${CTRD_SOCK}" version >/dev/null 2>&1 ;;
    registry) tcp_open 127.0.0.1 "${REGISTRY_ADDR##*:}" ;;
    upstream-dns) dns_answers "${UPSTREAM_DNS}" "www.${TEST_ZONE}" ;;
    nodelocal-dns) dns_answers "${NODELOCAL_DNS}" "www.${TEST_ZONE}" ;;
    etcd) curl -sSf --max-time 3 http://127.0.0.1:2379/health 2>/dev/null | grep -q '"health":"true"' && apiserver_ready ;;
    kube-apiserver) apiserver_ready ;;
    kube-proxy) curl -sSf --max-time 3 -o /dev/null http://127.0.0.1:10256/healthz 2>/dev/null ;;
    kube-controller-manager) https_ok https://127.0.0.1:10257/healthz ;;
    kube-scheduler) https_ok https://127.0.0.1:10259/healthz ;;
    kubelet) curl -sSf --max-time 3 -o /dev/null http://127.0.0.1:10248/healthz 2>/dev/null && node_ready ;;
    *) return 1 ;;
  esac
}

# cluster_ready: every daemon runs, the API is ready and the node is Ready.
cluster_ready() {
  local n
  for n in "${DAEMONS[@]}"; do pid_of "${n}" >/dev/null || return 1; done
  apiserver_ready && node_ready
}

# pods_snapshot: namespace/name, uid, phase and restart counts of every pod.
pods_snapshot() {
  kc --request-timeout=10s get pods --all-namespaces --no-headers \
    -o custom-columns='NS:.metadata.namespace,NAME:.metadata.name,UID:.metadata.uid,PHASE:.status.phase,RESTARTS:.status.containerStatuses[*].restartCount' 2>/dev/null | sort
}

# save_launch PID: the daemon's argv, environment and working directory.
save_launch() {
  local pid="$1"
  cat "/proc/${pid}/cmdline" >"${LAUNCH}.argv.tmp"
  cat "/proc/${pid}/environ" >"${LAUNCH}.environ.tmp"
  readlink "/proc/${pid}/cwd" >"${LAUNCH}.cwd.tmp" || echo / >"${LAUNCH}.cwd.tmp"
  [[ -s "${LAUNCH}.argv.tmp" ]] || die "could not read the command line of ${NAME} (pid ${pid})"
  mv "${LAUNCH}.environ.tmp" "${LAUNCH}.environ"
  mv "${LAUNCH}.cwd.tmp" "${LAUNCH}.cwd"
  mv "${LAUNCH}.argv.tmp" "${LAUNCH}.argv" # last: its presence means "complete"
}

STARTED=0
# start_saved: start the daemon as up.sh did (setsid, log appended, stdin
# /dev/null, pid file), from the saved launch files. No file descriptor of
# ours (e.g. the flock(1) lock) is passed on: a daemon holding the e2e lock
# would block every later test run.
start_saved() {
  local argv=() environ=() cwd pid
  mapfile -d '' -t argv <"${LAUNCH}.argv"
  mapfile -d '' -t environ <"${LAUNCH}.environ"
  cwd="$(cat "${LAUNCH}.cwd")"
  [[ -d "${cwd}" ]] || cwd=/
  log "starting ${NAME}: $(printf '%s ' "${argv[@]}" | cut -c1-160)"
  (
    close_fds
    cd "${cwd}"
    exec setsid env -i "${environ[@]}" "${argv[@]}"
  ) >>"${LOG_DIR}/${NAME}.log" 2>&1 </dev/null &
  pid=$!
  echo "${pid}" >"${RUN_DIR}/${NAME}.pid"
  STARTED=1
  rm -f "${LAUNCH}.argv" "${LAUNCH}.environ" "${LAUNCH}.cwd"
  sleep 0.2
  proc_alive "${pid}" || {
    tail -n 20 "${LOG_DIR}/${NAME}.log" >&2
    die "${NAME} exited right after start (log above: ${LOG_DIR}/${NAME}.log)"
  }
  NEW_PID="${pid}"
}

# wait_until TIMEOUT WHAT CMD...: poll CMD every 0.2 s.
wait_until() {
  local timeout="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! pid_of "${NAME}" >/dev/null; then
      tail -n 20 "${LOG_DIR}/${NAME}.log" >&2
      die "${NAME} exited while waiting for ${what} (log above: ${LOG_DIR}/${NAME}.log)"
    fi
    ((SECONDS < deadline)) || die "${NAME} runs but ${what} did not happen within ${timeout} s; see ${LOG_DIR}/${NAME}.log"
    sleep 0.2
  done
}

SLEEP_PID=""
on_interrupt() {
  [[ -n "${SLEEP_PID}" ]] && kill "${SLEEP_PID}" 2>/dev/null
  if [[ ${STARTED} -eq 0 && -f "${LAUNCH}.argv" ]]; then
    log "interrupted while ${NAME} is down; starting it again"
    start_saved
  fi
  exit 130
}

if ! OLD_PID="$(pid_of "${NAME}")"; then
  if [[ -f "${LAUNCH}.argv" ]]; then
    log "${NAME} is down since an earlier run of $(basename "$0") was interrupted; starting it from ${LAUNCH}.argv"
    T_START="$(now)"
    start_saved
    wait_until "${TIMEOUT}" "${NAME} healthy" ready "${NAME}"
    wait_until "${TIMEOUT}" "the cluster healthy" cluster_ready
    log "${NAME} (pid ${NEW_PID}) healthy after $(since "${T_START}") s; cluster healthy"
    exit 0
  fi
  die "${NAME} is not running (no live process in ${RUN_DIR}/${NAME}.pid); restart the cluster with ${HERE}/up.sh"
fi
cluster_ready || log "warning: the cluster is not fully healthy before the restart (a daemon is down, /readyz fails or node ${NODE_NAME} is not Ready)"
[[ "${NAME}" == registry ]] && log "warning: the registry keeps images in memory; images pushed to ${REGISTRY} are lost"

PODS_BEFORE="$(pods_snapshot || true)"
save_launch "${OLD_PID}"
trap on_interrupt INT TERM

T_DOWN="$(now)"
if [[ ${KILL} -eq 1 ]]; then
  kill -KILL "${OLD_PID}" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    proc_alive "${OLD_PID}" || break
    sleep 0.1
  done
  proc_alive "${OLD_PID}" && die "${NAME} (pid ${OLD_PID}) is still alive 10 s after SIGKILL"
  log "killed ${NAME} (pid ${OLD_PID}) with SIGKILL"
else
  stop_pids 30 "${OLD_PID}"
  log "stopped ${NAME} (pid ${OLD_PID}) with SIGTERM in $(since "${T_DOWN}") s"
fi
rm -f "${RUN_DIR}/${NAME}.pid"

log "keeping ${NAME} down for ${DOWN_S} s"
# In the background, so that a signal's trap runs at once.
sleep "${DOWN_S}" &
SLEEP_PID=$!
wait "${SLEEP_PID}"

T_START="$(now)"
start_saved
trap - INT TERM
wait_until "${TIMEOUT}" "${NAME} healthy" ready "${NAME}"
log "${NAME} (pid ${NEW_PID}) healthy $(since "${T_START}") s after start; down for $(since "${T_DOWN}") s in total"
wait_until "${TIMEOUT}" "the cluster healthy (all daemons, /readyz, node ${NODE_NAME} Ready)" cluster_ready

PODS_AFTER="$(pods_snapshot || true)"
if [[ "${PODS_BEFORE}" == "${PODS_AFTER}" ]]; then
  log "cluster healthy; pods unchanged ($(grep -c . <<<"${PODS_AFTER}") pods: same UIDs, phases and restart counts)"
else
  log "cluster healthy; pods changed during the restart (< before, > after):"
  diff <(echo "${PODS_BEFORE}") <(echo "${PODS_AFTER}") | grep '^[<>] .' >&2 || true
fi
