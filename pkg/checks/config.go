// Package checks is the engine behind `netdiag-helper check`: it looks at a
// node's bridge, neighbour table, pod veths, MTUs, conntrack table and
// processes, and reports what it finds as protocol.Finding values. See
// DESIGN.md, "What each check does".
//
// Every file is read below injected roots (Config.Proc, Config.Sys,
// Config.Kmsg, Config.HostRoot) so the parsers and the file-based checks run
// on fixture trees in tests; the network checks use netlink in the network
// namespace Config.NetNS (the current one by default).
package checks

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Check names, in the order they run (protocol.Checks is the registry).
const (
	CheckBridge    = protocol.CheckBridge
	CheckVeth      = protocol.CheckVeth
	CheckARP       = protocol.CheckARP
	CheckMTU       = protocol.CheckMTU
	CheckConntrack = protocol.CheckConntrack
	CheckStale     = protocol.CheckStale
	CheckDNS       = protocol.CheckDNS
)

// AllChecks lists every check in the order Run runs them.
var AllChecks = protocol.CheckNames()

// Defaults.
const (
	DefaultTop    = protocol.DefaultTop
	DefaultRecent = protocol.DefaultRecent
	// DefaultDropSample is the gap between the conntrack check's two
	// reads of the drop counters.
	DefaultDropSample = protocol.DefaultDropSample
)

// PodInfo describes one pod on the node, as the plugin knows it from the
// API (--pods-json or --pod).
type PodInfo = protocol.PodInfo

// Config is what `netdiag-helper check` was asked to do.
type Config struct {
	// Proc, Sys: where procfs and sysfs are mounted (/proc, /sys).
	Proc, Sys string
	// Kmsg is the kernel log to scan: /dev/kmsg (read without blocking up
	// to its current end) or a text file of kmsg records or dmesg lines.
	Kmsg string
	// HostRoot is the node's / (runtime sockets are looked up below it).
	HostRoot string
	// NetNS is the network namespace file of the node's network
	// (/proc/1/ns/net, /run/netns/X); empty means the current one.
	NetNS string
	// Checks to run; empty means all that apply.
	Checks []string
	// Bridge is the pod bridge; empty means auto-detect (cbr0, cni0,
	// docker0, then any bridge).
	Bridge string
	// PodIP, PodUID name the pod a pod-scoped check looks at.
	PodIP  net.IP
	PodUID string
	// Port is the port whose holder the stale check names (0: none).
	Port int
	// ExpectedMTU is the pod MTU the network should have (0: derive it
	// from the uplink's MTU minus the overlay's overhead).
	ExpectedMTU int
	// KnownContainers are container IDs the API reports for the pod.
	KnownContainers []string
	// Pods are the node's pods, for the arp check and node-wide runs.
	Pods []PodInfo
	// PodCIDRs scope the conntrack top-IP list; empty means the bridge's
	// subnets (and the IPs of Pods).
	PodCIDRs []*net.IPNet
	// RuntimeEndpoint is the CRI socket (a node path, looked up below
	// HostRoot, or unix:///path); empty means try containerd's and
	// CRI-O's default sockets.
	RuntimeEndpoint string
	// Top is how many IPs the conntrack check lists by entries; 0 skips
	// the conntrack table dump.
	Top int
	// Recent is how far back a "table full" kernel message makes the
	// conntrack check warn; older ones are counted and reported.
	Recent time.Duration
	// DropSample is how long the conntrack check waits between its two
	// reads of the per-CPU drop counters (0: DefaultDropSample; negative:
	// read once, and say drops now cannot be told).
	DropSample time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ARPWait bounds how long the arp check waits for answers to its
	// probes (0: DefaultARPWait).
	ARPWait time.Duration
	// DNS is what the dns check asks.
	DNS DNSConfig

	// runtime, when set, replaces the CRI client (tests).
	runtime runtimeLister
	// prober, when set, replaces the raw-socket neighbour prober
	// (tests).
	prober neighProber
	// sleep, when set, replaces time.Sleep between the two reads of the
	// conntrack counters (tests change the fixture there).
	sleep func(time.Duration)
	// dumpConntrack, when set, replaces the netlink conntrack dump
	// (tests).
	dumpConntrack func() ([]flowAddrs, error)
	// dnsExchange, when set, replaces the dns check's queries (tests).
	dnsExchange dnsExchanger
}

// ConfigFrom turns a parsed request into the engine's Config: addresses
// parsed, the host root found (/host when it exists, else /).
func ConfigFrom(req protocol.CheckRequest) (Config, error) {
	cfg := Config{
		Proc: req.Proc, Sys: req.Sys, Kmsg: req.Kmsg, HostRoot: req.HostRoot, NetNS: req.NetNS,
		Checks: req.Checks, Bridge: req.Bridge, PodUID: req.PodUID, Port: req.Port,
		ExpectedMTU: req.ExpectedMTU, KnownContainers: req.KnownContainers, Pods: req.Pods,
		RuntimeEndpoint: req.RuntimeEndpoint, Top: req.Top, Recent: req.Recent, DropSample: req.DropSample,
		DNS: DNSConfig{
			ServiceIP: req.DNSIP, Endpoints: req.DNSEndpoints, NodeLocalIP: req.NodeLocalIP,
			Name: req.DNSName, ClusterDomain: req.ClusterDomain, SkipReason: req.DNSSkipReason,
		},
	}
	if req.PodIP != "" {
		if cfg.PodIP = net.ParseIP(req.PodIP); cfg.PodIP == nil {
			return Config{}, &protocol.UsageError{Msg: fmt.Sprintf("--pod-ip %q is not an IP address", req.PodIP)}
		}
	}
	for _, c := range req.PodCIDRs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return Config{}, &protocol.UsageError{Msg: fmt.Sprintf("--pod-cidr %q is not a CIDR", c)}
		}
		cfg.PodCIDRs = append(cfg.PodCIDRs, n)
	}
	if cfg.DropSample == 0 {
		cfg.DropSample = -1 // read once
	}
	if cfg.HostRoot == "" {
		cfg.HostRoot = "/"
		if fi, err := os.Stat("/host"); err == nil && fi.IsDir() {
			cfg.HostRoot = "/host"
		}
	}
	return cfg, nil
}

// withDefaults fills what a Config built by hand (tests) leaves empty.
func (c Config) withDefaults() Config {
	if c.Proc == "" {
		c.Proc = "/proc"
	}
	if c.Sys == "" {
		c.Sys = "/sys"
	}
	if c.HostRoot == "" {
		c.HostRoot = "/"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Recent == 0 {
		c.Recent = DefaultRecent
	}
	if c.DropSample == 0 {
		c.DropSample = DefaultDropSample
	}
	if c.sleep == nil {
		c.sleep = time.Sleep
	}
	if c.ARPWait <= 0 {
		c.ARPWait = DefaultARPWait
	}
	return c
}

// wants says whether the check was asked for (explicitly or by default).
func (c Config) wants(name string) (wanted, explicit bool) {
	if len(c.Checks) == 0 {
		return true, false
	}
	for _, n := range c.Checks {
		if n == name {
			return true, true
		}
	}
	return false, false
}

// targets are the pods the pod-scoped checks (veth, mtu, arp, stale) look
// at: the one named by --pod-ip/--pod-uid (merged with its entry in Pods when
// one matches), then the others in Pods.
func (c Config) targets() []PodInfo {
	var out []PodInfo
	var self *PodInfo
	if c.PodIP != nil || c.PodUID != "" {
		p := PodInfo{IP: c.PodIP, UID: c.PodUID, Containers: c.KnownContainers}
		out = append(out, p)
		self = &out[0]
	}
	for _, p := range c.Pods {
		if self != nil && ((p.UID != "" && normalizeUID(p.UID) == normalizeUID(self.UID)) || (p.IP != nil && p.IP.Equal(self.IP))) {
			if self.UID == "" {
				self.UID = p.UID
			}
			if self.IP == nil {
				self.IP = p.IP
			}
			self.Namespace, self.Name = p.Namespace, p.Name
			if self.MAC == "" {
				self.MAC = p.MAC
			}
			self.Containers = append(self.Containers, p.Containers...)
			continue
		}
		out = append(out, p)
	}
	return out
}
