package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// DefaultDNSTimeout bounds each query of the dns check.
const DefaultDNSTimeout = time.Second

// DNSConfig is what the dns check asks: the plugin looks the addresses up
// in the API (the kube-dns Service, its EndpointSlices, the kubelet's
// clusterDNS).
type DNSConfig struct {
	// ServiceIP is the kube-dns ClusterIP; "" skips the check.
	ServiceIP string
	// Endpoints are the ready CoreDNS endpoint IPs behind ServiceIP.
	Endpoints []string
	// NodeLocalIP is the node-local cache's address, "" without one.
	NodeLocalIP string
	// Name is asked for; "" means kubernetes.default.svc.ClusterDomain.
	Name string
	// ClusterDomain is the cluster's domain; "" means cluster.local.
	ClusterDomain string
	// SkipReason, when set, skips the check with this reason.
	SkipReason string
	// Timeout bounds each query (0: DefaultDNSTimeout).
	Timeout time.Duration
}

// name is the FQDN the check asks for.
func (d DNSConfig) name() string {
	if d.Name != "" {
		return dns.Fqdn(d.Name)
	}
	domain := strings.Trim(d.ClusterDomain, ".")
	if domain == "" {
		domain = "cluster.local"
	}
	return "kubernetes.default.svc." + domain + "."
}

// queries are the check's queries, at most 8: the node-local cache over
// UDP, the ClusterIP over UDP and TCP, and up to DNSMaxEndpoints endpoints
// over UDP.
func (d DNSConfig) queries() []protocol.DNSCheckTarget {
	var out []protocol.DNSCheckTarget
	add := func(hop, ip, proto string) {
		out = append(out, protocol.DNSCheckTarget{Hop: hop, Address: net.JoinHostPort(ip, "53"), Proto: proto})
	}
	if d.NodeLocalIP != "" {
		add(protocol.DNSHopNodeLocal, d.NodeLocalIP, "udp")
	}
	add(protocol.DNSHopClusterIP, d.ServiceIP, "udp")
	add(protocol.DNSHopClusterIP, d.ServiceIP, "tcp")
	for i, ip := range d.Endpoints {
		if i == protocol.DNSMaxEndpoints {
			break
		}
		add(protocol.DNSHopEndpoint, ip, "udp")
	}
	return out
}

// dnsExchanger sends one query of the dns check and fills in the answer.
type dnsExchanger func(ctx context.Context, t protocol.DNSCheckTarget, name string, timeout time.Duration) protocol.DNSCheckTarget

// exchangeDNS asks t.Address for name's A records.
func exchangeDNS(ctx context.Context, t protocol.DNSCheckTarget, name string, timeout time.Duration) protocol.DNSCheckTarget {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.RecursionDesired = true
	c := &dns.Client{Net: t.Proto, Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r, _, err := c.ExchangeContext(ctx, m, t.Address)
	t.LatencyMicroseconds = time.Since(start).Microseconds()
	if err != nil {
		t.Error = dnsErrorText(err)
		return t
	}
	t.Rcode = dns.RcodeToString[r.Rcode]
	if t.Rcode == "" {
		t.Rcode = fmt.Sprintf("RCODE%d", r.Rcode)
	}
	t.Answers = len(r.Answer)
	return t
}

// dnsErrorText names a query's error the way a user reads it.
func dnsErrorText(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return err.Error()
}

// gatherDNS sends the queries at once and returns their answers in order.
func gatherDNS(ctx context.Context, d DNSConfig, ex dnsExchanger) []protocol.DNSCheckTarget {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	qs := d.queries()
	name := d.name()
	var wg sync.WaitGroup
	for i := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qs[i] = ex(ctx, qs[i], name, timeout)
		}()
	}
	wg.Wait()
	return qs
}

func dnsAnswered(t protocol.DNSCheckTarget) bool { return t.Rcode != "" }

func dnsResolves(t protocol.DNSCheckTarget) bool { return t.Rcode == "NOERROR" && t.Answers > 0 }

func dnsHost(t protocol.DNSCheckTarget) string {
	h, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return t.Address
	}
	return h
}

func latency(t protocol.DNSCheckTarget) string {
	return fmt.Sprintf("%.1fms", float64(t.LatencyMicroseconds)/1000)
}

// dnsFailures lists the queries that got no answer as "udp: timeout".
func dnsFailures(ts []protocol.DNSCheckTarget) string {
	var out []string
	for _, t := range ts {
		if !dnsAnswered(t) {
			out = append(out, t.Proto+": "+t.Error)
		}
	}
	return strings.Join(out, ", ")
}

const (
	coreDNSPods    = "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide"
	remedyNoDNS    = "check CoreDNS: " + coreDNSPods + " (running and ready?) and its logs; and whether this node reaches pods on other nodes (kubectl netdiag node check --checks bridge,mtu)"
	remedyNoReady  = "CoreDNS has no ready pod (scaled to 0, crashing or not ready): kubectl -n kube-system get deployment coredns; " + coreDNSPods + "; kubectl -n kube-system logs -l k8s-app=kube-dns"
	remedyProxy    = "check kube-proxy on this node: its pod (kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide) and logs, and its rules for the Service (iptables-save | grep KUBE-SVC, or ipvsadm -Ln); a CNI that replaces kube-proxy keeps its own service map"
	remedyNodeLoc  = "check the node-local-dns pod on this node (kubectl -n kube-system get pods -l k8s-app=node-local-dns -o wide) and its logs, and that the node holds the address (ip addr show nodelocaldns); until it answers, pods whose resolv.conf names it cannot resolve"
	remedyEndpoint = "check those CoreDNS pods (" + coreDNSPods + ") and this node's route to the nodes they run on"
	remedyRcode    = "check the cluster domain (the kubelet's clusterDomain) and CoreDNS's Corefile (kubectl -n kube-system get configmap coredns -o yaml): its kubernetes plugin serves the cluster domain; and CoreDNS's logs"
)

// judgeDNS judges the dns check's answers: nothing answers, the node-local
// cache does not, the ClusterIP does not (while an endpoint does: the
// Service's translation), an endpoint does not, a server answers without
// the name's address; or all is well.
func judgeDNS(d DNSConfig, ts []protocol.DNSCheckTarget) []protocol.Finding {
	name := d.name()
	data := protocol.EncodeData(protocol.DNSCheckData{
		Name: name, ServiceIP: d.ServiceIP, NodeLocalIP: d.NodeLocalIP, Endpoints: len(d.Endpoints), Targets: ts,
	})
	finding := func(sev protocol.Severity, subject, msg, remedy string) protocol.Finding {
		return protocol.Finding{Check: CheckDNS, Severity: sev, Subject: subject, Message: msg, Remedy: remedy, Data: data}
	}
	var nodeLocal, clusterIP, eps []protocol.DNSCheckTarget
	answered := false
	for _, t := range ts {
		answered = answered || dnsAnswered(t)
		switch t.Hop {
		case protocol.DNSHopNodeLocal:
			nodeLocal = append(nodeLocal, t)
		case protocol.DNSHopClusterIP:
			clusterIP = append(clusterIP, t)
		case protocol.DNSHopEndpoint:
			eps = append(eps, t)
		}
	}
	if !answered {
		var parts []string
		for _, t := range ts {
			parts = append(parts, fmt.Sprintf("%s %s/%s: %s", t.Hop, dnsHost(t), t.Proto, t.Error))
		}
		msg := "no DNS server answers from this node (" + strings.Join(parts, "; ") + ")"
		remedy := remedyNoDNS
		if len(d.Endpoints) == 0 {
			msg += ": the kube-dns Service has no ready endpoints"
			remedy = remedyNoReady
		}
		return []protocol.Finding{finding(protocol.SeverityFail, "node", msg, remedy)}
	}

	var out []protocol.Finding
	if len(nodeLocal) > 0 && !dnsAnswered(nodeLocal[0]) {
		out = append(out, finding(protocol.SeverityFail, d.NodeLocalIP,
			fmt.Sprintf("node-local DNS cache at %s does not answer: pods using it cannot resolve (%s)", d.NodeLocalIP, dnsFailures(nodeLocal)),
			remedyNodeLoc))
	}
	var epOK, epBad []string
	for _, t := range eps {
		if dnsAnswered(t) {
			epOK = append(epOK, dnsHost(t))
		} else {
			epBad = append(epBad, dnsHost(t)+" ("+t.Error+")")
		}
	}
	if f := dnsFailures(clusterIP); f != "" {
		switch {
		case len(eps) == 0:
			out = append(out, finding(protocol.SeverityFail, d.ServiceIP,
				fmt.Sprintf("kube-dns Service %s has no ready endpoints and does not answer (%s): nothing serves cluster DNS", d.ServiceIP, f),
				remedyNoReady))
		case len(epOK) > 0:
			out = append(out, finding(protocol.SeverityFail, d.ServiceIP,
				fmt.Sprintf("kube-dns ClusterIP %s does not answer (%s) while CoreDNS endpoint %s does: the Service's translation to its endpoints (kube-proxy) is broken on this node", d.ServiceIP, f, epOK[0]),
				remedyProxy))
		default:
			out = append(out, finding(protocol.SeverityFail, d.ServiceIP,
				fmt.Sprintf("neither the kube-dns ClusterIP %s (%s) nor any of its %d CoreDNS endpoints answers from this node", d.ServiceIP, f, len(eps)),
				remedyNoDNS))
		}
	}
	if len(epBad) > 0 && (len(epOK) > 0 || dnsFailures(clusterIP) == "") {
		msg := fmt.Sprintf("CoreDNS endpoint %s does not answer from this node", strings.Join(epBad, ", "))
		if len(epBad) > 1 {
			msg = fmt.Sprintf("CoreDNS endpoints %s do not answer from this node", strings.Join(epBad, ", "))
		}
		out = append(out, finding(protocol.SeverityWarn, "endpoints", msg+": the share of the Service's queries sent there fails", remedyEndpoint))
	}
	var wrong []string
	for _, t := range ts {
		if dnsAnswered(t) && !dnsResolves(t) {
			what := t.Rcode
			if t.Rcode == "NOERROR" {
				what = "no address"
			}
			wrong = append(wrong, fmt.Sprintf("%s %s/%s: %s", t.Hop, dnsHost(t), t.Proto, what))
		}
	}
	if len(wrong) > 0 {
		out = append(out, finding(protocol.SeverityFail, "node",
			fmt.Sprintf("DNS answers but does not resolve %s (%s)", name, strings.Join(wrong, "; ")), remedyRcode))
	}
	if len(out) > 0 {
		return out
	}
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %s/%s %s", t.Hop, dnsHost(t), t.Proto, latency(t)))
	}
	return []protocol.Finding{finding(protocol.SeverityOK, "node",
		fmt.Sprintf("cluster DNS resolves %s from this node: %s", name, strings.Join(parts, ", ")), "")}
}

// dnsSkipReason is why the dns check does not run, "" when it does.
func dnsSkipReason(d DNSConfig) string {
	switch {
	case d.SkipReason != "":
		return d.SkipReason
	case d.ServiceIP == "":
		return "no kube-dns Service IP given (--dns-ip); kubectl netdiag node check NODE --checks dns looks it up"
	}
	return ""
}
