#!/usr/bin/env bash
# make demo: on the running local cluster (make cluster-up load-image build
# come first, the Makefile sees to it), start a sample web workload with
# traffic, capture its packets with kubectl netdiag, show what was caught,
# then run the node checks.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER_DIR="${NETDIAG_CLUSTER_DIR:-/var/lib/netdiag-cluster}"
# shellcheck disable=SC1091
source "$CLUSTER_DIR/env"
export KUBECONFIG PATH="$PWD/_output/bin:$PATH"
k() { "$KUBECTL" "$@"; }
ns=netdiag-demo
out=_output/demo.pcap

command -v tcpdump >/dev/null || apt-get install -y -qq tcpdump >/dev/null

echo "== sample workload in namespace $ns: a web server and a client polling it"
k get namespace "$ns" >/dev/null 2>&1 || k create namespace "$ns"
until k -n "$ns" get serviceaccount default >/dev/null 2>&1; do sleep 0.5; done
k -n "$ns" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: $NODE_NAME
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: localhost/netdiag-web:v1
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /www]
YAML
k -n "$ns" wait --for=condition=Ready pod/web --timeout=90s
web_ip=$(k -n "$ns" get pod web -o jsonpath='{.status.podIP}')
k -n "$ns" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: $NODE_NAME
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: localhost/netdiag-web:v1
    imagePullPolicy: Never
    command: [sh, -c, "while true; do wget -qO /dev/null http://$web_ip:8080/; sleep 1; done"]
YAML
k -n "$ns" wait --for=condition=Ready pod/client --timeout=90s

echo
echo "== kubectl netdiag capture pod/web -n $ns -f 'tcp port 8080' --duration 5s -w $out"
k netdiag capture pod/web -n "$ns" -f 'tcp port 8080' --duration 5s -w "$out"

echo
echo "== what was captured (tcpdump -nr $out -c 20)"
# -c, not "| head": under pipefail tcpdump dies writing into a closed pipe.
tcpdump -nr "$out" -c 20 2>/dev/null

echo
echo "== kubectl netdiag node check $NODE_NAME -n $ns"
# Exit 3 means a check failed: that is a finding to show, not a demo failure.
rc=0
k netdiag node check "$NODE_NAME" -n "$ns" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"

echo
echo "The cluster keeps running (KUBECONFIG=$KUBECONFIG, kubectl: $KUBECTL)."
echo "Try: PATH=\$PWD/_output/bin:\$PATH KUBECONFIG=$KUBECONFIG $KUBECTL netdiag capture pod/web -n $ns -w -  | tcpdump -nr -"
echo "Stop it with: make cluster-down"
