// Package dnsdiag is the plugin's DNS engine behind `kubectl netdiag dns`:
// it reads what a pod's resolver will do (its resolv.conf), what the
// cluster's DNS is made of (the kube-dns Service, its endpoints, the
// CoreDNS pods, their logs and Corefile), queries every hop from the pod's
// network namespace (through the helper in the netdiag ephemeral
// container) and the upstream from the node (through a node-debug pod),
// and names the failing hop. Run gathers; Judge, a pure function, decides.
package dnsdiag

import (
	"context"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Hops, in the order a query travels: the pod's nameserver, the node-local
// cache (when that layout is present), the kube-dns ClusterIP, each CoreDNS
// endpoint, and CoreDNS's upstream.
const (
	HopResolvConf = "resolv.conf"
	HopNodeLocal  = "node-local"
	HopClusterIP  = "clusterip"
	HopEndpoint   = "endpoint"
	HopUpstream   = "upstream"
)

// What a finding is about, and the failing hops Judge names.
const (
	// FailConfig: the pod's resolv.conf (nameserver, dnsPolicy, search).
	FailConfig = "config"
	// FailControl: the kube-dns Service has no ready endpoints (or no
	// Service at all).
	FailControl = "control"
	// FailNodeLocal: the node-local cache does not answer, the cluster
	// DNS behind it does.
	FailNodeLocal = "node-local"
	// FailService: the CoreDNS endpoints answer, the ClusterIP does not:
	// the Service translation on the node (kube-proxy rules).
	FailService = "service"
	// FailCoreDNS: the CoreDNS endpoints are ready but do not answer.
	FailCoreDNS = "coredns"
	// FailUpstream: cluster names resolve, external ones get SERVFAIL or
	// no answer.
	FailUpstream = "upstream"
	// FailUDP: TCP answers where UDP does not: UDP/53 is blocked.
	FailUDP = "udp53"
	// Conntrack is the subject of the conntrack and --load findings.
	Conntrack = "conntrack"
)

// NodeLocalAddress is the link-local address NodeLocal DNSCache listens on.
const NodeLocalAddress = "169.254.20.10"

// FailingHopText says in words what each failing hop means.
var FailingHopText = map[string]string{
	FailConfig:    "the pod's DNS configuration (resolv.conf)",
	FailControl:   "the cluster DNS control plane (kube-dns Service without ready endpoints)",
	FailNodeLocal: "the node-local DNS cache on the pod's node",
	FailService:   "the Service translation on the node (kube-proxy rules)",
	FailCoreDNS:   "the CoreDNS pods",
	FailUpstream:  "the upstream DNS server CoreDNS forwards to",
	FailUDP:       "UDP/53 blocked",
}

// Config is one run, already validated.
type Config struct {
	Namespace string
	Pod       string
	// Container is the target container of the netdiag ephemeral
	// container; "" picks the default one.
	Container string
	// Names are looked up besides the cluster name.
	Names []string
	// Type is A or AAAA.
	Type string
	// Load is the helper's --load (0: none).
	Load int
	// QueryTimeout bounds each query.
	QueryTimeout time.Duration
	// Rate bounds the queries a second of the whole run (pod and node
	// together).
	Rate int

	Image       string
	PullPolicy  string
	PullSecrets []string
	// StartTimeout bounds the wait for the netdiag container and the
	// node-debug pod to run.
	StartTimeout time.Duration
	// NoNode skips the node-debug pod: no upstream probe from the node,
	// no conntrack counters.
	NoNode bool
	// DNSNamespace is where the kube-dns Service and CoreDNS live.
	DNSNamespace string
	// LogSince and LogTail bound the CoreDNS log lines read.
	LogSince time.Duration
	LogTail  int64
	// Kubelet, when set, reads the kubelet's clusterDomain, clusterDNS
	// and resolvConf of a node (KubeletDNS).
	Kubelet func(ctx context.Context, node string) (domain string, dns []string, resolv string)
}

// DefaultConfig is the default run.
func DefaultConfig() Config {
	return Config{Type: "A", QueryTimeout: time.Second, Rate: protocol.DefaultDNSRate, StartTimeout: time.Minute,
		DNSNamespace: "kube-system", LogSince: 10 * time.Minute, LogTail: 200}
}

// PodDNS is what the pod spec says about DNS.
type PodDNS struct {
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	Node        string   `json:"node"`
	DNSPolicy   string   `json:"dnsPolicy"`
	HostNetwork bool     `json:"hostNetwork,omitempty"`
	Nameservers []string `json:"dnsConfigNameservers,omitempty"`
	Searches    []string `json:"dnsConfigSearches,omitempty"`
	Options     []string `json:"dnsConfigOptions,omitempty"`
}

// DNSPod is a CoreDNS (or node-local cache) pod.
type DNSPod struct {
	Name     string `json:"name"`
	Node     string `json:"node"`
	IP       string `json:"ip,omitempty"`
	Phase    string `json:"phase"`
	Ready    bool   `json:"ready"`
	Restarts int32  `json:"restarts"`
}

// Control is what the API says about the cluster DNS.
type Control struct {
	Service string `json:"service,omitempty"`
	// ServiceError says why no kube-dns Service was found or read.
	ServiceError string `json:"serviceError,omitempty"`
	ClusterIP    string `json:"clusterIP,omitempty"`
	// Endpoints are the ready endpoint addresses of the Service's
	// EndpointSlices; NotReady counts the others.
	Endpoints      []string `json:"endpoints"`
	NotReady       int      `json:"notReady,omitempty"`
	EndpointsError string   `json:"endpointsError,omitempty"`
	Pods           []DNSPod `json:"pods"`
	PodsError      string   `json:"podsError,omitempty"`
	// NodeLocalPods are node-local-dns pods on the pod's node.
	NodeLocalPods []DNSPod `json:"nodeLocalPods,omitempty"`
	Logs          []LogHit `json:"logs,omitempty"`
	LogsError     string   `json:"logsError,omitempty"`
	// Upstream are the Corefile's forward targets for the root zone.
	Upstream      []string `json:"upstream,omitempty"`
	CorefileError string   `json:"corefileError,omitempty"`
	// ClusterDomain and ClusterDNS are the kubelet's (configz), when read.
	ClusterDomain string   `json:"clusterDomain,omitempty"`
	ClusterDNS    []string `json:"clusterDNS,omitempty"`
	// NodeResolvConf is the kubelet's resolvConf (dnsPolicy Default).
	NodeResolvConf string `json:"nodeResolvConf,omitempty"`
}

// Observations are everything Judge looks at.
type Observations struct {
	Pod PodDNS
	// ResolvConf is the pod's; Computed says it was computed from the pod
	// spec because the helper could not read it.
	ResolvConf protocol.ResolvConf
	Computed   bool
	// NodeLocal is the node-local cache's address when that layout is
	// present ("" when not).
	NodeLocal string
	Control   Control
	// ClusterName is the cluster name probed (absolute), Names the
	// user's names as probed at the hops (absolute).
	ClusterName string
	Names       []string
	// Lookups are the queries a lookup of each user name sends to the
	// pod's first nameserver (search expansion, UDP).
	Lookups []protocol.DNSProbe
	// Probes are the hop probes: the pod's and the node's (upstream).
	Probes []protocol.DNSProbe
	// UpstreamSkipped says why the upstream was not queried from the node.
	UpstreamSkipped string
	// NodeResolvConf is the node's resolv.conf (read by the node pod).
	NodeResolvConf *protocol.ResolvConf
	Load           *protocol.DNSLoad
	Conntrack      *protocol.ConntrackCounters
}

// Finding is one judgement, attributed to a hop.
type Finding struct {
	Hop      string            `json:"hop"`
	Severity protocol.Severity `json:"severity"`
	Subject  string            `json:"subject"`
	Message  string            `json:"message"`
	Remedy   string            `json:"remedy,omitempty"`
}

// Verdict is Judge's answer.
type Verdict struct {
	Findings []Finding `json:"findings"`
	// FailingHop is one of the Fail* constants, "" when every hop answers.
	FailingHop string `json:"failingHop"`
	// Reason says why that hop, in a sentence.
	Reason string `json:"failingHopReason,omitempty"`
}

// Result is a finished run.
type Result struct {
	Pod        PodDNS              `json:"pod"`
	ResolvConf protocol.ResolvConf `json:"resolvConf"`
	// ResolvConfComputed: the helper could not read the pod's
	// resolv.conf; this one is computed from the pod spec.
	ResolvConfComputed bool                        `json:"resolvConfComputed,omitempty"`
	Control            Control                     `json:"control"`
	Lookups            []protocol.DNSProbe         `json:"lookups,omitempty"`
	Hops               []protocol.DNSProbe         `json:"hops"`
	Load               *protocol.DNSLoad           `json:"load,omitempty"`
	Conntrack          *protocol.ConntrackCounters `json:"conntrack,omitempty"`
	Verdict
	// Container is the netdiag ephemeral container used; Reused says it
	// was there already.
	Container string `json:"container,omitempty"`
	Reused    bool   `json:"reused,omitempty"`
	// Queries is how many queries were sent, Duration how long the run
	// took.
	Queries         int     `json:"queries"`
	DurationSeconds float64 `json:"durationSeconds"`
}
