package dnsdiag

import (
	"strings"
	"testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

const (
	clusterIP = "10.96.0.10"
	ep1       = "10.244.0.2"
	ep2       = "10.244.0.3"
	upstream  = "169.254.53.53"
	cname     = "kubernetes.default.svc.cluster.local."
	ext       = "www.example.test."
)

// answers says what each server answers over each protocol, for cluster
// and external names: rcode, or "" for a timeout.
type answers map[string]struct{ cluster, external string }

// probes builds the probes of every hop, proto and name; a server missing
// from udp/tcp answers like the other protocol.
func probes(servers []protocol.DNSServer, udp, tcp answers) []protocol.DNSProbe {
	var out []protocol.DNSProbe
	for _, s := range servers {
		for _, proto := range []string{"udp", "tcp"} {
			a, ok := udp[s.Addr]
			if proto == "tcp" {
				if t, ok2 := tcp[s.Addr]; ok2 {
					a, ok = t, true
				}
			}
			if !ok {
				a.cluster, a.external = "NOERROR", "NOERROR"
			}
			names := []string{cname, ext}
			if s.Hop == HopUpstream {
				names = []string{ext}
			}
			for _, n := range names {
				rcode := a.external
				if n == cname {
					rcode = a.cluster
				}
				p := protocol.DNSProbe{Type: protocol.TypeDNSProbe, Hop: s.Hop, Server: s.Addr, Proto: proto, Name: n, Query: n, QType: "A", Rcode: rcode}
				if rcode == "" {
					p.Timeout, p.Error = true, "timeout"
				}
				out = append(out, p)
			}
		}
	}
	return out
}

func healthy(nodeLocal bool) Observations {
	o := Observations{
		Pod:        PodDNS{Namespace: "default", Name: "web", Node: "n1", DNSPolicy: "ClusterFirst"},
		ResolvConf: protocol.ResolvConf{Nameservers: []string{clusterIP}, Search: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Ndots: 5},
		Control: Control{Service: "kube-dns", ClusterIP: clusterIP, Endpoints: []string{ep1, ep2}, Upstream: []string{upstream},
			ClusterDomain: "cluster.local", ClusterDNS: []string{clusterIP},
			Pods: []DNSPod{{Name: "coredns-a", Ready: true, Phase: "Running"}, {Name: "coredns-b", Ready: true, Phase: "Running"}}},
		ClusterName: cname,
		Names:       []string{ext},
	}
	if nodeLocal {
		o.NodeLocal = NodeLocalAddress
		o.ResolvConf.Nameservers = []string{NodeLocalAddress}
		o.Control.ClusterDNS = []string{NodeLocalAddress}
	}
	return o
}

func servers(o Observations) []protocol.DNSServer {
	return append(PodServers(o), protocol.DNSServer{Hop: HopUpstream, Addr: upstream})
}

func TestJudgeFaults(t *testing.T) {
	for _, tt := range []struct {
		name      string
		nodeLocal bool
		mutate    func(o *Observations)
		udp, tcp  answers
		want      string
		wantText  string
	}{
		{name: "healthy", want: ""},
		{name: "healthy node-local", nodeLocal: true, want: ""},
		{name: "CoreDNS scaled to 0", mutate: func(o *Observations) { o.Control.Endpoints = []string{}; o.Control.Pods = nil },
			udp: answers{clusterIP: {"", ""}}, want: FailControl, wantText: "no ready endpoints"},
		{name: "no kube-dns Service", mutate: func(o *Observations) { o.Control.ServiceError = "no kube-dns Service in namespace kube-system" },
			want: FailControl, wantText: "no kube-dns Service"},
		{name: "black-hole upstream", udp: answers{clusterIP: {"NOERROR", "SERVFAIL"}, ep1: {"NOERROR", "SERVFAIL"}, ep2: {"NOERROR", ""}, upstream: {"", ""}},
			want: FailUpstream, wantText: "cluster names resolve, but www.example.test. gets SERVFAIL at clusterip"},
		{name: "black-hole upstream, node-local answers from its own upstream", nodeLocal: true,
			udp:  answers{clusterIP: {"NOERROR", ""}, ep1: {"NOERROR", ""}, ep2: {"NOERROR", ""}, upstream: {"", ""}},
			want: FailUpstream, wantText: "does not answer it from the node either"},
		{name: "upstream answers from the node but not CoreDNS", udp: answers{clusterIP: {"NOERROR", "SERVFAIL"}, ep1: {"NOERROR", "SERVFAIL"}, ep2: {"NOERROR", "SERVFAIL"}},
			want: FailUpstream, wantText: "answers it from the node (NOERROR): CoreDNS cannot reach it"},
		{name: "dnsPolicy None with a bogus nameserver", mutate: func(o *Observations) {
			o.Pod.DNSPolicy, o.Pod.Nameservers = "None", []string{"192.0.2.99"}
			o.ResolvConf.Nameservers = []string{"192.0.2.99"}
		}, udp: answers{"192.0.2.99": {"", ""}}, want: FailConfig, wantText: "the pod's nameserver 192.0.2.99 does not answer"},
		{name: "nameserver that answers but knows no cluster names", mutate: func(o *Observations) {
			o.ResolvConf.Nameservers = []string{"192.0.2.53"}
		}, udp: answers{"192.0.2.53": {"NXDOMAIN", "NOERROR"}}, want: FailConfig, wantText: "192.0.2.53 does not answer kubernetes.default.svc.cluster.local. (NXDOMAIN), while clusterip 10.96.0.10 does"},
		{name: "UDP/53 dropped in the pod", udp: answers{clusterIP: {"", ""}, ep1: {"", ""}, ep2: {"", ""}},
			tcp: answers{clusterIP: {"NOERROR", "NOERROR"}, ep1: {"NOERROR", "NOERROR"}, ep2: {"NOERROR", "NOERROR"}}, want: FailUDP, wantText: "UDP/53 blocked: resolv.conf (10.96.0.10) answers kubernetes.default.svc.cluster.local. over TCP but not over UDP (timeout)"},
		{name: "UDP/53 dropped in the pod, node-local", nodeLocal: true, udp: answers{NodeLocalAddress: {"", ""}, clusterIP: {"", ""}, ep1: {"", ""}, ep2: {"", ""}},
			tcp: answers{NodeLocalAddress: {"NOERROR", "NOERROR"}, clusterIP: {"NOERROR", "NOERROR"}, ep1: {"NOERROR", "NOERROR"}, ep2: {"NOERROR", "NOERROR"}}, want: FailUDP},
		{name: "Service DNAT removed", udp: answers{clusterIP: {"", ""}}, want: FailService, wantText: "the Service translation on the node"},
		{name: "Service DNAT removed, node-local forwards to the ClusterIP", nodeLocal: true,
			udp: answers{NodeLocalAddress: {"SERVFAIL", "NOERROR"}, clusterIP: {"", ""}}, want: FailService},
		{name: "node-local cache down", nodeLocal: true, udp: answers{NodeLocalAddress: {"", ""}}, tcp: answers{NodeLocalAddress: {"", ""}}, want: FailNodeLocal},
		{name: "CoreDNS ready but silent", udp: answers{clusterIP: {"", ""}, ep1: {"", ""}, ep2: {"", ""}}, want: FailCoreDNS},
		{name: "one CoreDNS endpoint silent", udp: answers{ep2: {"", ""}}, want: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := healthy(tt.nodeLocal)
			if tt.mutate != nil {
				tt.mutate(&o)
			}
			o.Probes = probes(servers(o), tt.udp, tt.tcp)
			v := Judge(o)
			if v.FailingHop != tt.want {
				t.Fatalf("failing hop %q (%s), want %q; findings:\n%s", v.FailingHop, v.Reason, tt.want, dump(v.Findings))
			}
			if !strings.Contains(v.Reason, tt.wantText) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tt.wantText)
			}
			fails := 0
			for _, f := range v.Findings {
				if f.Severity == protocol.SeverityFail {
					fails++
				}
			}
			if (tt.want == "") != (fails == 0) {
				t.Errorf("failing hop %q with %d fail findings:\n%s", tt.want, fails, dump(v.Findings))
			}
		})
	}
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.Hop + " " + string(f.Severity) + " " + f.Subject + ": " + f.Message + "\n")
	}
	return b.String()
}

func find(fs []Finding, hop, subject string) *Finding {
	for i, f := range fs {
		if f.Hop == hop && f.Subject == subject {
			return &fs[i]
		}
	}
	return nil
}

func TestJudgeConfig(t *testing.T) {
	o := healthy(false)
	o.Probes = probes(servers(o), nil, nil)
	o.Pod.HostNetwork = true
	o.ResolvConf.Nameservers = []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}
	o.ResolvConf.Search = []string{"a", "b", "c", "d", "e", "f", "g"}
	o.ResolvConf.Ignored = []string{"nameserver 10.0.0.5"}
	o.Lookups = []protocol.DNSProbe{
		{Hop: HopResolvConf, Proto: "udp", Query: "www.example.test", Name: "www.example.test.a.", Rcode: "NXDOMAIN"},
		{Hop: HopResolvConf, Proto: "udp", Query: "www.example.test", Name: "www.example.test.b.", Rcode: "NXDOMAIN"},
		{Hop: HopResolvConf, Proto: "udp", Query: "www.example.test", Name: "www.example.test.", Rcode: "NOERROR", Answers: []string{"192.0.2.80"}},
	}
	v := Judge(o)
	if f := find(v.Findings, FailConfig, "dnsPolicy"); f == nil || f.Severity != protocol.SeverityWarn || !strings.Contains(f.Remedy, "ClusterFirstWithHostNet") {
		t.Errorf("hostNetwork with ClusterFirst: %+v", f)
	}
	var msgs []string
	for _, f := range v.Findings {
		msgs = append(msgs, f.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"4 nameservers: glibc uses the first 3 only", "7 search domains", "ignored by the resolver: nameserver 10.0.0.5",
		"a lookup of www.example.test sends 3 queries per record type (ndots:5, 7 search domains), answered for www.example.test."} {
		if !strings.Contains(all, want) {
			t.Errorf("no finding says %q:\n%s", want, dump(v.Findings))
		}
	}
	if f := find(v.Findings, FailConfig, "www.example.test"); f == nil || f.Severity != protocol.SeverityWarn || !strings.Contains(f.Remedy, "www.example.test.") {
		t.Errorf("query count finding: %+v", f)
	}
}

func TestJudgeConntrack(t *testing.T) {
	o := healthy(false)
	o.Probes = probes(servers(o), nil, nil)
	o.Conntrack = &protocol.ConntrackCounters{InsertFailedBefore: 10, InsertFailedAfter: 14, DropBefore: 3, DropAfter: 3}
	o.Load = &protocol.DNSLoad{Server: clusterIP, Lookups: 100, Answered: 98, Slow5s: 2, Failed: 0, P50Ms: 1, P99Ms: 5003, MaxMs: 5010}
	v := Judge(o)
	if v.FailingHop != "" {
		t.Errorf("failing hop %q", v.FailingHop)
	}
	c := find(v.Findings, Conntrack, "counters")
	if c == nil || c.Severity != protocol.SeverityWarn || !strings.Contains(c.Message, "insert_failed grew by 4, drop by 0") || !strings.Contains(c.Remedy, "NodeLocal DNSCache") || !strings.Contains(c.Remedy, "single-request-reopen") || !strings.Contains(c.Remedy, "ndots") {
		t.Errorf("counters: %+v", c)
	}
	l := find(v.Findings, Conntrack, "load")
	if l == nil || l.Severity != protocol.SeverityWarn || !strings.Contains(l.Message, "2 slower than 5s") || !strings.Contains(l.Message, "p99 5003ms") {
		t.Errorf("load: %+v", l)
	}
	o.Conntrack = &protocol.ConntrackCounters{InsertFailedBefore: 10, InsertFailedAfter: 10}
	o.Load = nil
	if c := find(Judge(o).Findings, Conntrack, "counters"); c == nil || c.Severity != protocol.SeverityOK {
		t.Errorf("unchanged counters: %+v", c)
	}
}

func TestJudgeLogs(t *testing.T) {
	o := healthy(false)
	o.Probes = probes(servers(o), nil, nil)
	o.Control.Logs = []LogHit{{Pod: "coredns-a", Kind: LogLoop, Line: `[FATAL] plugin/loop: Loop (127.0.0.1:34751 -> :53) detected for zone "."`}}
	o.Control.Pods[1].Ready = false
	v := Judge(o)
	if f := find(v.Findings, FailControl, "pod/coredns-a"); f == nil || f.Severity != protocol.SeverityFail || !strings.Contains(f.Message, "forwarding loop") {
		t.Errorf("loop: %+v", f)
	}
	if f := find(v.Findings, FailControl, "pod/coredns-b"); f == nil || f.Severity != protocol.SeverityWarn {
		t.Errorf("not ready: %+v", f)
	}
}
