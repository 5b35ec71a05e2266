package dnsprobe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// run runs a request and returns its lines.
func run(t *testing.T, cfg Config) []any {
	t.Helper()
	var lines []any
	if err := Run(context.Background(), cfg, func(l any) { lines = append(lines, l) }); err != nil {
		t.Fatal(err)
	}
	return lines
}

func request(servers ...protocol.DNSServer) protocol.DNSRequest {
	r := protocol.DefaultDNSRequest()
	r.Servers = servers
	r.Timeout = 300 * time.Millisecond
	r.Rate = 1000
	r.Search = []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}
	r.Ndots = 5
	return r
}

// short is a probe as "proto name rcode-or-error resolver", sorted per
// protocol in the order asked.
func short(lines []any) map[string][]string {
	out := map[string][]string{}
	for _, l := range lines {
		p, ok := l.(protocol.DNSProbe)
		if !ok {
			continue
		}
		res := p.Rcode
		if res == "" {
			res = p.Error
		}
		if len(p.Answers) > 0 {
			res += " " + strings.Join(p.Answers, ",")
		}
		k := p.Hop + "/" + p.Proto
		out[k] = append(out[k], fmt.Sprintf("%d %s %s %s", p.Step, p.Name, res, p.Resolver))
	}
	return out
}

func TestRunWalksTheSearchListLikeGlibc(t *testing.T) {
	zone := &zoneHandler{}
	ok := protocol.DNSServer{Hop: "clusterip", Addr: serve(t, zone, true, true)}
	servfail := protocol.DNSServer{Hop: "upstream", Addr: serve(t, rcodeHandler(dns.RcodeServerFailure), true, true)}
	refused := protocol.DNSServer{Hop: "refuser", Addr: serve(t, rcodeHandler(dns.RcodeRefused), true, false)}
	tcpOnly := protocol.DNSServer{Hop: "tcponly", Addr: serve(t, zone, false, true)}
	mute := protocol.DNSServer{Hop: "mute", Addr: silent(t)}
	closed := protocol.DNSServer{Hop: "closed", Addr: closedPort(t)}

	req := request(ok, servfail, refused, tcpOnly, mute, closed)
	req.Names = []string{"web"}
	start := time.Now()
	got := short(run(t, Config{Request: req}))
	elapsed := time.Since(start)
	want := map[string][]string{
		// found on the first search domain
		"clusterip/udp": {"0 web.default.svc.cluster.local. NOERROR web.default.svc.cluster.local. 30 IN A 10.0.0.7 answer"},
		"clusterip/tcp": {"0 web.default.svc.cluster.local. NOERROR web.default.svc.cluster.local. 30 IN A 10.0.0.7 answer"},
		// SERVFAIL moves on to the next name, through the whole list
		"upstream/udp": {
			"0 web.default.svc.cluster.local. SERVFAIL next", "1 web.svc.cluster.local. SERVFAIL next",
			"2 web.cluster.local. SERVFAIL next", "3 web. SERVFAIL fail",
		},
		"upstream/tcp": {
			"0 web.default.svc.cluster.local. SERVFAIL next", "1 web.svc.cluster.local. SERVFAIL next",
			"2 web.cluster.local. SERVFAIL next", "3 web. SERVFAIL fail",
		},
		// REFUSED ends the search list; the name as given is still asked
		"refuser/udp": {"0 web.default.svc.cluster.local. REFUSED as-is", "3 web. REFUSED fail"},
		"refuser/tcp": {"0 web.default.svc.cluster.local. connection refused fail"},
		// no UDP listener: ICMP port unreachable; TCP answers
		"tcponly/udp": {"0 web.default.svc.cluster.local. connection refused fail"},
		"tcponly/tcp": {"0 web.default.svc.cluster.local. NOERROR web.default.svc.cluster.local. 30 IN A 10.0.0.7 answer"},
		// a timeout ends the search list too: then the name as given
		"mute/udp":   {"0 web.default.svc.cluster.local. timeout as-is", "3 web. timeout fail"},
		"mute/tcp":   {"0 web.default.svc.cluster.local. timeout as-is", "3 web. timeout fail"},
		"closed/udp": {"0 web.default.svc.cluster.local. connection refused fail"},
		"closed/tcp": {"0 web.default.svc.cluster.local. connection refused fail"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("probes (-want +got):\n%s", d)
	}
	// 12 lookups at once: the slowest is the mute server's two timeouts.
	if elapsed > 2*time.Second {
		t.Errorf("the run took %s; lookups are not asked in parallel", elapsed)
	}
}

func TestRunNXDOMAINWalksToTheEnd(t *testing.T) {
	zone := &zoneHandler{}
	s := protocol.DNSServer{Hop: "clusterip", Addr: serve(t, zone, true, true)}
	req := request(s)
	req.Names = []string{"example.test", "nothere.example", "example.test."}
	req.Protocols = []string{"udp"}
	req.Ndots = 1
	req.Type = "AAAA"
	lines := run(t, Config{Request: req})
	var got []string
	for _, l := range lines {
		p := l.(protocol.DNSProbe)
		got = append(got, fmt.Sprintf("%s: %d %s %s%s %s", p.Query, p.Step, p.Name, p.Rcode, p.Error, p.Resolver))
	}
	want := []string{
		// enough dots: as given first; NODATA (no AAAA) moves on
		"example.test: 0 example.test. NOERROR next",
		"example.test: 1 example.test.default.svc.cluster.local. NXDOMAIN next",
		"example.test: 2 example.test.svc.cluster.local. NXDOMAIN next",
		"example.test: 3 example.test.cluster.local. NXDOMAIN fail",
		"nothere.example: 0 nothere.example. NXDOMAIN next",
		"nothere.example: 1 nothere.example.default.svc.cluster.local. NXDOMAIN next",
		"nothere.example: 2 nothere.example.svc.cluster.local. NXDOMAIN next",
		"nothere.example: 3 nothere.example.cluster.local. NXDOMAIN fail",
		"example.test.: 0 example.test. NOERROR fail",
	}
	// lookups run in parallel: compare per query, in order
	byQuery := func(s []string) map[string][]string {
		m := map[string][]string{}
		for _, l := range s {
			q, _, _ := strings.Cut(l, ":")
			m[q] = append(m[q], l)
		}
		return m
	}
	if d := cmp.Diff(byQuery(want), byQuery(got)); d != "" {
		t.Errorf("probes (-want +got):\n%s", d)
	}
	if n := len(zone.questions()); n != len(want) {
		t.Errorf("the server saw %d questions, want %d: %q", n, len(want), zone.questions())
	}
	for _, q := range zone.questions() {
		if !strings.HasPrefix(q, "AAAA ") {
			t.Errorf("question %q: want AAAA only", q)
		}
	}
}

// The name as given, asked first, moves on to the search list even when
// it times out; its timeout on a search domain then ends the lookup (the
// name as given was asked already).
func TestRunTimeoutBeforeTheSearchList(t *testing.T) {
	s := protocol.DNSServer{Hop: "mute", Addr: silent(t)}
	req := request(s)
	req.Names = []string{"example.test"}
	req.Protocols = []string{"udp"}
	req.Search, req.Ndots = []string{"one.example", "two.example"}, 1
	got := short(run(t, Config{Request: req}))
	want := map[string][]string{"mute/udp": {"0 example.test. timeout next", "1 example.test.one.example. timeout fail"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("probes (-want +got):\n%s", d)
	}
}

func TestRunExpandFalseAsksTheNameOnly(t *testing.T) {
	zone := &zoneHandler{}
	s := protocol.DNSServer{Hop: "h", Addr: serve(t, zone, true, false)}
	req := request(s)
	req.Names = []string{"example.test"}
	req.Protocols = []string{"udp"}
	req.Expand = false
	run(t, Config{Request: req})
	if d := cmp.Diff([]string{"A example.test."}, zone.questions()); d != "" {
		t.Errorf("questions (-want +got):\n%s", d)
	}
}

func TestRunRateLimit(t *testing.T) {
	zone := &zoneHandler{}
	s := protocol.DNSServer{Hop: "h", Addr: serve(t, zone, true, false)}
	req := request(s)
	req.Protocols = []string{"udp"}
	req.Expand = false
	for i := range 12 {
		req.Names = append(req.Names, fmt.Sprintf("n%d.example", i))
	}
	req.Rate = 20
	start := time.Now()
	lines := run(t, Config{Request: req})
	elapsed := time.Since(start)
	// 12 queries at 20 a second, burst 2: the last leaves after 500 ms.
	if elapsed < 480*time.Millisecond {
		t.Errorf("12 queries at --rate 20 took %s, want at least 500ms", elapsed)
	}
	if len(lines) != 12 {
		t.Errorf("%d lines, want 12", len(lines))
	}
}

func TestRunMaxTimeCutsShort(t *testing.T) {
	s := protocol.DNSServer{Hop: "mute", Addr: silent(t)}
	req := request(s)
	req.Names = []string{"web"}
	req.Timeout = 5 * time.Second
	req.MaxTime = 300 * time.Millisecond
	start := time.Now()
	got := short(run(t, Config{Request: req}))
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("--max-time 300ms: the run took %s", elapsed)
	}
	want := map[string][]string{
		"mute/udp": {"0 web.default.svc.cluster.local. cut short by --max-time fail"},
		"mute/tcp": {"0 web.default.svc.cluster.local. cut short by --max-time fail"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("probes (-want +got):\n%s", d)
	}
	// --rate 1 (burst 2): the third query would leave after --max-time
	zone := &zoneHandler{}
	req = request(protocol.DNSServer{Hop: "h", Addr: serve(t, zone, true, false)})
	req.Names = []string{"example.test"}
	req.Protocols = []string{"udp"}
	req.Rate = 1
	req.MaxTime = 300 * time.Millisecond
	got = short(run(t, Config{Request: req}))
	want = map[string][]string{"h/udp": {
		"0 example.test.default.svc.cluster.local. NXDOMAIN next",
		"1 example.test.svc.cluster.local. NXDOMAIN next",
		"2 example.test.cluster.local. not sent: --max-time reached fail",
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("probes (-want +got):\n%s", d)
	}
}

func TestRunLoad(t *testing.T) {
	for _, tt := range []struct {
		name    string
		drop    bool
		mute    bool
		want    protocol.DNSLoad
		queries int64
	}{
		{name: "every answer", want: protocol.DNSLoad{Lookups: 20, Answered: 20}, queries: 40},
		// the first AAAA of every socket is lost, as in the conntrack
		// race: each lookup asks it again after the retry time
		{name: "lost AAAA", drop: true, want: protocol.DNSLoad{Lookups: 20, Answered: 20, Retried: 20, Slow5s: 20}, queries: 60},
		{name: "no answer", mute: true, want: protocol.DNSLoad{Lookups: 20, Failed: 20, Retried: 20}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			zone := &zoneHandler{dropAAAA: tt.drop}
			addr := ""
			if tt.mute {
				addr = silent(t)
			} else {
				addr = serve(t, zone, true, false)
			}
			s := protocol.DNSServer{Hop: "clusterip", Addr: addr}
			req := request(s)
			req.Names = []string{"example.test"}
			req.Protocols = nil
			req.Load = 20
			req.Rate = 2000
			req.Ndots = 1
			var load protocol.DNSLoad
			for _, l := range run(t, Config{Request: req, LoadRetry: 200 * time.Millisecond}) {
				if d, ok := l.(protocol.DNSLoad); ok {
					load = d
				}
			}
			if load.Name != "example.test." || load.Hop != "clusterip" || load.Server != addr || load.Type != protocol.TypeDNSLoad {
				t.Errorf("load line names %s %s %s %s", load.Type, load.Hop, load.Server, load.Name)
			}
			if tt.want.Answered > 0 && (load.MaxMs < load.P99Ms || load.P99Ms < load.P50Ms) {
				t.Errorf("percentiles out of order: %+v", load)
			}
			if tt.drop && load.P50Ms < 200 {
				t.Errorf("lookups that waited for the retry: p50 %d ms, want at least 200", load.P50Ms)
			}
			load.Type, load.Hop, load.Server, load.Name, load.P50Ms, load.P99Ms, load.MaxMs = "", "", "", "", 0, 0, 0
			if d := cmp.Diff(tt.want, load); d != "" {
				t.Errorf("load (-want +got):\n%s", d)
			}
			if !tt.mute && zone.queries.Load() != tt.queries {
				t.Errorf("the server saw %d queries, want %d", zone.queries.Load(), tt.queries)
			}
		})
	}
}

func TestLoadSendsAAndAAAAFromOneSocket(t *testing.T) {
	zone := &zoneHandler{}
	s := protocol.DNSServer{Hop: "h", Addr: serve(t, zone, true, false)}
	lim := newLimiter(1000)
	r := lookupAAndAAAA(context.Background(), lim, s.HostPort(), "example.test.", time.Second)
	if !r.answered || r.retried {
		t.Fatalf("lookup: %+v", r)
	}
	zone.mu.Lock()
	defer zone.mu.Unlock()
	asked := append([]string(nil), zone.asked...)
	sort.Strings(asked)
	if d := cmp.Diff([]string{"A example.test.", "AAAA example.test."}, asked); d != "" {
		t.Errorf("questions (-want +got):\n%s", d)
	}
	// one socket: one source address and port for both
	if len(zone.from) != 2 || zone.from[0] != zone.from[1] {
		t.Errorf("the queries came from %q, want one address", zone.from)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(d, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := percentile(d, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := percentile(d[:1], 99); p != time.Millisecond {
		t.Errorf("p99 of one = %s", p)
	}
}

func TestRunConntrackCounters(t *testing.T) {
	zone := &zoneHandler{}
	s := protocol.DNSServer{Hop: "h", Addr: serve(t, zone, true, false)}
	req := request(s)
	req.Names = []string{"example.test."}
	req.Protocols = []string{"udp"}
	req.ConntrackProc = "/host/proc"
	reads := 0
	var paths []string
	stat := func(path string) (map[string]uint64, error) {
		reads++
		paths = append(paths, path)
		return map[string]uint64{"insert_failed": uint64(10 * reads), "drop": uint64(reads)}, nil
	}
	lines := run(t, Config{Request: req, ConntrackStat: stat})
	last, ok := lines[len(lines)-1].(protocol.ConntrackCounters)
	if !ok {
		t.Fatalf("last line %T, want the conntrack counters", lines[len(lines)-1])
	}
	want := protocol.ConntrackCounters{Type: protocol.TypeConntrackCounters, InsertFailedBefore: 10, InsertFailedAfter: 20, DropBefore: 1, DropAfter: 2}
	if d := cmp.Diff(want, last); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"/host/proc/net/stat/nf_conntrack", "/host/proc/net/stat/nf_conntrack"}, paths); d != "" {
		t.Errorf("paths read (-want +got):\n%s", d)
	}

	failing := func(string) (map[string]uint64, error) { return nil, os.ErrNotExist }
	lines = run(t, Config{Request: req, ConntrackStat: failing})
	last = lines[len(lines)-1].(protocol.ConntrackCounters)
	if last.Error != "/host/proc/net/stat/nf_conntrack: no such file" {
		t.Errorf("error = %q", last.Error)
	}
}

func TestRunResolvConf(t *testing.T) {
	zone := &zoneHandler{}
	s := protocol.DNSServer{Hop: "resolv.conf", Addr: serve(t, zone, true, false)}
	req := request(s)
	req.Search, req.Ndots = nil, 0
	req.Protocols = []string{"udp"}
	req.Names = []string{"web"}
	req.ResolvConf = "testdata/kubernetes.conf"
	lines := run(t, Config{Request: req})
	rc, ok := lines[0].(protocol.ResolvConf)
	if !ok || rc.Ndots != 5 || rc.Path != "testdata/kubernetes.conf" || len(rc.Search) != 3 {
		t.Fatalf("first line %+v", lines[0])
	}
	// the resolv.conf's search list expanded the name
	if d := cmp.Diff([]string{"A web.default.svc.cluster.local."}, zone.questions()); d != "" {
		t.Errorf("questions (-want +got):\n%s", d)
	}

	// a file that cannot be read is the line's error, not a failure
	req.ResolvConf = "testdata/missing.conf"
	lines = run(t, Config{Request: req})
	rc = lines[0].(protocol.ResolvConf)
	if rc.Error != "no such file" || rc.Nameservers != nil {
		t.Errorf("missing file: %+v", rc)
	}
	if p := lines[1].(protocol.DNSProbe); p.Name != "web." {
		t.Errorf("without a search list the name is asked as given, got %q", p.Name)
	}
}

// fakeProc builds a procfs with processes: pid → argv0 and, when set, the
// resolv.conf under its root.
func fakeProc(t *testing.T, procs map[int][2]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, fmt.Sprint(pid))
		if err := os.MkdirAll(filepath.Join(d, "root", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cmdline"), []byte(p[0]+"\x00--flag\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
		if p[1] != "" {
			if err := os.WriteFile(filepath.Join(d, "root", "etc", "resolv.conf"), []byte(p[1]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestAutoResolvConf(t *testing.T) {
	own := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(own, []byte("search own.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// pid 1's root unreadable (here: no file), the helper's own
	// processes skipped, pid 12's file read
	proc := fakeProc(t, map[int][2]string{
		1:  {"/pause", ""},
		5:  {"/netdiag-helper", "search helper.example\n"},
		9:  {"sleep", "search self.example\n"},
		12: {"/app", "search pod.example\noptions ndots:5\n"},
	})
	path, c, tried, err := autoResolvConf(proc, own, 9)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(proc, "12", "root", "etc", "resolv.conf") || c.Search[0] != "pod.example" || c.Ndots != 5 {
		t.Errorf("read %s: %+v", path, c)
	}
	if d := cmp.Diff([]string{filepath.Join(proc, "1", "root", "etc", "resolv.conf") + ": no such file"}, tried); d != "" {
		t.Errorf("tried (-want +got):\n%s", d)
	}

	// no pod process readable: the helper container's own file (the
	// runtime mounts the pod's into it)
	proc = fakeProc(t, map[int][2]string{1: {"/app", ""}})
	path, c, tried, err = autoResolvConf(proc, own, 9)
	if err != nil || path != own || c.Search[0] != "own.example" || len(tried) != 1 {
		t.Errorf("fallback: %s %+v %q %v", path, c, tried, err)
	}

	// nothing readable: an error that says what was tried
	_, _, tried, err = autoResolvConf(proc, own+".missing", 9)
	if err == nil || err.Error() != "no resolv.conf could be read (tried 2)" || len(tried) != 2 {
		t.Errorf("nothing readable: %q %v", tried, err)
	}
	if !errors.Is(os.ErrPermission, os.ErrPermission) || !strings.Contains(reason(os.ErrPermission), "CAP_SYS_PTRACE") {
		t.Errorf("permission reason: %s", reason(os.ErrPermission))
	}
}

func TestRunAutoResolvConfLine(t *testing.T) {
	own := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(own, []byte("nameserver 10.96.0.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := fakeProc(t, map[int][2]string{1: {"/app", ""}})
	req := protocol.DefaultDNSRequest()
	req.ResolvConf = protocol.ResolvConfAuto
	lines := run(t, Config{Request: req, Proc: proc, OwnResolvConf: own, Self: 100})
	want := protocol.ResolvConf{
		Type: protocol.TypeResolvConf, Path: own, Nameservers: []string{"10.96.0.10"}, Search: []string{},
		Ndots: 1, TimeoutSeconds: 5, Attempts: 2,
		Tried: []string{filepath.Join(proc, "1", "root", "etc", "resolv.conf") + ": no such file"},
	}
	if d := cmp.Diff([]any{want}, lines); d != "" {
		t.Errorf("lines (-want +got):\n%s", d)
	}
}
