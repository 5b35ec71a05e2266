package protocol

import (
	"fmt"
	"strings"
)

// Check names.
const (
	CheckBridge    = "bridge"
	CheckVeth      = "veth"
	CheckARP       = "arp"
	CheckMTU       = "mtu"
	CheckConntrack = "conntrack"
	CheckStale     = "stale"
	CheckDNS       = "dns"
)

// CheckInfo describes one check of `netdiag-helper check`: the plugin's
// --checks, its help and completion, and the helper's parser all read the
// registry.
type CheckInfo struct {
	Name string
	// Summary says what the check looks at, in a few words.
	Summary string
	// Network is true for the checks that read the node's network
	// (netlink, in the node's network namespace).
	Network bool
	// PodScoped is true for the checks that look at pods (all of them,
	// or the one of --pod-uid/--pod-ip).
	PodScoped bool
	// Flags are the CheckRequest flags that change what the check does.
	Flags []string
	// Data is the type of its findings' data.
	Data any
}

// Checks is every check, in the order the helper runs them.
var Checks = []CheckInfo{
	{Name: CheckBridge, Summary: "the pod bridge: up, carrier, gateway address, ports", Network: true,
		Flags: []string{"bridge"}, Data: BridgeData{}},
	{Name: CheckVeth, Summary: "each pod's host-side veth: found, up, paired with the pod's eth0", Network: true, PodScoped: true,
		Flags: []string{"pod-ip", "pod-uid", "pods-json", "pod"}, Data: VethData{}},
	{Name: CheckARP, Summary: "the node's neighbour entry of each pod IP: present, the pod's MAC, answering", Network: true, PodScoped: true,
		Flags: []string{"pod-ip", "pods-json", "pod"}, Data: ARPData{}},
	{Name: CheckMTU, Summary: "the MTU path: pod eth0, host veth, bridge, uplink, overlay overhead", Network: true, PodScoped: true,
		Flags: []string{"expected-mtu", "pod-uid", "pods-json", "pod"}, Data: MTUData{}},
	{Name: CheckConntrack, Summary: "the conntrack table: fill against MemTotal/32, drops now, table-full messages, top IPs",
		Flags: []string{"top", "recent", "drop-sample", "pod-cidr", "kmsg"}, Data: ConntrackData{}},
	{Name: CheckStale, Summary: "processes in a pod's cgroup whose container the runtime does not know, and the port they hold", PodScoped: true,
		Flags: []string{"pod-uid", "port", "known-containers", "runtime-endpoint", "host-root"}, Data: StaleData{}},
	{Name: CheckDNS, Summary: "cluster DNS from the node: the node-local cache, the kube-dns ClusterIP (UDP, TCP), each CoreDNS endpoint", Network: true,
		Flags: []string{"dns-ip", "dns-endpoints", "nodelocal-ip", "dns-name", "cluster-domain", "dns-skip-reason"}, Data: DNSCheckData{}},
}

// CheckNames are the names of Checks, in order.
func CheckNames() []string {
	out := make([]string, len(Checks))
	for i, c := range Checks {
		out[i] = c.Name
	}
	return out
}

// LookupCheck finds a check by name.
func LookupCheck(name string) (CheckInfo, bool) {
	for _, c := range Checks {
		if c.Name == name {
			return c, true
		}
	}
	return CheckInfo{}, false
}

// ParseCheckList validates a --checks list: names trimmed, empty entries
// dropped, each a known check, none twice.
func ParseCheckList(list []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, c := range list {
		c = strings.TrimSpace(c)
		if c == "" || seen[c] {
			continue
		}
		if _, ok := LookupCheck(c); !ok {
			return nil, fmt.Errorf("--checks: unknown check %q (known: %s)", c, strings.Join(CheckNames(), ","))
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, nil
}

// ChecksFlagUsage is the usage text of a --checks flag.
func ChecksFlagUsage(dflt string) string {
	return "checks to run: " + strings.Join(CheckNames(), ",") + " (default: " + dflt + ")"
}
