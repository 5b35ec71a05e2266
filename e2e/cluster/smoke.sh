#!/usr/bin/env bash
# Smoke test of the cluster started by e2e/cluster/up.sh: node Ready, a
# busybox httpd pod answers from the host, kubectl exec works, an ephemeral
# container can be added, and a privileged hostNetwork/hostPID pod with the
# host's / at /host runs. Cleans up its namespace afterwards.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/lib.sh
source "${HERE}/lib.sh"
[[ -f "${ENV_FILE}" ]] || die "${ENV_FILE} not found; run ${HERE}/up.sh first"
# shellcheck disable=SC1090
source "${ENV_FILE}"

NS="netdiag-smoke"
k() { "${KUBECTL}" -n "${NS}" "$@"; }
START=${SECONDS}

cleanup() { "${KUBECTL}" delete namespace "${NS}" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

"${KUBECTL}" get nodes -o wide
[[ "$("${KUBECTL}" get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] ||
  die "node ${NODE_NAME} is not Ready"

"${KUBECTL}" create namespace "${NS}" >/dev/null
for _ in $(seq 1 100); do
  k get serviceaccount default >/dev/null 2>&1 && k get configmap kube-root-ca.crt >/dev/null 2>&1 && break
  sleep 0.2
done

k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: ${WEB_IMAGE}
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
---
apiVersion: v1
kind: Pod
metadata:
  name: node-debug
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  hostPID: true
  containers:
  - name: debug
    image: ${WEB_IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    securityContext:
      privileged: true
    volumeMounts:
    - name: host
      mountPath: /host
  volumes:
  - name: host
    hostPath:
      path: /
EOF
k wait --for=condition=Ready pod/web pod/node-debug --timeout=60s
POD_IP="$(k get pod web -o jsonpath='{.status.podIP}')"
echo "web pod IP ${POD_IP}"

out="$(wget -qO- -T 5 "http://${POD_IP}:8080/")"
[[ "${out}" == "netdiag-web ok" ]] || die "unexpected answer from the web pod: ${out}"
echo "host -> pod HTTP: ok (${out})"

out="$(k exec web -- cat /www/index.html)"
[[ "${out}" == "netdiag-web ok" ]] || die "kubectl exec returned: ${out}"
echo "kubectl exec: ok"

k debug web --profile=general --image="${WEB_IMAGE}" --image-pull-policy=Never --container=dbg -- sleep 30 >/dev/null
for _ in $(seq 1 100); do
  st="$(k get pod web -o jsonpath='{.status.ephemeralContainerStatuses[?(@.name=="dbg")].state.running.startedAt}')"
  [[ -n "${st}" ]] && break
  sleep 0.2
done
[[ -n "${st}" ]] || die "ephemeral container did not start: $(k get pod web -o jsonpath='{.status.ephemeralContainerStatuses}')"
echo "ephemeral container: running since ${st}"

out="$(k exec node-debug -- sh -c 'cat /host/proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo no-conntrack; ls /sys/class/net | tr "\n" " "; echo; cat /proc/1/comm; ls /host/etc/os-release')"
echo "node-debug pod:"
printf '  %s\n' "${out//$'\n'/$'\n'  }"
grep -q "${BRIDGE}" <<<"${out}" || die "node-debug pod does not see ${BRIDGE}"
echo "privileged hostNetwork/hostPID pod with /host: ok"
echo "smoke test passed in $((SECONDS - START)) s"
