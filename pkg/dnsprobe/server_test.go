package dnsprobe

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// testZone is what the test servers know: everything else is NXDOMAIN.
var testZone = map[string]string{
	"web.default.svc.cluster.local.": "10.0.0.7",
	"example.test.":                  "192.0.2.1",
}

// zoneHandler answers from testZone; AAAA of a known name is NODATA.
// Every question it sees is counted in asked.
type zoneHandler struct {
	mu    sync.Mutex
	asked []string
	from  []string // the client address of each question
	// dropAAAA, when set, leaves the first AAAA of each client address
	// unanswered (a lost conntrack insert).
	dropAAAA bool
	dropped  map[string]bool
	queries  atomic.Int64
}

func (h *zoneHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	h.queries.Add(1)
	q := r.Question[0]
	h.mu.Lock()
	h.asked = append(h.asked, dns.TypeToString[q.Qtype]+" "+q.Name)
	h.from = append(h.from, w.RemoteAddr().String())
	if h.dropAAAA && q.Qtype == dns.TypeAAAA {
		if h.dropped == nil {
			h.dropped = map[string]bool{}
		}
		from := w.RemoteAddr().String()
		if !h.dropped[from] {
			h.dropped[from] = true
			h.mu.Unlock()
			return
		}
	}
	h.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	ip, ok := testZone[strings.ToLower(q.Name)]
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.ParseIP(ip)})
	}
	_ = w.WriteMsg(m)
}

func (h *zoneHandler) questions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.asked...)
}

// rcodeHandler answers every question with one rcode.
type rcodeHandler int

func (h rcodeHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetRcode(r, int(h))
	_ = w.WriteMsg(m)
}

// serve starts a DNS server on 127.0.0.1 (UDP and/or TCP, one port) and
// returns its address.
func serve(t *testing.T, h dns.Handler, udp, tcp bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	start := func(s *dns.Server) {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	if tcp {
		start(&dns.Server{Listener: l, Handler: h})
	} else {
		l.Close()
	}
	if udp {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start(&dns.Server{PacketConn: pc, Handler: h})
	}
	return addr
}

// silent is a server that never answers: a UDP socket nobody reads and a
// TCP listener whose connections stay open without a word.
func silent(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		pc.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// closedPort is an address where nothing listens (UDP or TCP).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
