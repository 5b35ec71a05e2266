package dnsprobe

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// glibc's limits and defaults (resolv.h).
const (
	maxNameservers  = 3  // MAXNS
	maxSearch       = 6  // MAXDNSRCH before glibc 2.26; kubelet's old limit
	defaultNdots    = 1  //
	maxNdots        = 15 // RES_MAXNDOTS
	defaultTimeout  = 5  // RES_TIMEOUT, seconds
	maxTimeout      = 30 // RES_MAXRETRANS
	defaultAttempts = 2  // RES_DFLRETRY
	maxAttempts     = 5  // RES_MAXRETRY
)

// Conf is what the resolver makes of a resolv.conf.
type Conf struct {
	Nameservers []string
	// Search is the search list ("domain" is a list of one).
	Search []string
	Ndots  int
	// Timeout is in seconds, per try.
	Timeout  int
	Attempts int
	// Flags from options.
	Rotate, SingleRequest, SingleRequestReopen, UseVC, NoTLDQuery bool
	// Options are the options as written, in order.
	Options []string
	// Ignored are what the resolver does not use, each with the reason.
	Ignored []string
}

// DefaultConf is the resolver's setting without a resolv.conf.
func DefaultConf() Conf {
	return Conf{Ndots: defaultNdots, Timeout: defaultTimeout, Attempts: defaultAttempts}
}

func readResolvConf(path string) (Conf, error) {
	f, err := os.Open(path)
	if err != nil {
		return Conf{}, err
	}
	defer f.Close()
	return parseResolvConf(f)
}

// keyword returns the rest of line when it starts with the keyword and a
// space or a tab, as glibc's MATCH does.
func keyword(line, kw string) (string, bool) {
	if !strings.HasPrefix(line, kw) || len(line) == len(kw) {
		return "", false
	}
	if c := line[len(kw)]; c != ' ' && c != '\t' {
		return "", false
	}
	return line[len(kw)+1:], true
}

// parseResolvConf parses a resolv.conf with glibc's rules (see the
// package doc).
func parseResolvConf(r io.Reader) (Conf, error) {
	c := DefaultConf()
	var search []string
	s := bufio.NewScanner(r)
	n := 0
	for s.Scan() {
		n++
		line := strings.TrimRight(s.Text(), "\r")
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if rest, ok := keyword(line, "nameserver"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				c.Ignored = append(c.Ignored, fmt.Sprintf("line %d: nameserver without an address", n))
				continue
			}
			if _, err := netip.ParseAddr(f[0]); err != nil {
				c.Ignored = append(c.Ignored, fmt.Sprintf("nameserver %s: not an IP address", f[0]))
				continue
			}
			if len(c.Nameservers) == maxNameservers {
				c.Ignored = append(c.Ignored, fmt.Sprintf("nameserver %s: past the resolver's limit of %d nameservers", f[0], maxNameservers))
				continue
			}
			c.Nameservers = append(c.Nameservers, f[0])
			continue
		}
		if rest, ok := keyword(line, "domain"); ok {
			f := strings.Fields(rest)
			search = nil
			if len(f) > 0 {
				search = f[:1]
			}
			continue
		}
		if rest, ok := keyword(line, "search"); ok {
			search = strings.Fields(rest)
			continue
		}
		if rest, ok := keyword(line, "options"); ok {
			for _, o := range strings.Fields(rest) {
				c.Options = append(c.Options, o)
				if why := c.option(o); why != "" {
					c.Ignored = append(c.Ignored, fmt.Sprintf("option %s: %s", o, why))
				}
			}
			continue
		}
		if rest, ok := keyword(line, "sortlist"); ok {
			c.Ignored = append(c.Ignored, fmt.Sprintf("sortlist %s: only orders addresses", strings.TrimSpace(rest)))
			continue
		}
		c.Ignored = append(c.Ignored, fmt.Sprintf("line %d %q: not understood by the resolver", n, line))
	}
	if err := s.Err(); err != nil {
		return Conf{}, err
	}
	for i, d := range search {
		if i >= maxSearch {
			c.Ignored = append(c.Ignored, fmt.Sprintf("search %s: past %d search domains (glibc before 2.26 ignores it, newer glibc and musl use it; kubelet warned past %d before 1.28)", d, maxSearch, maxSearch))
			continue
		}
		c.Search = append(c.Search, d)
	}
	return c, nil
}

// option applies one option; it returns why it is ignored ("" when not).
func (c *Conf) option(o string) string {
	num := func(prefix string, max int) (int, string, bool) {
		v, ok := strings.CutPrefix(o, prefix)
		if !ok {
			return 0, "", false
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "not a number", true
		}
		return min(n, max), "", true
	}
	if n, why, ok := num("ndots:", maxNdots); ok {
		if why == "" {
			c.Ndots = n
		}
		return why
	}
	if n, why, ok := num("timeout:", maxTimeout); ok {
		if why == "" {
			c.Timeout = max(n, 1)
		}
		return why
	}
	if n, why, ok := num("attempts:", maxAttempts); ok {
		if why == "" {
			c.Attempts = max(n, 1)
		}
		return why
	}
	switch o {
	case "rotate":
		c.Rotate = true
	case "single-request":
		c.SingleRequest = true
	case "single-request-reopen":
		c.SingleRequestReopen = true
	case "use-vc":
		c.UseVC = true
	case "no-tld-query":
		c.NoTLDQuery = true
	case "debug", "edns0", "inet6", "insecure1", "insecure2", "no-check-names", "no-reload", "trust-ad", "no-aaaa", "ip6-dotint", "no-ip6-dotint", "ip6-bytestring":
		// understood; not used by the probes
	default:
		return "unknown to glibc"
	}
	return ""
}

// Line is the resolvconf line of a Conf read from path.
func (c Conf) Line(path string) protocol.ResolvConf {
	return protocol.ResolvConf{
		Type: protocol.TypeResolvConf, Path: path,
		Nameservers: nonNil(c.Nameservers), Search: nonNil(c.Search), Ndots: c.Ndots,
		TimeoutSeconds: c.Timeout, Attempts: c.Attempts,
		Options: c.Options, Ignored: c.Ignored,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
