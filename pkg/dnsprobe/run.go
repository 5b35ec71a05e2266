package dnsprobe

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Config is one run: the request and what the helper injects.
type Config struct {
	Request protocol.DNSRequest
	// Proc is the procfs whose processes --resolv-conf auto looks at
	// (/proc), OwnResolvConf the helper container's own file
	// (/etc/resolv.conf) and Self the helper's PID.
	Proc          string
	OwnResolvConf string
	Self          int
	// ConntrackStat reads the summed columns of a
	// net/stat/nf_conntrack file (insert_failed, drop, ...).
	ConntrackStat func(path string) (map[string]uint64, error)
	// LoadRetry is how long a --load lookup waits for a missing answer
	// before it asks again (LoadRetry).
	LoadRetry time.Duration
	// Parallel bounds the lookups (server × protocol × name) asked at
	// once; each walks its expansion in order.
	Parallel int
}

// DefaultParallel is Config.Parallel's default: with the 2 s timeout a
// plugin's run of a few hops over UDP and TCP asks every lookup at once.
const DefaultParallel = 16

// Lines receives the run's lines, one call at a time, in the order they
// are made: *protocol.ResolvConf, protocol.DNSProbe, protocol.DNSLoad,
// protocol.ConntrackCounters.
type Lines func(line any)

// Run reads the resolv.conf, asks every server over every protocol for
// every name (expanded), runs --load and reads the conntrack counters
// around all of it. What it finds are lines, not errors: Run returns an
// error only for a request that does not validate. Cancelling ctx (or
// --max-time) cuts the queries short; their lines say so.
func Run(ctx context.Context, cfg Config, emit Lines) error {
	req := cfg.Request
	if err := req.Validate(); err != nil {
		return err
	}
	if cfg.LoadRetry <= 0 {
		cfg.LoadRetry = LoadRetry
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if req.MaxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.MaxTime)
		defer cancel()
	}
	var mu sync.Mutex
	out := func(l any) {
		mu.Lock()
		defer mu.Unlock()
		emit(l)
	}

	conf := DefaultConf()
	if req.ResolvConf != "" {
		line, c := resolvConfLine(cfg)
		if line.Error == "" {
			conf = c
		}
		out(line)
	}
	search, ndots := conf.Search, conf.Ndots
	if len(req.Search) > 0 {
		search = req.Search
	}
	if req.Ndots > 0 {
		ndots = req.Ndots
	}

	var counters *protocol.ConntrackCounters
	if req.ConntrackProc != "" {
		counters = &protocol.ConntrackCounters{Type: protocol.TypeConntrackCounters}
		counters.InsertFailedBefore, counters.DropBefore, counters.Error = readCounters(cfg, req.ConntrackProc)
	}

	lim := newLimiter(req.Rate)
	type lookup struct {
		server protocol.DNSServer
		proto  string
		name   string
		cands  []Candidate
	}
	var lookups []lookup
	for _, name := range req.Names {
		cands := []Candidate{{Name: fqdn(name), AsIs: true}}
		if req.Expand {
			cands = Expand(name, search, ndots, conf.NoTLDQuery)
		}
		for _, s := range req.Servers {
			for _, p := range req.Protocols {
				lookups = append(lookups, lookup{s, p, name, cands})
			}
		}
	}
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for _, l := range lookups {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			walk(ctx, lim, l.server, l.proto, l.name, req.Type, l.cands, req.Timeout, func(p protocol.DNSProbe) { out(p) })
		}()
	}
	wg.Wait()

	if req.Load > 0 {
		name := fqdn(req.Names[0])
		if req.Expand {
			name = Expand(req.Names[0], search, ndots, conf.NoTLDQuery)[0].Name
		}
		out(runLoad(ctx, lim, req.Servers[0], name, req.Load, cfg.LoadRetry))
	}

	if counters != nil {
		var err string
		counters.InsertFailedAfter, counters.DropAfter, err = readCounters(cfg, req.ConntrackProc)
		if counters.Error == "" {
			counters.Error = err
		}
		out(*counters)
	}
	return nil
}

func fqdn(name string) string {
	if len(name) > 0 && name[len(name)-1] == '.' {
		return name
	}
	return name + "."
}

// resolvConfLine reads --resolv-conf: a failure is the line's Error.
func resolvConfLine(cfg Config) (protocol.ResolvConf, Conf) {
	path := cfg.Request.ResolvConf
	if path == protocol.ResolvConfAuto {
		own := cfg.OwnResolvConf
		if own == "" {
			own = "/etc/resolv.conf"
		}
		proc := cfg.Proc
		if proc == "" {
			proc = "/proc"
		}
		self := cfg.Self
		if self == 0 {
			self = os.Getpid()
		}
		got, c, tried, err := autoResolvConf(proc, own, self)
		if err != nil {
			return protocol.ResolvConf{Type: protocol.TypeResolvConf, Path: path, Error: err.Error(), Tried: tried}, Conf{}
		}
		line := c.Line(got)
		line.Tried = tried
		return line, c
	}
	c, err := readResolvConf(path)
	if err != nil {
		return protocol.ResolvConf{Type: protocol.TypeResolvConf, Path: path, Error: reason(err)}, Conf{}
	}
	return c.Line(path), c
}

func readCounters(cfg Config, proc string) (insertFailed, drop uint64, errText string) {
	if cfg.ConntrackStat == nil {
		return 0, 0, "conntrack counters are not available in this build"
	}
	path := filepath.Join(proc, "net", "stat", "nf_conntrack")
	t, err := cfg.ConntrackStat(path)
	if err != nil {
		return 0, 0, fmt.Sprintf("%s: %s", path, reason(err))
	}
	return t["insert_failed"], t["drop"], ""
}
