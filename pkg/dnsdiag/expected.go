package dnsdiag

import (
	"strconv"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// ExpectedResolvConf computes the resolv.conf the kubelet writes for the
// pod, the way it does: ClusterFirst (and ClusterFirstWithHostNet) get the
// cluster DNS, the search list <ns>.svc.<domain> svc.<domain> <domain> and
// ndots:5; hostNetwork with ClusterFirst, and Default, get the node's
// resolv.conf (node, nil when unknown); None gets the pod's dnsConfig
// alone. dnsConfig's nameservers and searches are appended, its options
// override. Nameservers and search domains past glibc's limits are listed
// in Ignored.
func ExpectedResolvConf(pod PodDNS, clusterDNS []string, domain string, node *protocol.ResolvConf) protocol.ResolvConf {
	rc := protocol.ResolvConf{Type: protocol.TypeResolvConf, Path: "(computed from the pod spec)", Ndots: 1}
	policy := pod.DNSPolicy
	if policy == "" {
		policy = "ClusterFirst"
	}
	if policy == "ClusterFirst" && pod.HostNetwork {
		policy = "Default"
	}
	var options []string
	switch policy {
	case "ClusterFirst", "ClusterFirstWithHostNet":
		rc.Nameservers = append(rc.Nameservers, clusterDNS...)
		if domain != "" {
			rc.Search = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		}
		if node != nil {
			rc.Search = append(rc.Search, node.Search...)
		}
		options = []string{"ndots:5"}
	case "Default":
		if node != nil {
			rc.Nameservers = append(rc.Nameservers, node.Nameservers...)
			rc.Search = append(rc.Search, node.Search...)
			options = append(options, node.Options...)
		}
	}
	rc.Nameservers = append(rc.Nameservers, pod.Nameservers...)
	rc.Search = dedupe(append(rc.Search, pod.Searches...))
	options = mergeOptions(options, pod.Options)
	rc.Options = options
	for _, o := range options {
		if v, ok := strings.CutPrefix(o, "ndots:"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				rc.Ndots = min(n, 15)
			}
		}
	}
	if len(rc.Nameservers) > MaxNameservers {
		for _, n := range rc.Nameservers[MaxNameservers:] {
			rc.Ignored = append(rc.Ignored, "nameserver "+n)
		}
	}
	if len(rc.Search) > MaxSearch {
		for _, s := range rc.Search[MaxSearch:] {
			rc.Ignored = append(rc.Ignored, "search "+s)
		}
	}
	if rc.Nameservers == nil {
		rc.Nameservers = []string{}
	}
	if rc.Search == nil {
		rc.Search = []string{}
	}
	return rc
}

func dedupe(l []string) []string {
	var out []string
	for _, s := range l {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// mergeOptions lets the pod's options override the base ones by name.
func mergeOptions(base, pod []string) []string {
	name := func(o string) string { n, _, _ := strings.Cut(o, ":"); return n }
	var out []string
	for _, b := range base {
		overridden := false
		for _, p := range pod {
			overridden = overridden || name(p) == name(b)
		}
		if !overridden {
			out = append(out, b)
		}
	}
	return append(out, pod...)
}

// DomainOf is the cluster domain: the kubelet's when known, else read off
// a search list (<ns>.svc.DOMAIN), else cluster.local.
func DomainOf(kubelet string, search []string) string {
	if kubelet != "" {
		return kubelet
	}
	for _, s := range search {
		if i := strings.Index(s, ".svc."); i >= 0 {
			return s[i+len(".svc."):]
		}
		if d, ok := strings.CutPrefix(s, "svc."); ok {
			return d
		}
	}
	return "cluster.local"
}
