package dnsprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// query sends one query for name to the server and describes what came
// back. Resolver is left for the walk to set.
func query(ctx context.Context, server protocol.DNSServer, proto, name, qtype string, timeout time.Duration) protocol.DNSProbe {
	p := protocol.DNSProbe{
		Type: protocol.TypeDNSProbe, Hop: server.Hop, Server: server.HostPort(),
		Proto: proto, Name: name, QType: qtype,
	}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.StringToType[qtype])
	m.RecursionDesired = true
	c := &dns.Client{Net: proto, Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r, _, err := c.ExchangeContext(ctx, m, p.Server)
	p.LatencyMicroseconds = time.Since(start).Microseconds()
	if err != nil {
		p.Error, p.Timeout = errorKind(err)
		p.Detail = err.Error()
		return p
	}
	p.Rcode = dns.RcodeToString[r.Rcode]
	if p.Rcode == "" {
		p.Rcode = fmt.Sprintf("RCODE%d", r.Rcode)
	}
	p.Truncated = r.Truncated
	for _, rr := range r.Answer {
		p.Answers = append(p.Answers, strings.Join(strings.Fields(rr.String()), " "))
	}
	return p
}

// errorKind names an error the way a user reads it, and tells whether it
// is a timeout.
func errorKind(err error) (string, bool) {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout", true
	case errors.Is(err, context.Canceled):
		return "cancelled", false
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", false
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", false
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable", false
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset", false
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return "not permitted", false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed", false
	case errors.Is(err, dns.ErrId):
		return "answer id mismatch", false
	}
	return err.Error(), false
}

// next is what glibc's res_search does after this probe (see the package
// doc): its Resolver value.
func next(p protocol.DNSProbe) string {
	switch {
	case p.Rcode == "NOERROR" && len(p.Answers) > 0:
		return protocol.ResolverAnswer
	case p.Rcode == "NOERROR", p.Rcode == "NXDOMAIN", p.Rcode == "SERVFAIL":
		return protocol.ResolverNext
	case p.Error == "connection refused":
		return protocol.ResolverFail
	case p.Error == "cancelled", p.Error == "cut short by --max-time":
		return protocol.ResolverFail
	}
	// timeout, REFUSED, FORMERR, NOTIMP, other errors
	return protocol.ResolverAsIs
}

// cutShort tells whether ctx has ended or its deadline has come (the
// socket's deadline, set from it, may fire before ctx's timer does).
func cutShort(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// walk asks the candidates of one lookup at one server in glibc's order,
// emitting each probe, until the resolver would stop.
func walk(ctx context.Context, lim *limiter, server protocol.DNSServer, proto, query0, qtype string, cands []Candidate, timeout time.Duration, emit func(protocol.DNSProbe)) {
	for i := 0; i < len(cands); i++ {
		if err := lim.wait(ctx); err != nil {
			// --max-time came (or comes before the rate lets this
			// query go): the rest of the walk is not asked.
			emit(protocol.DNSProbe{
				Type: protocol.TypeDNSProbe, Hop: server.Hop, Server: server.HostPort(), Proto: proto,
				Name: cands[i].Name, Query: query0, QType: qtype, Step: i,
				Error: "not sent: --max-time reached", Resolver: protocol.ResolverFail,
			})
			return
		}
		p := query(ctx, server, proto, cands[i].Name, qtype, timeout)
		p.Query, p.Step = query0, i
		if p.Rcode == "" && cutShort(ctx) {
			// The run's --max-time ended it, not the query's timeout.
			p.Error, p.Timeout = "cut short by --max-time", false
		}
		p.Resolver = next(p)
		last := i == len(cands)-1
		if cands[i].BeforeSearch && !last && p.Resolver != protocol.ResolverAnswer {
			// glibc goes on to the search list whatever went wrong.
			p.Resolver = protocol.ResolverNext
		}
		jump := -1
		if p.Resolver == protocol.ResolverAsIs {
			// The search list ends; the name as given comes next if
			// it was not asked yet.
			for j := i + 1; j < len(cands); j++ {
				if cands[j].AsIs {
					jump = j
				}
			}
			if jump < 0 {
				p.Resolver = protocol.ResolverFail
			}
		}
		if p.Resolver == protocol.ResolverNext && last {
			p.Resolver = protocol.ResolverFail
		}
		emit(p)
		switch p.Resolver {
		case protocol.ResolverAnswer, protocol.ResolverFail:
			return
		case protocol.ResolverAsIs:
			i = jump - 1
		}
	}
}
