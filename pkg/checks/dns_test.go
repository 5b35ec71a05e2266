package checks

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// answers builds the gathered answers of a DNSConfig: each address maps to
// what it answers ("" for NOERROR with an address, an rcode, or an error
// such as "timeout" prefixed with "!"); proto-specific keys (ip/tcp) win.
func answers(d DNSConfig, m map[string]string) []protocol.DNSCheckTarget {
	ts := d.queries()
	for i, t := range ts {
		a, ok := m[dnsHost(t)+"/"+t.Proto]
		if !ok {
			a = m[dnsHost(t)]
		}
		ts[i].LatencyMicroseconds = 1500
		switch {
		case strings.HasPrefix(a, "!"):
			ts[i].Error = a[1:]
		case a == "":
			ts[i].Rcode, ts[i].Answers = "NOERROR", 1
		case a == "EMPTY":
			ts[i].Rcode = "NOERROR"
		default:
			ts[i].Rcode = a
		}
	}
	return ts
}

func TestJudgeDNS(t *testing.T) {
	full := DNSConfig{ServiceIP: "10.96.0.10", Endpoints: []string{"10.244.0.3", "10.244.1.4"}, NodeLocalIP: "169.254.20.10"}
	noNodeLocal := full
	noNodeLocal.NodeLocalIP = ""
	noEndpoints := noNodeLocal
	noEndpoints.Endpoints = nil
	type want struct {
		sev     protocol.Severity
		subject string
		msg     []string
		remedy  string
	}
	for _, tc := range []struct {
		name string
		d    DNSConfig
		ans  map[string]string
		want []want
	}{
		{"all good", full, map[string]string{},
			[]want{{protocol.SeverityOK, "node", []string{"resolves kubernetes.default.svc.cluster.local.", "nodelocal 169.254.20.10/udp 1.5ms", "clusterip 10.96.0.10/tcp 1.5ms", "endpoint 10.244.1.4/udp"}, ""}}},
		{"node-local down", full, map[string]string{"169.254.20.10": "!timeout"},
			[]want{{protocol.SeverityFail, "169.254.20.10", []string{"node-local DNS cache at 169.254.20.10 does not answer: pods using it cannot resolve (udp: timeout)"}, "node-local-dns"}}},
		{"ClusterIP down, endpoint answers", noNodeLocal, map[string]string{"10.96.0.10/udp": "!timeout"},
			[]want{{protocol.SeverityFail, "10.96.0.10", []string{"kube-dns ClusterIP 10.96.0.10 does not answer (udp: timeout) while CoreDNS endpoint 10.244.0.3 does", "kube-proxy"}, "kube-proxy"}}},
		{"nothing answers", full, map[string]string{"169.254.20.10": "!timeout", "10.96.0.10": "!timeout", "10.244.0.3": "!timeout", "10.244.1.4": "!host unreachable"},
			[]want{{protocol.SeverityFail, "node", []string{"no DNS server answers from this node", "endpoint 10.244.1.4/udp: host unreachable"}, "k8s-app=kube-dns"}}},
		{"no ready endpoints, nothing answers", noEndpoints, map[string]string{"10.96.0.10": "!connection refused"},
			[]want{{protocol.SeverityFail, "node", []string{"no DNS server answers", "clusterip 10.96.0.10/udp: connection refused", "the kube-dns Service has no ready endpoints"}, "scaled to 0"}}},
		{"no ready endpoints, node-local answers from its cache", DNSConfig{ServiceIP: "10.96.0.10", NodeLocalIP: "169.254.20.10"}, map[string]string{"10.96.0.10": "!connection refused"},
			[]want{{protocol.SeverityFail, "10.96.0.10", []string{"kube-dns Service 10.96.0.10 has no ready endpoints and does not answer (udp: connection refused, tcp: connection refused)"}, "scaled to 0"}}},
		{"ClusterIP and endpoints down, node-local answers", full, map[string]string{"10.96.0.10": "!timeout", "10.244.0.3": "!timeout", "10.244.1.4": "!timeout"},
			[]want{{protocol.SeverityFail, "10.96.0.10", []string{"neither the kube-dns ClusterIP 10.96.0.10 (udp: timeout, tcp: timeout) nor any of its 2 CoreDNS endpoints answers"}, "k8s-app=kube-dns"}}},
		{"one endpoint down", noNodeLocal, map[string]string{"10.244.1.4": "!timeout"},
			[]want{{protocol.SeverityWarn, "endpoints", []string{"CoreDNS endpoint 10.244.1.4 (timeout) does not answer from this node"}, "route"}}},
		{"ClusterIP over TCP down and an endpoint down", noNodeLocal, map[string]string{"10.96.0.10/tcp": "!connection reset", "10.244.1.4": "!timeout"},
			[]want{
				{protocol.SeverityFail, "10.96.0.10", []string{"(tcp: connection reset) while CoreDNS endpoint 10.244.0.3 does"}, "kube-proxy"},
				{protocol.SeverityWarn, "endpoints", []string{"10.244.1.4 (timeout)"}, ""},
			}},
		{"NXDOMAIN", noNodeLocal, map[string]string{"10.96.0.10": "NXDOMAIN", "10.244.0.3": "NXDOMAIN", "10.244.1.4": "EMPTY"},
			[]want{{protocol.SeverityFail, "node", []string{"does not resolve kubernetes.default.svc.cluster.local.", "clusterip 10.96.0.10/tcp: NXDOMAIN", "endpoint 10.244.1.4/udp: no address"}, "clusterDomain"}}},
		{"other domain", DNSConfig{ServiceIP: "fd00::a", ClusterDomain: "corp.example."}, map[string]string{},
			[]want{{protocol.SeverityOK, "node", []string{"kubernetes.default.svc.corp.example.", "clusterip fd00::a/udp"}, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := judgeDNS(tc.d, answers(tc.d, tc.ans))
			if len(fs) != len(tc.want) {
				t.Fatalf("%d findings, want %d: %+v", len(fs), len(tc.want), fs)
			}
			for i, w := range tc.want {
				f := fs[i]
				if f.Check != CheckDNS || f.Severity != w.sev || f.Subject != w.subject {
					t.Errorf("finding %d: %s %s %s, want %s %s", i, f.Check, f.Severity, f.Subject, w.sev, w.subject)
				}
				for _, m := range w.msg {
					if !strings.Contains(f.Message, m) {
						t.Errorf("finding %d: message %q lacks %q", i, f.Message, m)
					}
				}
				if !strings.Contains(f.Remedy, w.remedy) || (w.sev != protocol.SeverityOK) != (f.Remedy != "") {
					t.Errorf("finding %d: remedy %q, want one with %q", i, f.Remedy, w.remedy)
				}
				var data protocol.DNSCheckData
				if err := f.DecodeData(&data); err != nil || len(data.Targets) != len(tc.d.queries()) || data.ServiceIP != tc.d.ServiceIP {
					t.Errorf("finding %d: data %+v, %v", i, data, err)
				}
			}
		})
	}
}

func TestDNSQueries(t *testing.T) {
	d := DNSConfig{ServiceIP: "10.96.0.10", NodeLocalIP: "169.254.20.10", Name: "kubernetes.default"}
	for i := 0; i < 9; i++ {
		d.Endpoints = append(d.Endpoints, "10.244.0."+string(rune('1'+i)))
	}
	qs := d.queries()
	if len(qs) > 8 {
		t.Errorf("%d queries, want at most 8", len(qs))
	}
	if qs[0].Hop != protocol.DNSHopNodeLocal || qs[1].Proto != "udp" || qs[2].Proto != "tcp" || qs[2].Address != "10.96.0.10:53" {
		t.Errorf("queries %+v", qs)
	}
	if d.name() != "kubernetes.default." {
		t.Errorf("name %q", d.name())
	}
	if why := dnsSkipReason(DNSConfig{}); !strings.Contains(why, "--dns-ip") {
		t.Errorf("skip reason without --dns-ip: %q", why)
	}
	if why := dnsSkipReason(DNSConfig{ServiceIP: "10.96.0.10", SkipReason: "no kube-dns Service in kube-system"}); why != "no kube-dns Service in kube-system" {
		t.Errorf("skip reason given: %q", why)
	}
}

// serveDNS answers A queries for name on 127.0.0.1 over proto until the
// test ends.
func serveDNS(t *testing.T, proto, name string) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == name {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(10, 96, 0, 1)})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	s := &dns.Server{Net: proto, Handler: h}
	var addr string
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.PacketConn, addr = pc, pc.LocalAddr().String()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.Listener, addr = l, l.Addr().String()
	}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go s.ActivateAndServe()
	<-started
	t.Cleanup(func() { s.Shutdown() })
	return addr
}

func TestExchangeDNS(t *testing.T) {
	name := "kubernetes.default.svc.cluster.local."
	ctx := context.Background()
	for _, proto := range []string{"udp", "tcp"} {
		addr := serveDNS(t, proto, name)
		got := exchangeDNS(ctx, protocol.DNSCheckTarget{Hop: protocol.DNSHopClusterIP, Address: addr, Proto: proto}, name, time.Second)
		if got.Rcode != "NOERROR" || got.Answers != 1 || got.Error != "" || got.LatencyMicroseconds <= 0 {
			t.Errorf("%s: %+v", proto, got)
		}
		got = exchangeDNS(ctx, protocol.DNSCheckTarget{Address: addr, Proto: proto}, "nope.", time.Second)
		if got.Rcode != "NXDOMAIN" || got.Answers != 0 {
			t.Errorf("%s, unknown name: %+v", proto, got)
		}
	}
	// A UDP socket nobody reads: the query times out within the timeout.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	start := time.Now()
	got := exchangeDNS(ctx, protocol.DNSCheckTarget{Address: pc.LocalAddr().String(), Proto: "udp"}, name, 200*time.Millisecond)
	if got.Error != "timeout" || time.Since(start) > 2*time.Second {
		t.Errorf("silent server: %+v after %s", got, time.Since(start))
	}
	// A closed TCP port refuses.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if got := exchangeDNS(ctx, protocol.DNSCheckTarget{Address: closed, Proto: "tcp"}, name, time.Second); got.Error != "connection refused" {
		t.Errorf("closed port: %+v", got)
	}
}

// gatherDNS sends every query at once and keeps their order.
func TestGatherDNS(t *testing.T) {
	d := DNSConfig{ServiceIP: "10.96.0.10", Endpoints: []string{"10.244.0.3"}, ClusterDomain: "corp.local", Timeout: 300 * time.Millisecond}
	var n atomic.Int32
	ts := gatherDNS(context.Background(), d, func(ctx context.Context, q protocol.DNSCheckTarget, name string, timeout time.Duration) protocol.DNSCheckTarget {
		n.Add(1)
		if name != "kubernetes.default.svc.corp.local." || timeout != 300*time.Millisecond {
			t.Errorf("asked %q with %s", name, timeout)
		}
		q.Rcode = q.Proto
		return q
	})
	if n.Load() != 3 || len(ts) != 3 || ts[0].Rcode != "udp" || ts[1].Rcode != "tcp" || ts[2].Hop != protocol.DNSHopEndpoint {
		t.Errorf("gathered %+v after %d queries", ts, n.Load())
	}
}
