//go:build integration && linux

package checks

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The dns check queries from the namespace --netns names: a DNS server
// bound to an address only that namespace has (on its lo) answers over UDP
// and TCP; a node-local address the namespace lacks does not.
func TestDNSInNetNS(t *testing.T) {
	requireRoot(t)
	n := newNS(t, "dns")
	lo, err := n.h.LinkByName("lo")
	must(t, err, "lo")
	addr(t, n.h, lo, "203.0.113.53/32")
	name := "kubernetes.default.svc.cluster.local."
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(10, 96, 0, 1)})
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	n.in(t, func() {
		pc, err = net.ListenPacket("udp", "203.0.113.53:53")
		must(t, err, "listening on udp")
		l, err = net.Listen("tcp", "203.0.113.53:53")
		must(t, err, "listening on tcp")
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}

	cfg := Config{Checks: []string{CheckDNS}, NetNS: n.path,
		DNS: DNSConfig{ServiceIP: "203.0.113.53", Endpoints: []string{"203.0.113.53"}}}
	var fs []protocol.Finding
	if err := Run(context.Background(), cfg, func(f protocol.Finding) { fs = append(fs, f) }); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityOK || !strings.Contains(fs[0].Message, name) {
		t.Fatalf("findings %+v", fs)
	}
	t.Logf("%s", fs[0].Message)

	cfg.DNS.NodeLocalIP = "169.254.20.10"
	fs = nil
	if err := Run(context.Background(), cfg, func(f protocol.Finding) { fs = append(fs, f) }); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Severity != protocol.SeverityFail || !strings.Contains(fs[0].Message, "node-local DNS cache at 169.254.20.10 does not answer: pods using it cannot resolve") {
		t.Fatalf("findings %+v", fs)
	}
	t.Logf("%s", fs[0].Message)
}
