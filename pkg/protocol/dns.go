package protocol

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// `netdiag-helper dns` sends DNS queries from the helper's network
// namespace (a pod's, through the ephemeral container; the node's, through
// a node pod) and reports each answer as a line: the plugin attributes them
// to hops and names the failing one.

// DNS line types.
const (
	// TypeResolvConf is the resolv.conf the helper read (one line).
	TypeResolvConf = "resolvconf"
	// TypeDNSProbe is one query and its outcome.
	TypeDNSProbe = "dnsprobe"
	// TypeDNSLoad is the outcome of --load.
	TypeDNSLoad = "dnsload"
	// TypeConntrackCounters are the node's conntrack counters before and
	// after the probes (--conntrack-proc).
	TypeConntrackCounters = "conntrackcounters"
)

// DNS defaults and limits.
const (
	DefaultDNSTimeout = 2 * time.Second
	// DefaultDNSRate bounds the queries a second of a run, --load included.
	DefaultDNSRate = 50
	MaxDNSLoad     = 10000
	// DefaultDNSMaxTime bounds a whole run: queries not answered by then
	// are reported as cut short.
	DefaultDNSMaxTime = 10 * time.Second
	// MaxDNSNdots is glibc's cap on options ndots (RES_MAXNDOTS).
	MaxDNSNdots = 15
)

// DNSServer is one hop to query: what the plugin calls it (resolv.conf,
// node-local, clusterip, endpoint, upstream) and its address (IP or
// IP:port; port 53 when left out).
type DNSServer struct {
	Hop  string
	Addr string
}

func (s DNSServer) String() string { return s.Hop + "=" + s.Addr }

// HostPort is the server's address with its port.
func (s DNSServer) HostPort() string {
	if _, _, err := net.SplitHostPort(s.Addr); err == nil {
		return s.Addr
	}
	return net.JoinHostPort(s.Addr, "53")
}

// DNSRequest is `netdiag-helper dns`.
type DNSRequest struct {
	// Names are looked up at every server. A name without a trailing dot
	// is expanded with the resolv.conf search list the way the resolver
	// does it (ndots); Expand false sends it as given, fully qualified.
	Names  []string
	Expand bool
	// Search and Ndots, when set, replace the resolv.conf's search list
	// and ndots in the expansion (the plugin computes them from the pod
	// spec when the pod's resolv.conf cannot be read). Ndots 0: the
	// resolv.conf's, else 1.
	Search []string
	Ndots  int
	// Type is A or AAAA.
	Type string
	// Servers are the hops to query, in order.
	Servers []DNSServer
	// Protocols are udp and/or tcp.
	Protocols []string
	// Timeout bounds each query.
	Timeout time.Duration
	// ResolvConf is the resolv.conf to read and report ("": none);
	// "auto" is the pod's, read through /proc/PID/root of the pod's
	// processes (the helper's ephemeral container shares their PID
	// namespace), else the helper container's own /etc/resolv.conf (the
	// runtime mounts the pod's file into every container of the pod).
	ResolvConf string
	// Load sends this many parallel A+AAAA lookups of the first name from
	// one UDP socket, the glibc way (0: none), at most Rate a second.
	Load int
	// Rate bounds the queries a second of the whole run.
	Rate int
	// ConntrackProc, when set, is the procfs whose conntrack counters
	// (net/stat/nf_conntrack) are read before and after the queries.
	ConntrackProc string
	// MaxTime bounds the whole run, --load included (0: no bound).
	MaxTime time.Duration
}

// ResolvConfAuto is --resolv-conf auto.
const ResolvConfAuto = "auto"

// DefaultDNSRequest queries A records over UDP and TCP.
func DefaultDNSRequest() DNSRequest {
	return DNSRequest{Expand: true, Type: "A", Protocols: []string{"udp", "tcp"}, Timeout: DefaultDNSTimeout, Rate: DefaultDNSRate, MaxTime: DefaultDNSMaxTime}
}

type dnsParse struct {
	r       *DNSRequest
	servers []string
}

func (r *DNSRequest) addFlags(fs *pflag.FlagSet) *dnsParse {
	p := &dnsParse{r: r}
	fs.StringArrayVar(&r.Names, "name", r.Names, "a name to look up (repeatable)")
	fs.BoolVar(&r.Expand, "expand", r.Expand, "expand names without a trailing dot with the resolv.conf search list (ndots), as the resolver does")
	fs.StringArrayVar(&r.Search, "search", r.Search, "a search domain for --expand, replacing the resolv.conf's list (repeatable)")
	fs.IntVar(&r.Ndots, "ndots", r.Ndots, "ndots for --expand, replacing the resolv.conf's (0: the resolv.conf's, else 1)")
	fs.StringVar(&r.Type, "type", r.Type, "record type: A or AAAA")
	fs.StringArrayVar(&p.servers, "server", nil, "a hop to query as HOP=IP[:PORT] (repeatable), e.g. clusterip=10.96.0.10")
	fs.StringSliceVar(&r.Protocols, "proto", r.Protocols, "protocols: udp, tcp")
	fs.DurationVar(&r.Timeout, "timeout", r.Timeout, "how long each query waits for its answer")
	fs.StringVar(&r.ResolvConf, "resolv-conf", r.ResolvConf, "the resolv.conf to read and report; auto: the pod's (through /proc/PID/root, else this container's /etc/resolv.conf)")
	fs.IntVar(&r.Load, "load", r.Load, "parallel A+AAAA lookups of the first name from one socket (0: none)")
	fs.IntVar(&r.Rate, "rate", r.Rate, "at most this many queries a second")
	fs.StringVar(&r.ConntrackProc, "conntrack-proc", r.ConntrackProc, "read the conntrack counters of this procfs before and after the queries")
	fs.DurationVar(&r.MaxTime, "max-time", r.MaxTime, "bound the whole run, --load included (0: no bound)")
	return p
}

func (p *dnsParse) finish() error {
	r := p.r
	for _, s := range p.servers {
		hop, addr, ok := strings.Cut(s, "=")
		if !ok || hop == "" || addr == "" {
			return usagef("--server %q: want HOP=IP[:PORT]", s)
		}
		host := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
		if net.ParseIP(host) == nil {
			return usagef("--server %q: %q is not an IP address", s, host)
		}
		r.Servers = append(r.Servers, DNSServer{Hop: hop, Addr: addr})
	}
	return r.Validate()
}

// Validate checks the request; its messages name the flag.
func (r DNSRequest) Validate() error {
	switch {
	case len(r.Names) == 0 && r.Load == 0 && r.ResolvConf == "":
		return usagef("nothing to do: give --name, --load or --resolv-conf")
	case r.Type != "A" && r.Type != "AAAA":
		return usagef("--type must be A or AAAA, not %q", r.Type)
	case r.Timeout <= 0:
		return usagef("--timeout must be positive")
	case r.Rate <= 0:
		return usagef("--rate must be positive")
	case r.Load < 0 || r.Load > MaxDNSLoad:
		return usagef("--load must be between 0 and %d, got %d", MaxDNSLoad, r.Load)
	case r.Load > 0 && (len(r.Names) == 0 || len(r.Servers) == 0):
		return usagef("--load needs a --name and a --server")
	case r.Ndots < 0 || r.Ndots > MaxDNSNdots:
		return usagef("--ndots must be between 0 and %d, got %d", MaxDNSNdots, r.Ndots)
	case r.MaxTime < 0:
		return usagef("--max-time must not be negative")
	case r.Load > 0 && r.MaxTime > 0 && r.MaxTime < time.Duration(2*r.Load)*time.Second/time.Duration(r.Rate):
		return usagef("--load %d sends %d queries: at --rate %d that takes %s, longer than --max-time %s; raise --max-time or --rate, or lower --load",
			r.Load, 2*r.Load, r.Rate, time.Duration(2*r.Load)*time.Second/time.Duration(r.Rate), r.MaxTime)
	}
	for _, d := range r.Search {
		if d == "" || strings.ContainsAny(d, " \t\n") {
			return usagef("--search %q is not a DNS name", d)
		}
	}
	for _, p := range r.Protocols {
		if p != "udp" && p != "tcp" {
			return usagef("--proto: %q is not udp or tcp", p)
		}
	}
	for _, n := range r.Names {
		if n == "" || strings.ContainsAny(n, " \t\n") {
			return usagef("--name %q is not a DNS name", n)
		}
	}
	return nil
}

// Args is the request's argv after "dns".
func (r DNSRequest) Args() []string {
	d := DefaultDNSRequest()
	var a args
	for _, n := range r.Names {
		a = append(a, "--name="+n)
	}
	if !r.Expand {
		a = append(a, "--expand=false")
	}
	for _, d := range r.Search {
		a = append(a, "--search="+d)
	}
	a.int("ndots", int64(r.Ndots), 0)
	a.str("type", r.Type, d.Type)
	for _, s := range r.Servers {
		a = append(a, "--server="+s.String())
	}
	if strings.Join(r.Protocols, ",") != strings.Join(d.Protocols, ",") {
		a = append(a, "--proto="+strings.Join(r.Protocols, ","))
	}
	a.dur("timeout", r.Timeout, d.Timeout)
	a.str("resolv-conf", r.ResolvConf, "")
	a.int("load", int64(r.Load), 0)
	a.int("rate", int64(r.Rate), int64(d.Rate))
	a.str("conntrack-proc", r.ConntrackProc, "")
	a.dur("max-time", r.MaxTime, d.MaxTime)
	return a
}

// Command is the helper command line: "dns" and Args.
func (r DNSRequest) Command() []string { return append([]string{"dns"}, r.Args()...) }

// ParseDNSRequest parses `dns` arguments; usage gets --help.
func ParseDNSRequest(argv []string, usage io.Writer) (DNSRequest, error) {
	r := DefaultDNSRequest()
	fs := newFlagSet("netdiag-helper dns", usage)
	p := r.addFlags(fs)
	if err := parseFlagSet(fs, argv); err != nil {
		return DNSRequest{}, err
	}
	if err := p.finish(); err != nil {
		return DNSRequest{}, err
	}
	return r, nil
}

// ResolvConf is the resolv.conf the helper read: what the resolver of the
// pod will do.
type ResolvConf struct {
	Type string `json:"type"`
	Path string `json:"path"`
	// Error says why it could not be read (then nothing else is set).
	Error       string   `json:"error,omitempty"`
	Nameservers []string `json:"nameservers"`
	Search      []string `json:"search"`
	// Ndots is options ndots:N (1 when not set).
	Ndots int `json:"ndots"`
	// TimeoutSeconds and Attempts are options timeout:N (5 when not
	// set) and attempts:N (2): a lookup whose server does not answer
	// waits TimeoutSeconds per try.
	TimeoutSeconds int `json:"timeoutSeconds"`
	Attempts       int `json:"attempts"`
	// Options are all the options, as written.
	Options []string `json:"options,omitempty"`
	// Tried are the files --resolv-conf auto could not read before Path
	// (or, with Error, at all), each with the reason.
	Tried []string `json:"tried,omitempty"`
	// Ignored are nameservers and search domains past glibc's limits (3
	// nameservers, 6 search domains) and lines it does not understand.
	Ignored []string `json:"ignored,omitempty"`
}

// DNSProbe is one query and what came back.
type DNSProbe struct {
	Type   string `json:"type"`
	Hop    string `json:"hop"`
	Server string `json:"server"`
	Proto  string `json:"proto"`
	// Name is the name asked for (after search expansion), Query the
	// name given (Name is one of the names it expanded to).
	Name  string `json:"name"`
	Query string `json:"query"`
	QType string `json:"qtype"`
	// Rcode is the answer's rcode (NOERROR, NXDOMAIN, SERVFAIL, ...); ""
	// when no answer came (Error says why: timeout, refused, ...).
	Rcode   string   `json:"rcode,omitempty"`
	Answers []string `json:"answers,omitempty"`
	// LatencyMicroseconds is the time to the answer (or to the error).
	LatencyMicroseconds int64  `json:"latencyMicroseconds"`
	Error               string `json:"error,omitempty"`
	// Timeout is true when no answer came within the timeout.
	Timeout bool `json:"timeout,omitempty"`
	// Detail is the error as the system said it.
	Detail string `json:"detail,omitempty"`
	// Truncated is the TC bit of a UDP answer (the resolver then asks
	// again over TCP).
	Truncated bool `json:"truncated,omitempty"`
	// Step is the name's place in the expansion of Query (0 first).
	Step int `json:"step"`
	// Resolver is what glibc's resolver does after this answer:
	// ResolverAnswer, ResolverNext, ResolverAsIs or ResolverFail.
	Resolver string `json:"resolver"`
}

// DNSProbe.Resolver values.
const (
	// ResolverAnswer: the lookup returns this answer (NOERROR with
	// records).
	ResolverAnswer = "answer"
	// ResolverNext: it asks the next name of the expansion (NXDOMAIN,
	// NOERROR without records, SERVFAIL).
	ResolverNext = "next"
	// ResolverAsIs: it stops searching and asks the name as given, if
	// not asked yet (a timeout, REFUSED, FORMERR, NOTIMP).
	ResolverAsIs = "as-is"
	// ResolverFail: the lookup fails here (connection refused, the last
	// name, a name with a trailing dot).
	ResolverFail = "fail"
)

// DNSLoad is what --load saw.
type DNSLoad struct {
	Type    string `json:"type"`
	Hop     string `json:"hop"`
	Server  string `json:"server"`
	Name    string `json:"name"`
	Lookups int    `json:"lookups"`
	// Retried lookups sent a missing query again after 5s; Unsent ones
	// were not started before --max-time (they count as failed).
	Retried int `json:"retried"`
	Unsent  int `json:"unsent,omitempty"`
	// Answered lookups (both A and AAAA back), and those slower than 5s
	// (the A/AAAA race of kubernetes#56903 retries after 5s).
	Answered int   `json:"answered"`
	Slow5s   int   `json:"slow5s"`
	Failed   int   `json:"failed"`
	P50Ms    int64 `json:"p50Ms"`
	P99Ms    int64 `json:"p99Ms"`
	MaxMs    int64 `json:"maxMs"`
}

// ConntrackCounters are the node's conntrack counters (summed over CPUs)
// before and after the queries.
type ConntrackCounters struct {
	Type               string `json:"type"`
	InsertFailedBefore uint64 `json:"insertFailedBefore"`
	InsertFailedAfter  uint64 `json:"insertFailedAfter"`
	DropBefore         uint64 `json:"dropBefore"`
	DropAfter          uint64 `json:"dropAfter"`
	Error              string `json:"error,omitempty"`
}

// String is a short form of a probe, for messages.
func (p DNSProbe) String() string {
	out := p.Rcode
	if out == "" {
		out = p.Error
	}
	return fmt.Sprintf("%s %s %s@%s/%s: %s", p.Hop, p.QType, p.Name, p.Server, p.Proto, out)
}
