#!/usr/bin/env bash
# Smoke test of the cluster started by e2e/cluster/up.sh: node Ready, a
# busybox httpd pod answers from the host, kubectl exec works, an ephemeral
# container can be added, a privileged hostNetwork/hostPID pod with the
# host's / at /host runs, a ClusterIP Service answers from the node and from
# another pod, and cluster DNS resolves Service names and, through the node's
# upstream, the test zone. Cleans up its namespace afterwards.
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
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: ${WEB_IMAGE}
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: ${WEB_IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
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
k wait --for=condition=Ready pod/web pod/client pod/node-debug --timeout=60s
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

# Services and DNS (kube-proxy, CoreDNS as kube-dns, the node's upstream).
SVC_IP="$(k get service web -o jsonpath='{.spec.clusterIP}')"
DOMAIN="${NETDIAG_CLUSTER_DOMAIN:-cluster.local}"
SVC_NAME="web.${NS}.svc.${DOMAIN}"
# kube-proxy may need a moment for the new Service.
for _ in $(seq 1 50); do
  out="$(wget -qO- -T 2 "http://${SVC_IP}/" 2>/dev/null || true)"
  [[ "${out}" == "netdiag-web ok" ]] && break
  sleep 0.2
done
[[ "${out}" == "netdiag-web ok" ]] || die "ClusterIP ${SVC_IP}:80 of service web does not answer from the node (got: ${out})"
echo "host -> ClusterIP ${SVC_IP}: ok"

# pod_http HOST: the body of http://HOST:80/ fetched from pod client with nc
# (busybox wget, statically linked with glibc, crashes inside pods).
pod_http() {
  k exec client -- sh -c "printf 'GET / HTTP/1.0\r\nHost: \$1\r\n\r\n' | nc -w 5 \$1 80" _ "$1" | tail -n 1
}
out="$(pod_http "${SVC_IP}" || true)"
[[ "${out}" == "netdiag-web ok" ]] || die "ClusterIP ${SVC_IP}:80 does not answer from pod client: ${out}"
echo "pod -> ClusterIP ${SVC_IP}: ok"

out="$(k exec client -- cat /etc/resolv.conf)"
POD_DNS="${NETDIAG_POD_DNS:-${NETDIAG_DNS_IP}}"
grep -q "^nameserver ${POD_DNS}\$" <<<"${out}" || die "pod resolv.conf does not name the cluster DNS ${POD_DNS}: ${out}"
out="$(k exec client -- nslookup "${SVC_NAME}")" || die "pod client cannot resolve ${SVC_NAME}: ${out}"
grep -q "^Address:.*${SVC_IP}\$" <<<"${out}" || die "${SVC_NAME} did not resolve to ${SVC_IP}: ${out}"
out="$(pod_http "${SVC_NAME}" || true)"
[[ "${out}" == "netdiag-web ok" ]] || die "http://${SVC_NAME}/ from pod client returned: ${out}"
echo "pod -> DNS ${SVC_NAME} -> ${SVC_IP}: ok"

out="$(k exec client -- nslookup "kubernetes.default.svc.${DOMAIN}")" || die "pod cannot resolve kubernetes.default.svc.${DOMAIN}: ${out}"
grep -q "^Address:.*${SERVICE_IP}\$" <<<"${out}" || die "kubernetes.default.svc.${DOMAIN} did not resolve to the first service IP: ${out}"
out="$(k exec client -- nslookup "www.${NETDIAG_TEST_ZONE}")" || die "pod cannot resolve www.${NETDIAG_TEST_ZONE} (forwarded to the upstream ${NETDIAG_UPSTREAM_DNS}): ${out}"
grep -q '^Address:.*198\.51\.100\.10$' <<<"${out}" || die "www.${NETDIAG_TEST_ZONE} did not resolve to 198.51.100.10: ${out}"
echo "pod -> DNS kubernetes.default and www.${NETDIAG_TEST_ZONE} (upstream ${NETDIAG_UPSTREAM_DNS}): ok"

out="$(busybox nslookup "kubernetes.default.svc.${DOMAIN}" "${NETDIAG_DNS_IP}")" || die "the node cannot resolve kubernetes.default.svc.${DOMAIN} at ${NETDIAG_DNS_IP}: ${out}"
echo "host -> DNS ${NETDIAG_DNS_IP}: ok"
if [[ -n "${NETDIAG_NODELOCAL_DNS:-}" ]]; then
  out="$(busybox nslookup "www.${NETDIAG_TEST_ZONE}" "${NETDIAG_NODELOCAL_DNS}")" || die "the node-local DNS cache ${NETDIAG_NODELOCAL_DNS} cannot resolve www.${NETDIAG_TEST_ZONE}: ${out}"
  echo "host -> node-local DNS cache ${NETDIAG_NODELOCAL_DNS}: ok"
fi
echo "smoke test passed in $((SECONDS - START)) s"
