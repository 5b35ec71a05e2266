package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// dnsServer answers A example.test. with 192.0.2.1 and NXDOMAIN for
// anything else, over UDP on 127.0.0.1.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == "example.test." && q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.1")})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	s := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return pc.LocalAddr().String()
}

// decodeLines splits the stream into its lines' types and the lines.
func decodeLines(t *testing.T, out string) ([]string, []string) {
	t.Helper()
	var types, lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		pl, err := protocol.ParseLine([]byte(l))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		types = append(types, pl.Type)
		lines = append(lines, l)
	}
	return types, lines
}

func TestDNSStream(t *testing.T) {
	addr := dnsServer(t)
	req := protocol.DefaultDNSRequest()
	req.Names = []string{"example"}
	req.Servers = []protocol.DNSServer{{Hop: "clusterip", Addr: addr}}
	req.Protocols = []string{"udp"}
	req.ResolvConf = "../pkg/dnsprobe/testdata/domain-last.conf" // search corp.example, ndots 1
	req.Search = []string{"test"}
	req.Timeout = time.Second
	req.ConntrackProc = "../pkg/checks/testdata/proc-conntrack"
	code, out, errOut := runCLI(req.Command()...)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	types, lines := decodeLines(t, out)
	if d := cmp.Diff([]string{"hello", "resolvconf", "dnsprobe", "conntrackcounters", "done"}, types); d != "" {
		t.Fatalf("line types (-want +got):\n%s\n%s", d, out)
	}
	var rc protocol.ResolvConf
	var p protocol.DNSProbe
	var cc protocol.ConntrackCounters
	var done protocol.Done
	for i, v := range []any{&rc, &p, &cc, &done} {
		if err := json.Unmarshal([]byte(lines[i+1]), v); err != nil {
			t.Fatal(err)
		}
	}
	if rc.Path != req.ResolvConf || rc.Search[0] != "corp.example" || rc.Nameservers[0] != "192.0.2.53" {
		t.Errorf("resolvconf line %s", lines[1])
	}
	// --search replaced the resolv.conf's list: example → example.test.
	p.LatencyMicroseconds = 0
	want := protocol.DNSProbe{
		Type: "dnsprobe", Hop: "clusterip", Server: addr, Proto: "udp", Name: "example.test.", Query: "example", QType: "A",
		Rcode: "NOERROR", Answers: []string{"example.test. 60 IN A 192.0.2.1"}, Step: 0, Resolver: "answer",
	}
	if d := cmp.Diff(want, p); d != "" {
		t.Errorf("probe (-want +got):\n%s", d)
	}
	// the fixture's two CPUs: insert_failed 3+2, drop 0x10+0x20
	if cc.InsertFailedBefore != 5 || cc.InsertFailedAfter != 5 || cc.DropBefore != 48 || cc.DropAfter != 48 || cc.Error != "" {
		t.Errorf("conntrack line %s", lines[3])
	}
	if done.Findings != 3 {
		t.Errorf("done line %s, want 3 lines counted", lines[4])
	}
}

// Failing queries are data: exit 0. A missing resolv.conf is the line's
// error.
func TestDNSFailuresAreData(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	code, out, errOut := runCLI("dns", "--name=example.test.", "--server=gone="+closed, "--resolv-conf=/nonexistent/resolv.conf")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	types, lines := decodeLines(t, out)
	if d := cmp.Diff([]string{"hello", "resolvconf", "dnsprobe", "dnsprobe", "done"}, types); d != "" {
		t.Fatalf("line types (-want +got):\n%s", d)
	}
	if !strings.Contains(lines[1], `"error":"no such file"`) {
		t.Errorf("resolvconf line %s", lines[1])
	}
	for _, l := range lines[2:4] {
		if !strings.Contains(l, `"error":"connection refused"`) || !strings.Contains(l, `"resolver":"fail"`) {
			t.Errorf("probe line %s", l)
		}
	}
}

func TestDNSUsage(t *testing.T) {
	code, out, errOut := runCLI("dns", "--name=a", "--server=nope")
	if code != exitUsage || !strings.Contains(errOut, `netdiag-helper dns: --server "nope": want HOP=IP[:PORT]`) {
		t.Errorf("usage error: exit %d, stderr %q", code, errOut)
	}
	if types, _ := decodeLines(t, out); !cmp.Equal([]string{"hello", "error"}, types) {
		t.Errorf("usage error stream %v", types)
	}
	var errb bytes.Buffer
	if code := run([]string{"dns", "--help"}, streams{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &errb}); code != exitOK || !strings.Contains(errb.String(), "--resolv-conf") {
		t.Errorf("--help: exit %d, %q", code, errb.String())
	}
}
