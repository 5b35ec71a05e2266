package dnsdiag

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// glibc's resolver limits (MAXNS, MAXDNSRCH).
const (
	MaxNameservers = 3
	MaxSearch      = 6
)

// Remedies for the A/AAAA conntrack race (kubernetes#56903).
const conntrackRemedy = "run NodeLocal DNSCache (queries leave the pod over TCP or to a local cache, no DNAT race), or add `options single-request-reopen` (dnsConfig.options) so A and AAAA use separate sockets, and lower ndots (dnsConfig.options ndots:2) or use fully qualified names ending in a dot to send fewer queries"

// status of a hop for one kind of name over one protocol.
type status int

const (
	absent   status = iota // not probed
	answered               // a good answer
	failed                 // probed, no good answer
)

// good says whether a probe got a good answer: NOERROR for a cluster name;
// NOERROR or NXDOMAIN (the server answered, the name does not exist)
// for another.
func good(p protocol.DNSProbe, cluster bool) bool {
	if p.Rcode == "NOERROR" {
		return true
	}
	return !cluster && p.Rcode == "NXDOMAIN"
}

// hopStatus is the status of hop over proto for the names: answered when
// one of the hop's servers answers every name well.
func hopStatus(probes []protocol.DNSProbe, hop, proto string, names []string, cluster bool) status {
	if len(names) == 0 {
		return absent
	}
	byServer := map[string]map[string]bool{}
	probed := false
	for _, p := range probes {
		if p.Hop != hop || p.Proto != proto || !slices.Contains(names, p.Query) {
			continue
		}
		probed = true
		if byServer[p.Server] == nil {
			byServer[p.Server] = map[string]bool{}
		}
		if good(p, cluster) {
			byServer[p.Server][p.Query] = true
		}
	}
	if !probed {
		return absent
	}
	for _, ok := range byServer {
		if len(ok) == len(names) {
			return answered
		}
	}
	return failed
}

// firstBad is the first probe of hop/proto for the names that did not get
// a good answer, for messages.
func firstBad(probes []protocol.DNSProbe, hop, proto string, names []string, cluster bool) *protocol.DNSProbe {
	for i, p := range probes {
		if p.Hop == hop && p.Proto == proto && slices.Contains(names, p.Query) && !good(p, cluster) {
			return &probes[i]
		}
	}
	return nil
}

func outcome(p *protocol.DNSProbe) string {
	if p == nil {
		return "no answer"
	}
	switch {
	case p.Rcode != "":
		return p.Rcode
	case p.Timeout:
		return "timeout"
	case p.Error != "":
		return p.Error
	}
	return "no answer"
}

// chain is the pod-side hops in the order a query travels.
func chain(o Observations) []string {
	hops := []string{HopResolvConf}
	if o.NodeLocal != "" {
		hops = append(hops, HopNodeLocal)
	}
	return append(hops, HopClusterIP, HopEndpoint)
}

// failingIn finds the first hop of the chain that fails while the hop
// behind it answers (or, for the last hop, that fails). "" when every
// probed hop answers.
func failingIn(o Observations, proto string, names []string, cluster bool) (hop string, behind string) {
	hops := chain(o)
hops:
	for i, h := range hops {
		if hopStatus(o.Probes, h, proto, names, cluster) != failed {
			continue
		}
		for _, b := range hops[i+1:] {
			switch hopStatus(o.Probes, b, proto, names, cluster) {
			case answered:
				return h, b
			case failed:
				// The hop behind fails too: look further back.
				continue hops
			}
		}
		return h, ""
	}
	return "", ""
}

// Judge turns the observations into findings and names the failing hop:
// the first hop that fails while the hop behind it answers.
func Judge(o Observations) Verdict {
	var v Verdict
	add := func(hop string, sev protocol.Severity, subject, msg, remedy string) {
		v.Findings = append(v.Findings, Finding{Hop: hop, Severity: sev, Subject: subject, Message: msg, Remedy: remedy})
	}
	fail := func(hop, reason string) {
		if v.FailingHop == "" {
			v.FailingHop, v.Reason = hop, reason
		}
	}
	c := o.Control
	clusterNames := []string{o.ClusterName}
	var external []string
	for _, n := range o.Names {
		if !isClusterName(n, c.ClusterDomain) {
			external = append(external, n)
		} else if !slices.Contains(clusterNames, n) {
			clusterNames = append(clusterNames, n)
		}
	}

	// --- config
	configFindings(o, add)
	if len(o.ResolvConf.Nameservers) == 0 {
		fail(FailConfig, "the pod's resolv.conf has no nameserver")
	}

	// --- control
	switch {
	case c.ServiceError != "":
		add(FailControl, protocol.SeverityFail, "service", c.ServiceError, "")
		fail(FailControl, c.ServiceError)
	case c.EndpointsError != "":
		add(FailControl, protocol.SeverityWarn, "endpoints", c.EndpointsError, "")
	case len(c.Endpoints) == 0:
		msg := fmt.Sprintf("the %s Service (%s) has no ready endpoints", c.Service, c.ClusterIP)
		if c.NotReady > 0 {
			msg += fmt.Sprintf(" (%d not ready)", c.NotReady)
		}
		msg += ": queries to the ClusterIP are dropped or refused"
		add(FailControl, protocol.SeverityFail, "endpoints", msg, "look at the CoreDNS Deployment: kubectl -n kube-system get deploy,pods -l k8s-app=kube-dns")
		fail(FailControl, msg)
	default:
		add(FailControl, protocol.SeverityOK, "endpoints", fmt.Sprintf("the %s Service (%s) has %d ready %s: %s", c.Service, c.ClusterIP, len(c.Endpoints), plural(len(c.Endpoints), "endpoint", "endpoints"), strings.Join(c.Endpoints, ", ")), "")
	}
	if c.PodsError != "" {
		add(FailControl, protocol.SeverityInfo, "coredns pods", c.PodsError, "")
	}
	for _, p := range c.Pods {
		switch {
		case !p.Ready:
			add(FailControl, protocol.SeverityWarn, "pod/"+p.Name, fmt.Sprintf("CoreDNS pod on node %s is %s and not ready (%d restarts)", or(p.Node, "?"), p.Phase, p.Restarts), "kubectl -n kube-system describe pod "+p.Name)
		case p.Restarts > 0:
			add(FailControl, protocol.SeverityInfo, "pod/"+p.Name, fmt.Sprintf("CoreDNS pod is ready, restarted %d times", p.Restarts), "")
		}
	}
	for _, p := range c.NodeLocalPods {
		if !p.Ready {
			add(FailControl, protocol.SeverityWarn, "pod/"+p.Name, fmt.Sprintf("the node-local DNS cache pod on node %s is not ready (%d restarts)", p.Node, p.Restarts), "kubectl -n kube-system describe pod "+p.Name)
		}
	}
	for _, h := range c.Logs {
		sev, what := protocol.SeverityWarn, ""
		switch h.Kind {
		case LogLoop:
			sev, what = protocol.SeverityFail, "a forwarding loop (CoreDNS forwards to itself, often through the node's resolv.conf pointing at 127.0.0.x)"
		case LogIOTimeout:
			what = "its upstream did not answer in time"
		case LogServfail:
			what = "it answered SERVFAIL"
		}
		add(FailControl, sev, "pod/"+h.Pod, "log: "+what+": "+h.Line, "")
	}
	if c.LogsError != "" {
		add(FailControl, protocol.SeverityInfo, "logs", c.LogsError, "")
	}
	if c.CorefileError != "" {
		add(FailControl, protocol.SeverityInfo, "corefile", c.CorefileError, "")
	} else if len(c.Upstream) > 0 {
		add(FailControl, protocol.SeverityInfo, "corefile", "CoreDNS forwards other names to "+strings.Join(c.Upstream, " "), "")
	}

	// --- probes, hop by hop
	if v.FailingHop == "" {
		judgeProbes(o, clusterNames, external, add, fail)
	}

	// --- conntrack and load
	conntrackFindings(o, add)
	return v
}

func judgeProbes(o Observations, clusterNames, external []string, add func(string, protocol.Severity, string, string, string), fail func(string, string)) {
	hopAddr := func(hop string) string {
		var addrs []string
		for _, p := range o.Probes {
			a := p.Server
			if h, port, err := net.SplitHostPort(a); err == nil && port == "53" {
				a = h
			}
			if p.Hop == hop && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
		return strings.Join(addrs, ",")
	}
	udpHop, behind := failingIn(o, "udp", clusterNames, true)
	if udpHop != "" {
		bad := firstBad(o.Probes, udpHop, "udp", clusterNames, true)
		if hopStatus(o.Probes, udpHop, "tcp", clusterNames, true) == answered {
			// Name the first hop of the chain that answers over TCP
			// only: where the pod's queries go.
			for _, h := range chain(o) {
				if hopStatus(o.Probes, h, "udp", clusterNames, true) == failed && hopStatus(o.Probes, h, "tcp", clusterNames, true) == answered {
					udpHop, bad = h, firstBad(o.Probes, h, "udp", clusterNames, true)
					break
				}
			}
			msg := fmt.Sprintf("UDP/53 blocked: %s (%s) answers %s over TCP but not over UDP (%s)", udpHop, hopAddr(udpHop), o.ClusterName, outcome(bad))
			add(FailUDP, protocol.SeverityFail, udpHop, msg, "look for a NetworkPolicy, iptables rule or firewall dropping UDP port 53 between the pod and its nameserver")
			fail(FailUDP, msg)
			return
		}
		var hop, msg, remedy string
		switch udpHop {
		case HopResolvConf:
			hop = FailConfig
			msg = fmt.Sprintf("the pod's nameserver %s does not answer %s (%s)", hopAddr(HopResolvConf), o.ClusterName, outcome(bad))
			if behind != "" {
				msg += fmt.Sprintf(", while %s %s does", behind, hopAddr(behind))
			}
			remedy = "fix the pod's dnsPolicy/dnsConfig so its nameserver is the cluster DNS (" + or(strings.Join(expectedNameservers(o), ","), o.Control.ClusterIP) + ")"
		case HopNodeLocal:
			hop = FailNodeLocal
			msg = fmt.Sprintf("the node-local cache %s does not answer %s (%s), while %s %s does", o.NodeLocal, o.ClusterName, outcome(bad), behind, hopAddr(behind))
			remedy = "look at the node-local-dns pod on node " + o.Pod.Node
		case HopClusterIP:
			hop = FailService
			msg = fmt.Sprintf("the kube-dns ClusterIP %s does not answer %s (%s), while the CoreDNS endpoints %s do: the Service translation on the node (kube-proxy rules) is broken", o.Control.ClusterIP, o.ClusterName, outcome(bad), hopAddr(HopEndpoint))
			remedy = "look at kube-proxy on node " + o.Pod.Node + " (its logs, and iptables-save | grep " + o.Control.ClusterIP + ")"
		case HopEndpoint:
			hop = FailCoreDNS
			msg = fmt.Sprintf("no CoreDNS endpoint (%s) answers %s (%s), though the Service lists them as ready", hopAddr(HopEndpoint), o.ClusterName, outcome(bad))
			remedy = "look at the CoreDNS pods' logs and at the network between the pod's node and theirs"
		}
		add(hop, protocol.SeverityFail, udpHop, msg, remedy)
		fail(hop, msg)
		return
	}
	// Partial failures of single endpoints.
	for _, p := range o.Probes {
		if p.Hop == HopEndpoint && p.Proto == "udp" && p.Query == o.ClusterName && !good(p, true) {
			add(HopEndpoint, protocol.SeverityWarn, p.Server, fmt.Sprintf("CoreDNS endpoint %s does not answer %s (%s); the others do", p.Server, o.ClusterName, outcome(&p)), "")
		}
	}
	if tcpHop, _ := failingIn(o, "tcp", clusterNames, true); tcpHop != "" {
		bad := firstBad(o.Probes, tcpHop, "tcp", clusterNames, true)
		add(tcpHop, protocol.SeverityWarn, tcpHop, fmt.Sprintf("%s answers over UDP but not over TCP (%s): truncated answers will fail", tcpHop, outcome(bad)), "allow TCP port 53 as well as UDP")
	}
	add(HopClusterIP, protocol.SeverityOK, o.ClusterName, "every hop answers the cluster name", "")

	// Names outside the cluster: the upstream.
	if len(external) == 0 {
		return
	}
	for _, hop := range []string{HopClusterIP, HopEndpoint, HopResolvConf} {
		if hopStatus(o.Probes, hop, "udp", external, false) != failed {
			continue
		}
		bad := firstBad(o.Probes, hop, "udp", external, false)
		got := outcome(bad)
		if bad.Rcode == "" {
			got = "no answer (" + got + ")"
		}
		msg := fmt.Sprintf("cluster names resolve, but %s gets %s at %s (%s)", bad.Query, got, hop, hopAddr(hop))
		if up := hopStatus(o.Probes, HopUpstream, "udp", external, false); up == answered {
			rcode := ""
			for _, p := range o.Probes {
				if p.Hop == HopUpstream && p.Proto == "udp" && p.Query == bad.Query {
					rcode = " (" + outcome(&p) + ")"
					break
				}
			}
			msg += fmt.Sprintf("; the upstream %s answers it from the node%s: CoreDNS cannot reach it or forwards elsewhere", hopAddr(HopUpstream), rcode)
		} else if up == failed {
			msg += fmt.Sprintf("; the upstream %s does not answer it from the node either (%s)", hopAddr(HopUpstream), outcome(firstBad(o.Probes, HopUpstream, "udp", external, false)))
		} else if o.UpstreamSkipped != "" {
			msg += "; the upstream was not queried from the node: " + o.UpstreamSkipped
		}
		add(FailUpstream, protocol.SeverityFail, bad.Query, msg, "check the forward line of the Corefile (kubectl -n kube-system get cm coredns -o yaml) and that its targets answer")
		fail(FailUpstream, msg)
		return
	}
	for _, n := range external {
		for _, p := range o.Probes {
			if p.Hop == HopClusterIP && p.Proto == "udp" && p.Query == n && p.Rcode == "NXDOMAIN" {
				add(HopClusterIP, protocol.SeverityWarn, n, n+" does not exist (NXDOMAIN)", "check the name")
				break
			}
		}
	}
	if o.UpstreamSkipped != "" {
		add(HopUpstream, protocol.SeverityInfo, "upstream", "not queried from the node: "+o.UpstreamSkipped, "")
	}
}

func configFindings(o Observations, add func(string, protocol.Severity, string, string, string)) {
	rc := o.ResolvConf
	pod := o.Pod
	if o.Computed {
		add(FailConfig, protocol.SeverityInfo, "resolv.conf", "the pod's resolv.conf could not be read ("+rc.Error+"); it is computed from the pod spec (dnsPolicy "+pod.DNSPolicy+")", "")
	}
	policy := pod.DNSPolicy
	if policy == "" {
		policy = "ClusterFirst"
	}
	if pod.HostNetwork && policy == "ClusterFirst" {
		add(FailConfig, protocol.SeverityWarn, "dnsPolicy", "the pod uses hostNetwork with dnsPolicy ClusterFirst, which falls back to the node's resolv.conf: it cannot resolve cluster names", "set dnsPolicy: ClusterFirstWithHostNet")
	}
	if !pod.HostNetwork && policy == "ClusterFirstWithHostNet" {
		add(FailConfig, protocol.SeverityInfo, "dnsPolicy", "dnsPolicy ClusterFirstWithHostNet on a pod without hostNetwork acts as ClusterFirst", "")
	}
	want := expectedNameservers(o)
	if len(rc.Nameservers) == 0 {
		add(FailConfig, protocol.SeverityFail, "nameserver", "the pod's resolv.conf has no nameserver: its lookups go to 127.0.0.1", "set dnsPolicy ClusterFirst, or dnsConfig.nameservers with dnsPolicy None")
	} else if len(want) > 0 && !slices.Contains(want, rc.Nameservers[0]) {
		add(FailConfig, protocol.SeverityWarn, "nameserver", fmt.Sprintf("the pod's first nameserver is %s, not the cluster DNS (%s) (dnsPolicy %s)", rc.Nameservers[0], strings.Join(want, ", "), policy), "use dnsPolicy ClusterFirst unless the pod must not resolve cluster names")
	} else {
		add(FailConfig, protocol.SeverityOK, "nameserver", fmt.Sprintf("nameserver %s (dnsPolicy %s)", strings.Join(rc.Nameservers, " "), policy), "")
	}
	if len(rc.Nameservers) > MaxNameservers {
		add(FailConfig, protocol.SeverityWarn, "nameserver", fmt.Sprintf("%d nameservers: glibc uses the first %d only", len(rc.Nameservers), MaxNameservers), "")
	}
	if len(rc.Search) > MaxSearch {
		add(FailConfig, protocol.SeverityWarn, "search", fmt.Sprintf("%d search domains: glibc before 2.26 uses the first %d only", len(rc.Search), MaxSearch), "")
	}
	for _, ig := range rc.Ignored {
		add(FailConfig, protocol.SeverityWarn, "resolv.conf", "ignored by the resolver: "+ig, "")
	}
	// What a lookup of each name really sends.
	for _, n := range QueryCounts(o.Lookups) {
		sev := protocol.SeverityInfo
		msg := fmt.Sprintf("a lookup of %s sends %d %s per record type (ndots:%d, %d search %s)", n.Query, n.Queries, plural(n.Queries, "query", "queries"), rc.Ndots, len(rc.Search), plural(len(rc.Search), "domain", "domains"))
		if n.Answered != "" {
			msg += ", answered for " + n.Answered
		} else {
			msg += ", none answered"
		}
		remedy := ""
		if n.Queries > 2 {
			sev = protocol.SeverityWarn
			msg += "; A and AAAA together double it"
			remedy = "write the name fully qualified with a trailing dot (" + strings.TrimSuffix(n.Query, ".") + ".), or lower ndots (dnsConfig.options ndots:2)"
		}
		add(FailConfig, sev, n.Query, msg, remedy)
	}
}

// QueryCount is how many queries a lookup of one name sent, and which of
// its expansions answered.
type QueryCount struct {
	Query    string
	Queries  int
	Answered string
}

// QueryCounts counts the expanded queries per name (one protocol: the
// lookups are sent over UDP to the first nameserver).
func QueryCounts(lookups []protocol.DNSProbe) []QueryCount {
	var out []QueryCount
	idx := map[string]int{}
	for _, p := range lookups {
		i, ok := idx[p.Query]
		if !ok {
			i = len(out)
			idx[p.Query] = i
			out = append(out, QueryCount{Query: p.Query})
		}
		out[i].Queries++
		if p.Rcode == "NOERROR" && len(p.Answers) > 0 && out[i].Answered == "" {
			out[i].Answered = p.Name
		}
	}
	return out
}

func conntrackFindings(o Observations, add func(string, protocol.Severity, string, string, string)) {
	if ct := o.Conntrack; ct != nil {
		if ct.Error != "" {
			add(Conntrack, protocol.SeverityInfo, "counters", "the node's conntrack counters could not be read: "+ct.Error, "")
		} else {
			ins := delta(ct.InsertFailedBefore, ct.InsertFailedAfter)
			drop := delta(ct.DropBefore, ct.DropAfter)
			sev, remedy := protocol.SeverityOK, ""
			if ins > 0 || drop > 0 {
				sev, remedy = protocol.SeverityWarn, conntrackRemedy
			}
			add(Conntrack, sev, "counters", fmt.Sprintf("during the probes the node's conntrack insert_failed grew by %d, drop by %d", ins, drop), remedy)
		}
	}
	if l := o.Load; l != nil {
		sev, remedy := protocol.SeverityOK, ""
		if l.Slow5s > 0 || l.Failed > 0 {
			sev, remedy = protocol.SeverityWarn, conntrackRemedy
		}
		add(Conntrack, sev, "load", fmt.Sprintf("%d parallel A+AAAA lookups at %s: %d answered, %d failed, %d slower than 5s (the A/AAAA race of kubernetes#56903); p50 %dms, p99 %dms, max %dms",
			l.Lookups, l.Server, l.Answered, l.Failed, l.Slow5s, l.P50Ms, l.P99Ms, l.MaxMs), remedy)
	}
}

func delta(before, after uint64) uint64 {
	if after < before {
		return 0
	}
	return after - before
}

// expectedNameservers is what the pod's first nameserver should be for its
// dnsPolicy: the kubelet's cluster DNS (the node-local address or the
// kube-dns ClusterIP), the pod's own dnsConfig for None; nil when any
// goes (Default: the node's).
func expectedNameservers(o Observations) []string {
	policy := o.Pod.DNSPolicy
	if policy == "" {
		policy = "ClusterFirst"
	}
	if policy == "ClusterFirst" && o.Pod.HostNetwork {
		policy = "Default"
	}
	switch policy {
	case "None":
		return o.Pod.Nameservers
	case "Default":
		if o.NodeResolvConf != nil {
			return o.NodeResolvConf.Nameservers
		}
		return nil
	}
	var want []string
	want = append(want, o.Control.ClusterDNS...)
	if o.NodeLocal != "" && !slices.Contains(want, o.NodeLocal) {
		want = append(want, o.NodeLocal)
	}
	if o.Control.ClusterIP != "" && !slices.Contains(want, o.Control.ClusterIP) {
		want = append(want, o.Control.ClusterIP)
	}
	return want
}

// isClusterName says whether an absolute name is in the cluster domain.
func isClusterName(name, domain string) bool {
	if domain == "" {
		domain = "cluster.local"
	}
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return n == d || strings.HasSuffix(n, "."+d)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
