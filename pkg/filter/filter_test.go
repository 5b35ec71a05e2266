package filter

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

type corpusLine struct {
	ok   bool
	expr string
	line int
}

func readCorpus(t testing.TB) []corpusLine {
	t.Helper()
	f, err := os.Open("testdata/filters.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		verdict, expr, found := strings.Cut(l, "\t")
		if !found || (verdict != "ok" && verdict != "bad") {
			t.Fatalf("filters.txt:%d: want ok<TAB>expr or bad<TAB>expr, got %q", n, l)
		}
		out = append(out, corpusLine{ok: verdict == "ok", expr: expr, line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The checker must never refuse what libpcap accepts; of what libpcap
// refuses it catches what it can.
func TestCorpus(t *testing.T) {
	var oks, bads, caught int
	for _, c := range readCorpus(t) {
		err := Check(c.expr)
		if c.ok {
			oks++
			if err != nil {
				t.Errorf("filters.txt:%d: libpcap accepts %q, the checker refuses it: %v", c.line, c.expr, err)
			}
			continue
		}
		bads++
		if err != nil {
			caught++
		}
	}
	if oks < 60 || bads < 20 {
		t.Errorf("corpus has %d ok and %d bad lines, want at least 60 and 20", oks, bads)
	}
	t.Logf("checker refuses %d of the %d filters libpcap refuses", caught, bads)
}

// commonMistakes are refused with a message saying what and where.
var commonMistakes = []struct{ expr, want string }{
	{"tcp port", `invalid filter "tcp port": expected a port number after "port" (at the end)`},
	{"port", `invalid filter "port": expected a port number after "port" (at the end)`},
	{"host", `invalid filter "host": expected a host name or address after "host" (at the end)`},
	{"port 99999", `invalid filter "port 99999": port 99999 is out of range (0-65535) (at "99999", column 6)`},
	{"portrange 1-70000", `invalid filter "portrange 1-70000": port 70000 is out of range (0-65535) (at "1-70000", column 11)`},
	{"(tcp", `invalid filter "(tcp": unbalanced parentheses: this ( is never closed (at "(", column 1)`},
	{"tcp)", `invalid filter "tcp)": unbalanced parentheses: this ) closes nothing (at ")", column 4)`},
	{"()", `invalid filter "()": empty parentheses (at ")", column 2)`},
	{"tcp and", `invalid filter "tcp and": "and" needs a primitive after it (at the end)`},
	{"or tcp", `invalid filter "or tcp": expected a primitive, found "or" (at "or", column 1)`},
	{"not", `invalid filter "not": "not" needs a primitive after it (at the end)`},
	{"tcp and and udp", `invalid filter "tcp and and udp": "and" cannot follow "and" (at "and", column 9)`},
	{"tcp udp", `invalid filter "tcp udp": expected and, or or the end of the filter; two primitives need and/or between them (at "udp", column 5)`},
	{"ip proto tcp", `invalid filter "ip proto tcp": "tcp" is a keyword: escape it as \tcp (at "tcp", column 10)`},
	{"host 10.0.0.0/8", `invalid filter "host 10.0.0.0/8": a /length mask is for networks only: use net instead of host (at "/", column 14)`},
	{"net 10.0.0.1/8", `invalid filter "net 10.0.0.1/8": 10.0.0.1 has bits set outside its /8 mask: did you mean 10.0.0.0/8? (at "10.0.0.1", column 5)`},
	{"tcp host 1.2.3.4", `invalid filter "tcp host 1.2.3.4": "tcp" cannot qualify host: write e.g. "tcp and host ..." (at "host", column 5)`},
	{"ip port 80", `invalid filter "ip port 80": "ip" cannot qualify port: use tcp, udp or sctp (or nothing) before it (at "port", column 4)`},
	{"ip[2:3] > 1", `invalid filter "ip[2:3] > 1": the size after : must be 1, 2 or 4 (at "3", column 6)`},
	{"tcp[13] & 2", `invalid filter "tcp[13] & 2": incomplete comparison: expected >, <, >=, <=, =, == or != and a value (at the end)`},
	{"vlan 4096", `invalid filter "vlan 4096": VLAN ID 4096 is out of range (0-4095) (at "4096", column 6)`},
	{"10.0.0.1", `invalid filter "10.0.0.1": "10.0.0.1" is not a primitive: say what it is, e.g. host 10.0.0.1 or port 10.0.0.1 (at "10.0.0.1", column 1)`},
}

func TestCommonMistakes(t *testing.T) {
	for _, tt := range commonMistakes {
		err := Check(tt.expr)
		if err == nil {
			t.Errorf("Check(%q) = nil, want %s", tt.expr, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Check(%q):\n got %s\nwant %s", tt.expr, err, tt.want)
		}
	}
}

// onlyLibpcapCanJudge: names are resolved by libpcap in the helper; the
// checker cannot know them and must accept them.
var onlyLibpcapCanJudge = []string{
	"", "  ", "port http", "host db.example.internal", "tcp port ftp-data or https",
	"host a or b", "ether proto \\ip", "llc", "type mgt subtype beacon", "ifname eth0",
	"ip[2:2] > foo", "host (a or b)", "tcp[13] & 2 != 0 and byte 2 = 3", "fddi",
	"host vxlan", // a keyword only in libpcap newer than the helper's
}

func TestAcceptsWhatOnlyLibpcapCanJudge(t *testing.T) {
	for _, expr := range onlyLibpcapCanJudge {
		if err := Check(expr); err != nil {
			t.Errorf("Check(%q) = %v, want nil", expr, err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, c := range readCorpus(f) {
		f.Add(c.expr)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		err := Check(expr) // must not panic
		if err != nil && !strings.HasPrefix(err.Error(), "invalid filter ") {
			t.Fatalf("Check(%q) = %v: not an *Error message", expr, err)
		}
	})
}

// The scanner splits words as libpcap's does: longest match first, no
// space needed between tokens.
func TestTokenize(t *testing.T) {
	tests := []struct {
		expr string
		want string // kind:text ...
	}{
		{"host::0.0.0.0and port 0", "key:host hid6:::0.0.0.0 and:and key:port num:0"},
		{"host ::ffff:10.0.0.1", "key:host hid6:::ffff:10.0.0.1"},
		{"ip[2:2]", "key:ip [:[ num:2 ::: num:2 ]:]"},
		{"ether host aa:bb:cc:dd:ee:ffand tcp", "key:ether key:host eid:aa:bb:cc:dd:ee:ff and:and key:tcp"},
		{"host 1.2.3.4.5", "key:host id:1.2.3.4.5"},
		{"host 001122334455", "key:host eid:001122334455"},
		{"net 10.0.0.0/8", "key:net hid:10.0.0.0 /:/ num:8"},
		{"portrange 80-90", "key:portrange id:80-90"},
		{"tcp[tcpflags] & tcp-syn", "key:tcp [:[ num:tcpflags ]:] op:& num:tcp-syn"},
		{"hostx or android", "id:hostx or:or id:android"},
		{"ip6 and es-is", "key:ip6 and:and key:es-is"},
		{"port 0x50", "key:port num:0x50"},
		{"port 0x", "key:port id:0x"},
	}
	names := map[kind]string{tLParen: "(", tRParen: ")", tLBrack: "[", tRBrack: "]", tColon: ":", tSlash: "/", tMinus: "-",
		tBinop: "op", tRelop: "rel", tAnd: "and", tOr: "or", tNot: "not", tNum: "num", tHID: "hid", tHID6: "hid6", tEID: "eid", tID: "id", tKey: "key"}
	for _, tt := range tests {
		toks, ok := tokenize(tt.expr)
		if !ok {
			t.Errorf("tokenize(%q): not modelled", tt.expr)
			continue
		}
		var got []string
		for _, tok := range toks {
			got = append(got, names[tok.kind]+":"+tok.text)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("tokenize(%q):\n got %s\nwant %s", tt.expr, g, tt.want)
		}
	}
	// Left to libpcap: a malformed MAC or IPv6 address, a character it
	// refuses, a word newer libpcap reads as a keyword.
	for _, expr := range []string{"ip[0:1:2] = 1", "host ::01.2.3.4", "host _x", "vxlan"} {
		if _, ok := tokenize(expr); ok {
			t.Errorf("tokenize(%q) modelled it, want it left to libpcap", expr)
		}
	}
}
