#!/usr/bin/env bash
# Brings up a real single-node Kubernetes cluster on this machine from
# nothing: containerd (own socket/root), etcd, kube-apiserver, kube-proxy
# (iptables mode), kube-controller-manager, kube-scheduler and kubelet, with a
# CNI bridge (cbr0) pod network, and cluster DNS: CoreDNS as the kube-dns
# Service, forwarding to a test upstream DNS server on the node (zone
# example.test). No Docker and no container registry are needed: the sandbox
# (pause) image, a busybox test image and the CoreDNS image are built locally
# and imported. All state lives under ${NETDIAG_CLUSTER_DIR:-/var/lib/netdiag-cluster};
# binaries are cached in ${CACHE_DIR:-$HOME/.cache/kubectl-netdiag}/k8s/<version>/bin
# and .../coredns/<version>.
#
# Idempotent: when this cluster is already up and healthy it exits 0 at once.
# Tear down with e2e/cluster/down.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
# shellcheck source=e2e/cluster/lib.sh
source "${HERE}/lib.sh"

PACKAGES=(containerd runc containernetworking-plugins iptables conntrack openssl iproute2 busybox-static curl)
START=${SECONDS}
KUBECTL="$(find_kubectl)"
export KUBECTL

print_usage() {
  cat <<EOF

Cluster is up (node ${NODE_NAME}). Use it with:
  source ${ENV_FILE}
  \$KUBECTL get nodes
Cluster DNS:               kube-dns ${DNS_IP} (domain ${CLUSTER_DOMAIN}), upstream ${UPSTREAM_DNS} (zone ${TEST_ZONE}), pods use $([[ "${NODELOCAL}" == 1 ]] && echo "the node-local cache ${NODELOCAL_DNS}" || echo "${DNS_IP}")
  busybox nslookup kubernetes.default.svc.${CLUSTER_DOMAIN} ${DNS_IP}
Import an image archive:   ${HERE}/import-image.sh FILE.tar
Tear it down:              ${HERE}/down.sh
Logs:                      ${LOG_DIR}/*.log
EOF
}

# ----------------------------------------------------------------- helpers

# The node-local DNS cache is wanted (NETDIAG_CLUSTER_NODELOCAL=1); a
# running cluster without it (or with it, when not wanted) is restarted.
WANT_NODELOCAL=0
[[ "${NETDIAG_CLUSTER_NODELOCAL:-0}" == 1 ]] && WANT_NODELOCAL=1

tail_log() {
  local f="${LOG_DIR}/$1.log"
  if [[ -f "${f}" ]]; then
    echo "----- last lines of ${f} -----" >&2
    tail -n 40 "${f}" >&2
    echo "-----" >&2
  fi
}

fail() {
  local name="$1"
  shift
  log "ERROR: $*"
  [[ -n "${name}" ]] && tail_log "${name}"
  log "state and logs are in ${D}; run ${HERE}/down.sh to clean up"
  exit 1
}

# wait_for NAME TIMEOUT_S DESCRIPTION CMD...: poll CMD until it succeeds;
# fail (with NAME's log) on timeout or when daemon NAME died.
wait_for() {
  local name="$1" timeout="$2" what="$3" deadline
  shift 3
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "${name}" ]] && ! pid_of "${name}" >/dev/null; then
      fail "${name}" "${name} exited while waiting for ${what}"
    fi
    if ((SECONDS >= deadline)); then
      fail "${name}" "timed out after ${timeout}s waiting for ${what}"
    fi
    sleep 0.2
  done
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start_daemon() {
  local name="$1" pid
  shift
  log "starting ${name}"
  # close_fds: a daemon must not keep what up.sh had open (flock's lock
  # when up.sh runs under `flock /tmp/netdiag-e2e.lock`).
  ( close_fds; exec setsid "$@" ) >>"${LOG_DIR}/${name}.log" 2>&1 </dev/null &
  pid=$!
  echo "${pid}" >"${RUN_DIR}/${name}.pid"
  sleep 0.1
  if ! proc_alive "${pid}"; then
    fail "${name}" "${name} exited right after start"
  fi
}

healthy() {
  local name
  [[ -f "${ENV_FILE}" ]] || return 1
  [[ "${NODELOCAL}" == "${WANT_NODELOCAL}" ]] || return 1
  for name in "${DAEMONS[@]}"; do
    pid_of "${name}" >/dev/null || return 1
  done
  kc --request-timeout=5s get --raw /readyz >/dev/null 2>&1 || return 1
  [[ "$(kc --request-timeout=5s get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# dns_answers SERVER NAME: SERVER resolves NAME (busybox nslookup, from the node).
dns_answers() {
  local out
  out="$(timeout 5 busybox nslookup "$2" "$1" 2>&1)" || return 1
  grep -q '^Address:.*[0-9]' <<<"$(sed -n '/^Name:/,$p' <<<"${out}")"
}

# cluster_dns_ready: the kube-dns ClusterIP (so kube-proxy and CoreDNS)
# answers for the API's Service name and, through the upstream, the test zone.
cluster_dns_ready() {
  dns_answers "${DNS_IP}" "kubernetes.default.svc.${CLUSTER_DOMAIN}" &&
    dns_answers "${DNS_IP}" "www.${TEST_ZONE}" || return 1
  if [[ "${NODELOCAL}" == 1 ]]; then
    dns_answers "${NODELOCAL_DNS}" "kubernetes.default.svc.${CLUSTER_DOMAIN}" &&
      dns_answers "${NODELOCAL_DNS}" "www.${TEST_ZONE}" || return 1
  fi
}

# ensure_cluster_dns: apply the kube-dns addon (idempotent) and wait until
# it answers.
ensure_cluster_dns() {
  sed -e "s|@CLUSTER_DOMAIN@|${CLUSTER_DOMAIN}|g" -e "s|@UPSTREAM_DNS@|${UPSTREAM_DNS}|g" \
    -e "s|@DNS_IP@|${DNS_IP}|g" -e "s|@COREDNS_IMAGE@|${COREDNS_IMAGE}|g" \
    "${HERE}/manifests/coredns.yaml" >"${D}/coredns.yaml"
  kc --request-timeout=20s apply -f "${D}/coredns.yaml" >>"${LOG_DIR}/addons.log" 2>&1 ||
    fail addons "applying the kube-dns addon (${D}/coredns.yaml) failed"
  wait_for kube-proxy 120 "cluster DNS (${DNS_IP}) to answer for kubernetes.default.svc.${CLUSTER_DOMAIN} and www.${TEST_ZONE}" cluster_dns_ready
}

ensure_packages() {
  # The containerd package may start the system containerd; we run our own
  # and do not need it.
  "${REPO}/hack/ensure-packages.sh" "${PACKAGES[@]}"
}

# check_ports: refuse to start when a process that is not ours listens on
# one of our ports.
check_ports() {
  local port line pid busy=0
  for port in "${PORTS[@]}"; do
    line="$(ss -Hltnp "sport = :${port}" 2>/dev/null | head -n1)"
    [[ -n "${line}" ]] || continue
    pid="$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"${line}")"
    if [[ -n "${pid}" ]] && is_ours "${pid}"; then
      continue
    fi
    if [[ -n "${pid}" ]]; then
      log "port ${port} is held by pid ${pid}: $(proc_cmdline "${pid}" | cut -c1-160)"
    else
      log "port ${port} is in use: ${line}"
    fi
    busy=1
  done
  [[ ${busy} -eq 0 ]] || die "ports needed by the cluster are in use by other processes (see above); stop them first"
}

host_network() {
  local route
  route="$(ip -4 -o route get 1.1.1.1 2>/dev/null || true)"
  NODE_IP="$(sed -n 's/.* src \([0-9.]*\).*/\1/p' <<<"${route}")"
  UPLINK="$(sed -n 's/.* dev \([^ ]*\).*/\1/p' <<<"${route}")"
  if [[ -z "${NODE_IP}" ]]; then
    NODE_IP="$(ip -4 -o addr show scope global | awk '{split($4, a, "/"); print a[1]; exit}')"
    UPLINK="$(ip -4 -o addr show scope global | awk '{print $2; exit}')"
  fi
  [[ -n "${NODE_IP}" ]] || die "no non-loopback IPv4 address found for --node-ip"
  MTU="$(cat "/sys/class/net/${UPLINK}/mtu" 2>/dev/null || echo 1500)"
}

# ------------------------------------------------------------------- certs

gen_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# mkcert NAME SUBJECT EXTKEYUSAGE [SAN]
mkcert() {
  local name="$1" subj="$2" eku="$3" san="${4:-}"
  gen_key "${PKI}/${name}.key"
  openssl req -new -key "${PKI}/${name}.key" -subj "${subj}" -out "${PKI}/${name}.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${eku}"
    [[ -n "${san}" ]] && echo "subjectAltName=${san}"
  } >"${PKI}/${name}.ext"
  openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "${PKI}/${name}.ext" -out "${PKI}/${name}.crt" 2>/dev/null
  rm -f "${PKI}/${name}.csr" "${PKI}/${name}.ext"
}

gen_certs() {
  log "generating certificates"
  mkdir -p "${PKI}"
  gen_key "${PKI}/ca.key"
  openssl req -x509 -new -key "${PKI}/ca.key" -subj "/CN=netdiag-e2e-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "${PKI}/ca.crt" 2>/dev/null
  mkcert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:${NODE_IP},IP:${SERVICE_IP},DNS:localhost,DNS:${NODE_NAME},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  mkcert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  mkcert admin "/O=system:masters/CN=netdiag-admin" clientAuth
  mkcert kubelet-client "/O=system:nodes/CN=system:node:${NODE_NAME}" clientAuth
  mkcert kubelet-serving "/O=system:nodes/CN=system:node:${NODE_NAME}" serverAuth \
    "IP:${NODE_IP},IP:127.0.0.1,DNS:${NODE_NAME},DNS:localhost"
  mkcert controller-manager "/CN=system:kube-controller-manager" clientAuth
  mkcert scheduler "/CN=system:kube-scheduler" clientAuth
  mkcert kube-proxy "/CN=system:kube-proxy" clientAuth
  gen_key "${PKI}/sa.key"
  openssl pkey -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
  chmod 600 "${PKI}"/*.key
}

# kubeconfig NAME CERTNAME
kubeconfig() {
  cat >"${KCFG_DIR}/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: netdiag
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ${PKI}/ca.crt
users:
- name: $1
  user:
    client-certificate: ${PKI}/$2.crt
    client-key: ${PKI}/$2.key
contexts:
- name: netdiag
  context:
    cluster: netdiag
    user: $1
    namespace: default
current-context: netdiag
EOF
}

# ------------------------------------------------------------------ images

build_images() {
  local bb app apps=()
  log "building images ${PAUSE_IMAGE}, ${WEB_IMAGE} and ${COREDNS_IMAGE}"
  mkdir -p "${IMG_DIR}/web"
  (cd "${REPO}" && CGO_ENABLED=0 go build -trimpath -o "${IMG_DIR}/mkimage" ./hack/mkimage &&
    CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "${IMG_DIR}/pause" ./e2e/cluster/pause &&
    CGO_ENABLED=0 go build -trimpath -o "${D}/bin/registry" ./e2e/cluster/registry) ||
    die "building hack/mkimage, e2e/cluster/pause or e2e/cluster/registry failed"
  "${IMG_DIR}/mkimage" --tag "${PAUSE_IMAGE}" --out "${IMG_DIR}/pause.tar" \
    --file "${IMG_DIR}/pause:/pause:0755" --entrypoint /pause 2>>"${LOG_DIR}/images.log"

  bb=/bin/busybox
  [[ -x "${bb}" ]] || die "${bb} not found (package busybox-static)"
  printf 'netdiag-web ok\n' >"${IMG_DIR}/web/index.html"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"${IMG_DIR}/web/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"${IMG_DIR}/web/group"
  local wanted=(sh ash httpd wget sleep nc ip cat echo ls ps ping ping6 ifconfig route netstat
    grep sed awk head tail tee true false env id hostname mkdir rm mv cp ln kill date timeout
    nslookup arping traceroute top uname dd seq wc cut tr printf test '[' sort uniq xargs find
    mount df du free touch chmod which vi less more tar gzip sync dmesg watch pidof pgrep pkill
    basename dirname readlink realpath stat usleep yes od hexdump md5sum sha256sum)
  local have
  have=" $("${bb}" --list | tr '\n' ' ') "
  for app in "${wanted[@]}"; do
    [[ "${have}" == *" ${app} "* ]] && apps+=(--symlink "/bin/${app}:busybox")
  done
  "${IMG_DIR}/mkimage" --tag "${WEB_IMAGE}" --out "${IMG_DIR}/web.tar" \
    --file "${bb}:/bin/busybox:0755" \
    --file "${IMG_DIR}/web/index.html:/www/index.html:0644" \
    --file "${IMG_DIR}/web/passwd:/etc/passwd:0644" \
    --file "${IMG_DIR}/web/group:/etc/group:0644" \
    --dir /tmp --dir /root --dir /proc --dir /sys --dir /dev \
    "${apps[@]}" \
    --entrypoint /bin/busybox --cmd httpd,-f,-p,8080,-h,/www 2>>"${LOG_DIR}/images.log"

  # CoreDNS: the binary alone; its Corefile comes from a ConfigMap.
  "${IMG_DIR}/mkimage" --tag "${COREDNS_IMAGE}" --out "${IMG_DIR}/coredns.tar" \
    --file "${COREDNS_BIN}:/coredns:0755" --dir /tmp \
    --entrypoint /coredns 2>>"${LOG_DIR}/images.log"
}

import_images() {
  log "importing images into containerd"
  ctr --address "${CTRD_SOCK}" -n k8s.io images import "${IMG_DIR}/pause.tar" >>"${LOG_DIR}/images.log" 2>&1 ||
    fail images "importing ${PAUSE_IMAGE} failed"
  ctr --address "${CTRD_SOCK}" -n k8s.io images import "${IMG_DIR}/web.tar" >>"${LOG_DIR}/images.log" 2>&1 ||
    fail images "importing ${WEB_IMAGE} failed"
  ctr --address "${CTRD_SOCK}" -n k8s.io images import "${IMG_DIR}/coredns.tar" >>"${LOG_DIR}/images.log" 2>&1 ||
    fail images "importing ${COREDNS_IMAGE} failed"
}

# ----------------------------------------------------------------- configs

write_containerd_config() {
  mkdir -p "${CTRD_DIR}/root" "${CTRD_DIR}/state" "${CTRD_DIR}/opt" "${CTRD_DIR}/runc" "${CNI_CONF_DIR}" "${CNI_IPAM_DIR}"
  cat >"${CTRD_DIR}/config.toml" <<EOF
version = 2
root = "${CTRD_DIR}/root"
state = "${CTRD_DIR}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "${CTRD_SOCK}"

[ttrpc]
  address = "${CTRD_SOCK}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${CTRD_DIR}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${CTRD_DIR}/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${CTRD_DIR}/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${CNI_CONF_DIR}"
    max_conf_num = 1
EOF
  # The local registry speaks plain HTTP on the loopback address.
  mkdir -p "${CTRD_DIR}/certs.d/${REGISTRY}"
  cat >"${CTRD_DIR}/certs.d/${REGISTRY}/hosts.toml" <<EOF
server = "http://${REGISTRY_ADDR}"

[host."http://${REGISTRY_ADDR}"]
  capabilities = ["pull", "resolve"]
EOF
  cat >"${CNI_CONF_DIR}/10-${CNI_NET_NAME}.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "${CNI_NET_NAME}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "mtu": ${MTU},
      "ipam": {
        "type": "host-local",
        "dataDir": "${CNI_IPAM_DIR}",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${POD_GW}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  mkdir -p "${KUBELET_DIR}/pki" "${D}/pod-logs"
  cat >"${KUBELET_DIR}/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://${CTRD_SOCK}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${PKI}/ca.crt
authorization:
  mode: Webhook
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${PKI}/kubelet-serving.crt
tlsPrivateKeyFile: ${PKI}/kubelet-serving.key
podCIDR: ${POD_CIDR}
podLogsDir: ${D}/pod-logs
clusterDomain: ${CLUSTER_DOMAIN}
clusterDNS:
- ${POD_DNS}
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
maxPods: 110
EOF
}

write_kube_proxy_config() {
  mkdir -p "${D}/kube-proxy"
  # conntrack zeros and localhostNodePorts=false: kube-proxy leaves the
  # host's nf_conntrack_max, TCP timeouts and route_localnet sysctls alone.
  cat >"${D}/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${KCFG_DIR}/kube-proxy.kubeconfig
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${POD_CIDR}
nodePortAddresses: [primary]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables:
  localhostNodePorts: false
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 1s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# setup_upstream_dns: the upstream's address (a /32 on lo), its Corefile
# and zone, and the upstream-dns name for the CoreDNS binary.
setup_upstream_dns() {
  mkdir -p "${D}/dns" "${D}/bin"
  ip addr replace "${UPSTREAM_DNS}/32" dev "${DNS_ADDR_DEV}" ||
    die "could not add ${UPSTREAM_DNS}/32 to ${DNS_ADDR_DEV} for the upstream DNS server"
  cp "${HERE}/upstream/${TEST_ZONE}.zone" "${D}/dns/${TEST_ZONE}.zone"
  # Only TEST_ZONE: any other name is refused, nothing is forwarded further.
  cat >"${D}/dns/Corefile" <<EOF
${TEST_ZONE}:53 {
    bind ${UPSTREAM_DNS}
    file ${D}/dns/${TEST_ZONE}.zone
    errors
    log
}
EOF
  ln -sfn "${COREDNS_BIN}" "${D}/bin/upstream-dns"
}

# setup_nodelocal_dns: the node-local cache's address (a /32 on lo), its
# Corefile and the nodelocal-dns name for the CoreDNS binary. Unlike the
# real NodeLocal DNSCache it adds no NOTRACK rules and forwards the cluster
# domain to the kube-dns ClusterIP itself (through kube-proxy's rules).
setup_nodelocal_dns() {
  mkdir -p "${D}/nodelocal" "${D}/bin"
  ip addr replace "${NODELOCAL_DNS}/32" dev "${DNS_ADDR_DEV}" ||
    die "could not add ${NODELOCAL_DNS}/32 to ${DNS_ADDR_DEV} for the node-local DNS cache"
  cat >"${D}/nodelocal/Corefile" <<EOF
${CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${NODELOCAL_DNS}
    errors
    cache 30
    forward . ${DNS_IP} {
        force_tcp
    }
}
.:53 {
    bind ${NODELOCAL_DNS}
    errors
    cache 30
    forward . ${UPSTREAM_DNS}
}
EOF
  ln -sfn "${COREDNS_BIN}" "${D}/bin/nodelocal-dns"
}

# --------------------------------------------------------------------- main

require_root

if [[ -d "${D}" ]] && healthy; then
  if ! cluster_dns_ready; then
    log "cluster DNS does not answer; applying the kube-dns addon again"
    ensure_cluster_dns
  fi
  log "cluster in ${D} is already up and healthy (node ${NODE_NAME})"
  print_usage
  exit 0
fi

ensure_packages
"${HERE}/build-k8s.sh"
"${HERE}/build-coredns.sh"
for b in "${DAEMONS[@]}"; do
  case "${b}" in containerd | registry | upstream-dns | nodelocal-dns) continue ;; esac
  [[ -x "${K8S_BIN}/${b}" ]] || die "missing ${K8S_BIN}/${b}"
done
[[ -x "${COREDNS_BIN}" ]] || die "missing ${COREDNS_BIN}"

# Remove leftovers of an earlier run of this script (keeping the saved
# sysctls, which still hold the values from before the first run).
if [[ -e "${D}" ]] || [[ -d "/sys/class/net/${BRIDGE}" ]] || [[ -n "$(our_pids)" ]]; then
  log "cleaning up leftovers of an earlier run in ${D}"
  cleanup_runtime
  if [[ -d "${D}" ]]; then
    find "${D}" -mindepth 1 -maxdepth 1 ! -name "$(basename "${SYSCTL_SAVE}")" ! -name "$(basename "${CREATED_SAVE}")" ! -name "$(basename "${NETNS_BIND_SAVE}")" -exec rm -rf --one-file-system {} +
  fi
fi
set_nodelocal "${WANT_NODELOCAL}"
POD_DNS="${DNS_IP}"
[[ "${NODELOCAL}" == 1 ]] && POD_DNS="${NODELOCAL_DNS}"
check_ports
host_network
log "node ${NODE_NAME}, IP ${NODE_IP}, uplink ${UPLINK} (MTU ${MTU}), state in ${D}"

mkdir -p "${D}" "${LOG_DIR}" "${RUN_DIR}" "${KCFG_DIR}" "${ETCD_DIR}" "${IMG_DIR}"
chmod 700 "${D}"
[[ "${NODELOCAL}" == 1 ]] && touch "${NODELOCAL_SAVE}"
save_sysctls
save_created_dirs
ensure_netns_dir
# Bridged pod-to-pod traffic must pass iptables, or a pod's reply to another
# pod that reached it through a ClusterIP skips kube-proxy's un-DNAT.
sysctl -q -w net.bridge.bridge-nf-call-iptables=1 ||
  die "could not set net.bridge.bridge-nf-call-iptables=1 (kube-proxy needs bridged traffic in iptables)"

gen_certs
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kubelet kubelet-client
kubeconfig kube-proxy kube-proxy
build_images
write_containerd_config
write_kubelet_config
write_kube_proxy_config
setup_upstream_dns
[[ "${NODELOCAL}" == 1 ]] && setup_nodelocal_dns

# containerd
start_daemon containerd containerd --config "${CTRD_DIR}/config.toml" --log-level info
wait_for containerd 30 "containerd socket" ctr --address "${CTRD_SOCK}" version
import_images

# the registry (images pushed by the tests; the kubelet pulls from it)
start_daemon registry "${D}/bin/registry" --addr "${REGISTRY_ADDR}"
wait_for registry 30 "registry on ${REGISTRY_ADDR}" tcp_open 127.0.0.1 "${REGISTRY_ADDR##*:}"

# the node's test upstream DNS server
start_daemon upstream-dns "${D}/bin/upstream-dns" -conf "${D}/dns/Corefile"
wait_for upstream-dns 30 "upstream DNS on ${UPSTREAM_DNS}" dns_answers "${UPSTREAM_DNS}" "www.${TEST_ZONE}"

# etcd
start_daemon etcd "${K8S_BIN}/etcd" --name netdiag --data-dir "${ETCD_DIR}" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster netdiag=http://127.0.0.1:2380 --initial-cluster-state new \
  --unsafe-no-fsync --log-level warn
wait_for etcd 30 "etcd on 127.0.0.1:2379" tcp_open 127.0.0.1 2379

# kube-apiserver
start_daemon kube-apiserver "${K8S_BIN}/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --secure-port=6443 --advertise-address="${NODE_IP}" \
  --allow-privileged=true \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction \
  --client-ca-file="${PKI}/ca.crt" \
  --tls-cert-file="${PKI}/apiserver.crt" --tls-private-key-file="${PKI}/apiserver.key" \
  --kubelet-client-certificate="${PKI}/apiserver-kubelet-client.crt" \
  --kubelet-client-key="${PKI}/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="${PKI}/ca.crt" \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --service-account-key-file="${PKI}/sa.pub" \
  --service-account-signing-key-file="${PKI}/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range="${SERVICE_CIDR}" \
  --profiling=false --v=1
wait_for kube-apiserver 90 "kube-apiserver /readyz" kc --request-timeout=3s get --raw /readyz

# kube-proxy (iptables mode): Services' ClusterIPs
start_daemon kube-proxy "${K8S_BIN}/kube-proxy" --config="${D}/kube-proxy/config.yaml" --v=1
if [[ "${NODELOCAL}" == 1 ]]; then
  start_daemon nodelocal-dns "${D}/bin/nodelocal-dns" -conf "${D}/nodelocal/Corefile"
fi

# controller-manager and scheduler
start_daemon kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
  --kubeconfig="${KCFG_DIR}/controller-manager.kubeconfig" \
  --authentication-kubeconfig="${KCFG_DIR}/controller-manager.kubeconfig" \
  --authorization-kubeconfig="${KCFG_DIR}/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10257 \
  --use-service-account-credentials=true --controllers='*' --leader-elect=false \
  --service-account-private-key-file="${PKI}/sa.key" --root-ca-file="${PKI}/ca.crt" \
  --cluster-signing-cert-file="${PKI}/ca.crt" --cluster-signing-key-file="${PKI}/ca.key" \
  --profiling=false --v=1
start_daemon kube-scheduler "${K8S_BIN}/kube-scheduler" \
  --kubeconfig="${KCFG_DIR}/scheduler.kubeconfig" \
  --authentication-kubeconfig="${KCFG_DIR}/scheduler.kubeconfig" \
  --authorization-kubeconfig="${KCFG_DIR}/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1

# kubelet
start_daemon kubelet "${K8S_BIN}/kubelet" \
  --config="${KUBELET_DIR}/config.yaml" \
  --kubeconfig="${KCFG_DIR}/kubelet.kubeconfig" \
  --root-dir="${KUBELET_DIR}" --cert-dir="${KUBELET_DIR}/pki" \
  --node-ip="${NODE_IP}" --hostname-override="${NODE_NAME}" --v=1

node_ready() {
  [[ "$(kc --request-timeout=3s get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for kubelet 120 "node ${NODE_NAME} Ready" node_ready
log "node ${NODE_NAME} is Ready after $((SECONDS - START)) s"
wait_for kube-controller-manager 120 "ServiceAccount default/default" kc --request-timeout=3s -n default get serviceaccount default
wait_for kube-controller-manager 120 "ConfigMap default/kube-root-ca.crt" kc --request-timeout=3s -n default get configmap kube-root-ca.crt
wait_for kube-proxy 60 "kube-proxy /healthz" curl -sSf --max-time 3 -o /dev/null http://127.0.0.1:10256/healthz
ensure_cluster_dns
log "cluster DNS ${DNS_IP} answers after $((SECONDS - START)) s"

cat >"${ENV_FILE}.tmp" <<EOF
# netdiag e2e cluster; KEY=value lines (no quoting needed), then an export line.
# Use: source ${ENV_FILE}
KUBECONFIG=${ADMIN_KUBECONFIG}
CONTAINERD_ADDRESS=${CTRD_SOCK}
NODE_NAME=${NODE_NAME}
NODE_IP=${NODE_IP}
KUBECTL=${KUBECTL}
NETDIAG_CLUSTER_DIR=${D}
REGISTRY=${REGISTRY}
POD_CIDR=${POD_CIDR}
SERVICE_CIDR=${SERVICE_CIDR}
NETDIAG_DNS_IP=${DNS_IP}
NETDIAG_CLUSTER_DOMAIN=${CLUSTER_DOMAIN}
NETDIAG_UPSTREAM_DNS=${UPSTREAM_DNS}
NETDIAG_TEST_ZONE=${TEST_ZONE}
NETDIAG_NODELOCAL_DNS=$([[ "${NODELOCAL}" == 1 ]] && echo "${NODELOCAL_DNS}")
NETDIAG_POD_DNS=${POD_DNS}
export KUBECONFIG CONTAINERD_ADDRESS NODE_NAME NODE_IP KUBECTL NETDIAG_CLUSTER_DIR REGISTRY POD_CIDR SERVICE_CIDR NETDIAG_DNS_IP NETDIAG_CLUSTER_DOMAIN NETDIAG_UPSTREAM_DNS NETDIAG_TEST_ZONE NETDIAG_NODELOCAL_DNS NETDIAG_POD_DNS
EOF
mv "${ENV_FILE}.tmp" "${ENV_FILE}"
log "cluster up in $((SECONDS - START)) s"
print_usage
