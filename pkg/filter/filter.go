// Package filter pre-checks capture filters in tcpdump (pcap-filter(7))
// syntax, in pure Go, so an obviously broken filter is refused before
// anything is created in the cluster.
//
// The check is conservative. libpcap, in the helper, has the final word: it
// compiles the filter before capturing and refuses what it cannot compile.
// This checker must never refuse a filter libpcap accepts, so anything it
// does not model (rarely used keywords, names that need resolving, 802.11 and
// ATM qualifiers, ...) is accepted. It refuses the common mistakes: a
// qualifier without its value ("tcp port"), dangling and/or/not, unbalanced
// or empty parentheses, a port out of range, an incomplete comparison.
package filter

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Error is a filter the checker refuses.
type Error struct {
	Expr string
	Msg  string
	// Pos is the byte offset of the offending token; -1 at the end.
	Pos   int
	Token string
}

func (e *Error) Error() string {
	where := "at the end"
	if e.Pos >= 0 {
		where = fmt.Sprintf("at %q, column %d", e.Token, e.Pos+1)
	}
	return fmt.Sprintf("invalid filter %q: %s (%s)", e.Expr, e.Msg, where)
}

// Check returns nil when expr may be a valid filter and an *Error when it is
// certainly not one. The empty filter captures everything.
func Check(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return nil
	}
	toks, ok := tokenize(expr)
	if !ok {
		return nil // a character we do not model: libpcap decides
	}
	p := &parser{expr: expr, toks: toks}
	err := p.run()
	var unsure unsureError
	if errors.As(err, &unsure) {
		return nil
	}
	return err
}

// unsureError means the parser met something it does not model.
type unsureError struct{ why string }

func (u unsureError) Error() string { return "unsure: " + u.why }

// ---- tokens ----

type kind int

const (
	tEnd kind = iota
	tLParen
	tRParen
	tLBrack
	tRBrack
	tColon
	tSlash
	tMinus
	tBinop // + * % & | ^ << >> (and / and - have their own kinds)
	tRelop // > < >= <= = == !=
	tAnd
	tOr
	tNot
	tNum  // number, or a named constant such as tcp-syn
	tHID  // IPv4 address, possibly partial: 10.1
	tHID6 // IPv6 address
	tEID  // MAC address
	tID   // a name (or an escaped keyword: \tcp)
	tKey  // a keyword: see keyClass
)

type token struct {
	kind kind
	text string
	pos  int
	cls  keyClass
}

type keyClass int

const (
	kNone keyClass = iota
	kPname
	kDir   // src dst
	kAddr  // host net port portrange gateway
	kProto // proto protochain
	kMask
	kBcast // broadcast multicast
	kLess  // less greater
	kLen   // len length
	kVlan  // vlan mpls pppoes geneve: optional number
	kBare  // pppoed inbound outbound: alone
	kOther // keywords we do not model
)

var keywords = map[string]keyClass{
	"src": kDir, "dst": kDir,
	"host": kAddr, "net": kAddr, "port": kAddr, "portrange": kAddr, "gateway": kAddr,
	"proto": kProto, "protochain": kProto,
	"mask":      kMask,
	"broadcast": kBcast, "multicast": kBcast,
	"less": kLess, "greater": kLess,
	"len": kLen, "length": kLen,
	"vlan": kVlan, "mpls": kVlan, "pppoes": kVlan, "geneve": kVlan,
	"pppoed": kBare, "inbound": kBare, "outbound": kBare,
}

var pnames = []string{
	"link", "ether", "ppp", "slip", "fddi", "tr", "wlan", "arp", "rarp", "ip", "sctp", "tcp", "udp",
	"icmp", "igmp", "igrp", "pim", "vrrp", "carp", "radio", "ip6", "icmp6", "ah", "esp", "atalk", "aarp",
	"decnet", "lat", "sca", "moprc", "mopdl", "iso", "esis", "es-is", "isis", "is-is", "l1", "l2",
	"iih", "lsp", "snp", "csnp", "psnp", "clnp", "stp", "ipx", "netbeui",
}

// otherKeywords are libpcap keywords the checker does not model: a filter
// using them is left to libpcap.
var otherKeywords = []string{
	"byte", "ifindex", "lane", "llc", "metac", "bcc", "oam", "oamf4", "oamf4ec", "oamf4sc", "sc",
	"ilmic", "vpi", "vci", "connectmsg", "metaconnect", "on", "ifname", "rnr", "rulenum", "reason",
	"rset", "ruleset", "srnr", "subrulenum", "action", "fisu", "lssu", "lsu", "sio", "opc", "dpc",
	"sls", "hfisu", "hlssu", "hmsu", "hsio", "hopc", "hdpc", "hsls", "type", "subtype", "direction",
	"dir", "addr1", "address1", "addr2", "address2", "addr3", "address3", "addr4", "address4",
	"ra", "ta", "msu",
}

// versionWords are names in the helper's libpcap (1.10.3) and keywords in
// newer ones: a filter with one is left to libpcap.
var versionWords = []string{"vxlan"}

// numericNames are constants libpcap turns into numbers.
var numericNames = []string{
	"icmptype", "icmpcode", "icmp6type", "icmp6code", "tcpflags",
	"tcp-fin", "tcp-syn", "tcp-rst", "tcp-push", "tcp-ack", "tcp-urg", "tcp-ece", "tcp-cwr",
}

func init() {
	for _, p := range pnames {
		keywords[p] = kPname
	}
	for _, o := range otherKeywords {
		keywords[o] = kOther
	}
}

func isNumericName(w string) bool {
	for _, n := range numericNames {
		if w == n {
			return true
		}
	}
	return strings.HasPrefix(w, "icmp-") || strings.HasPrefix(w, "icmp6-")
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// tokenize splits expr the way libpcap's scanner does, closely enough; ok
// is false on anything it does not model.
func tokenize(s string) ([]token, bool) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '(':
			toks = append(toks, token{kind: tLParen, text: "(", pos: i})
		case c == ')':
			toks = append(toks, token{kind: tRParen, text: ")", pos: i})
		case c == '[':
			toks = append(toks, token{kind: tLBrack, text: "[", pos: i})
		case c == ']':
			toks = append(toks, token{kind: tRBrack, text: "]", pos: i})
		case c == '/':
			toks = append(toks, token{kind: tSlash, text: "/", pos: i})
		case c == '-':
			toks = append(toks, token{kind: tMinus, text: "-", pos: i})
		case c == '+' || c == '*' || c == '%' || c == '^':
			toks = append(toks, token{kind: tBinop, text: string(c), pos: i})
		case c == '&' || c == '|':
			if i+1 < len(s) && s[i+1] == c {
				k := tAnd
				if c == '|' {
					k = tOr
				}
				toks = append(toks, token{kind: k, text: s[i : i+2], pos: i})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tBinop, text: string(c), pos: i})
		case c == '<' || c == '>':
			if i+1 < len(s) && s[i+1] == c {
				toks = append(toks, token{kind: tBinop, text: s[i : i+2], pos: i})
				i += 2
				continue
			}
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{kind: tRelop, text: s[i : i+2], pos: i})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tRelop, text: string(c), pos: i})
		case c == '=':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{kind: tRelop, text: "==", pos: i})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tRelop, text: "=", pos: i})
		case c == '!':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{kind: tRelop, text: "!=", pos: i})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tNot, text: "!", pos: i})
		case c == '\\':
			j := i + 1
			for j < len(s) && !strings.ContainsRune(" !()\n\t", rune(s[j])) {
				j++
			}
			if j == i+1 {
				return nil, false
			}
			toks = append(toks, token{kind: tID, text: s[i+1 : j], pos: i})
			i = j
			continue
		case c == ':' || isHex(c) || isWordChar(c):
			j := i
			for j < len(s) && (isWordChar(s[j]) || s[j] == ':') {
				j++
			}
			tok, n, ok := classifyWord(s[i:j])
			if !ok {
				return nil, false
			}
			tok.pos = i
			toks = append(toks, tok)
			i += n
			continue
		default:
			return nil, false
		}
		i++
	}
	return toks, true
}

// classifyWord returns the token libpcap's scanner reads at the start of w
// (a run of letters, digits, - _ . and :) and its length. Like flex, it
// takes the longest match, and on a tie the rule first in libpcap's
// scanner: keywords, MAC address, number, IPv4 address, IPv6 address,
// malformed MAC address, name. Whitespace is not needed between tokens:
// "host::0.0.0.0and port 1" is host, ::0.0.0.0, and, port, 1.
func classifyWord(w string) (token, int, bool) {
	if len(w) > 256 {
		return token{}, 0, false // not a filter a person writes
	}
	kw := 0
	for k := range keywords {
		if len(k) > kw && strings.HasPrefix(w, k) {
			kw = len(k)
		}
	}
	for _, k := range []string{"and", "or", "not"} {
		if len(k) > kw && strings.HasPrefix(w, k) {
			kw = len(k)
		}
	}
	mac, num, hid, v6, bogus, id := macLen(w), numLen(w), hidLen(w), v6Len(w), bogusMACLen(w), idLen(w)
	best := max(kw, mac, num, hid, v6, bogus, id)
	switch {
	case best == 0:
		if w[0] == ':' {
			return token{kind: tColon, text: ":"}, 1, true
		}
		return token{}, 0, false // libpcap: illegal character
	case kw == best:
		t := w[:kw]
		switch t {
		case "and":
			return token{kind: tAnd, text: t}, kw, true
		case "or":
			return token{kind: tOr, text: t}, kw, true
		case "not":
			return token{kind: tNot, text: t}, kw, true
		}
		return token{kind: tKey, text: t, cls: keywords[t]}, kw, true
	case mac == best:
		return token{kind: tEID, text: w[:mac]}, mac, true
	case num == best:
		return token{kind: tNum, text: w[:num]}, num, true
	case hid == best:
		t := w[:hid]
		if strings.Contains(t, "x") || strings.Contains(t, "X") {
			// 0x1.2: libpcap reads it as an IPv4 address, the
			// checker does not judge it.
			return token{kind: tID, text: t}, hid, true
		}
		return token{kind: tHID, text: t}, hid, true
	case v6 == best:
		// Any IPv6 address, IPv4-mapped (::ffff:10.0.0.1) and
		// IPv4-compatible (::10.0.0.1) ones included. One libpcap's
		// resolver refuses ("bogus IPv6 address") is left to it.
		if net.ParseIP(w[:v6]) == nil {
			return token{}, 0, false
		}
		return token{kind: tHID6, text: w[:v6]}, v6, true
	case bogus == best:
		return token{}, 0, false // libpcap: "bogus ethernet address"
	}
	t := w[:id]
	for _, v := range versionWords {
		if t == v {
			return token{}, 0, false
		}
	}
	if isNumericName(t) {
		return token{kind: tNum, text: t}, id, true
	}
	return token{kind: tID, text: t}, id, true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// hexRun is the number of hex digits at the start of s.
func hexRun(s string) int {
	n := 0
	for n < len(s) && isHex(s[n]) {
		n++
	}
	return n
}

// idLen: a name, [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?
func idLen(w string) int {
	if w == "" || !isAlnum(w[0]) {
		return 0
	}
	n, end := 1, 1
	for n < len(w) && (isAlnum(w[n]) || w[n] == '-' || w[n] == '_' || w[n] == '.') {
		n++
		if c := w[n-1]; isAlnum(c) || c == '.' {
			end = n
		}
	}
	return end
}

// numLen: [0-9]+ or 0x[0-9A-Fa-f]+.
func numLen(w string) int {
	if len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X') && isHex(w[2]) {
		return 2 + hexRun(w[2:])
	}
	n := 0
	for n < len(w) && w[n] >= '0' && w[n] <= '9' {
		n++
	}
	return n
}

// hidLen: N.N, N.N.N or N.N.N.N.
func hidLen(w string) int {
	n := numLen(w)
	if n == 0 {
		return 0
	}
	end, parts := 0, 1
	for parts < 4 && n < len(w) && w[n] == '.' {
		m := numLen(w[n+1:])
		if m == 0 {
			break
		}
		n += 1 + m
		parts++
		end = n
	}
	return end
}

// macLen: aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aa.bb.cc.dd.ee.ff (one or
// two hex digits each), aabb.ccdd.eeff or aabbccddeeff.
func macLen(w string) int {
	best := 0
	for _, sep := range []byte{':', '-', '.'} {
		n := 0
		for g := 0; g < 6; g++ {
			h := min(hexRun(w[n:]), 2)
			if h == 0 || g < 5 && (n+h >= len(w) || w[n+h] != sep) {
				n = 0
				break
			}
			n += h
			if g < 5 {
				n++
			}
		}
		best = max(best, n)
	}
	if len(w) >= 14 && hexRun(w) >= 4 && w[4] == '.' && hexRun(w[5:]) >= 4 && w[9] == '.' && hexRun(w[10:]) >= 4 {
		best = max(best, 14)
	}
	if hexRun(w) >= 12 {
		best = max(best, 12)
	}
	return best
}

// bogusMACLen: what libpcap reads as a malformed MAC address, hex pairs
// each followed by colons, at least two: 1:2: or aa::bb:.
func bogusMACLen(w string) int {
	n, groups := 0, 0
	for {
		h := hexRun(w[n:])
		if h == 0 || h > 2 && (n+2 >= len(w) || w[n+2] != ':') {
			break
		}
		h = min(h, 2)
		c := 0
		for n+h+c < len(w) && w[n+h+c] == ':' {
			c++
		}
		if c == 0 {
			break
		}
		n += h + c
		groups++
	}
	if groups < 2 {
		return 0
	}
	return n
}

// v6Len: the longest prefix of w in one of the IPv6 forms of libpcap's
// scanner (eight groups of one to four hex digits, or fewer around one ::,
// the last two maybe as a dotted quad of numbers).
func v6Len(w string) int {
	n := 0
	for n < len(w) && (isHex(w[n]) || w[n] == ':' || w[n] == '.' || w[n] == 'x' || w[n] == 'X') {
		n++
	}
	if !strings.Contains(w[:n], ":") {
		return 0
	}
	for ; n > 1; n-- {
		if isV6Form(w[:n]) {
			return n
		}
	}
	return 0
}

func isV6Form(w string) bool {
	groups := func(part string) (int, bool) {
		if part == "" {
			return 0, true
		}
		gs := strings.Split(part, ":")
		count := 0
		for i, g := range gs {
			if i == len(gs)-1 && strings.Contains(g, ".") {
				if hidLen(g) != len(g) || strings.Count(g, ".") != 3 {
					return 0, false
				}
				count += 2
				continue
			}
			if len(g) < 1 || len(g) > 4 || hexRun(g) != len(g) {
				return 0, false
			}
			count++
		}
		return count, true
	}
	head, tail, double := strings.Cut(w, "::")
	if !double {
		n, ok := groups(w)
		return ok && n == 8
	}
	if strings.Contains(tail, "::") || strings.Contains(head, ".") {
		return false
	}
	h, ok1 := groups(head)
	t, ok2 := groups(tail)
	return ok1 && ok2 && h+t <= 7
}

func isNumber(w string) bool {
	if strings.HasPrefix(w, "0x") || strings.HasPrefix(w, "0X") {
		if len(w) == 2 {
			return false
		}
		for i := 2; i < len(w); i++ {
			if !isHex(w[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return w != ""
}

// ---- parser ----

// qual is what a bare id after and/or inherits.
type qual struct {
	valid bool
	pname string
	addr  string // host net port portrange gateway proto protochain, "" for a dir-only head
}

type parser struct {
	expr string
	toks []token
	i    int
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{kind: tEnd, pos: -1}
}

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return token{kind: tEnd, pos: -1}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return &Error{Expr: p.expr, Msg: fmt.Sprintf(format, args...), Pos: t.pos, Token: t.text}
}

func (p *parser) run() error {
	if _, err := p.parseExpr(qual{}, true); err != nil {
		return err
	}
	if t := p.peek(); t.kind != tEnd {
		if t.kind == tRParen {
			return p.errAt(t, "unbalanced parentheses: this ) closes nothing")
		}
		return p.errAt(t, "expected and, or or the end of the filter; two primitives need and/or between them")
	}
	return nil
}

// parseExpr: term { (and|or) (term | inherited id) }. It returns the
// qualifiers a following bare id would inherit.
func (p *parser) parseExpr(q qual, top bool) (qual, error) {
	q, err := p.parseTerm(q, top)
	if err != nil {
		return q, err
	}
	for {
		t := p.peek()
		if t.kind != tAnd && t.kind != tOr {
			return q, nil
		}
		p.next()
		if p.peek().kind == tEnd {
			return q, p.errAt(p.peek(), "%q needs a primitive after it", t.text)
		}
		if nt := p.peek(); nt.kind == tAnd || nt.kind == tOr {
			return q, p.errAt(nt, "%q cannot follow %q", nt.text, t.text)
		}
		q, err = p.parseTerm(q, false)
		if err != nil {
			return q, err
		}
	}
}

func isBareID(t token) bool {
	switch t.kind {
	case tNum, tHID, tHID6, tEID, tID:
		return true
	}
	return false
}

// parseTerm: { not } rterm, or a bare id inheriting q.
func (p *parser) parseTerm(q qual, first bool) (qual, error) {
	start := p.peek()
	for p.peek().kind == tNot {
		p.next()
	}
	t := p.peek()
	if t.kind == tEnd {
		if start.kind == tNot {
			return q, p.errAt(t, "%q needs a primitive after it", start.text)
		}
		return q, p.errAt(t, "expected a primitive")
	}
	if t.kind == tNum {
		if n := p.peekAt(1).kind; n == tRelop || n == tBinop || n == tMinus || n == tSlash {
			return qual{}, p.parseRelation()
		}
	}
	if isBareID(t) {
		if !q.valid {
			if first && q.pname == "" && q.addr == "" {
				return q, p.errAt(t, "%q is not a primitive: say what it is, e.g. host %s or port %s", t.text, t.text, t.text)
			}
			return q, unsureError{"bare id without known qualifiers"}
		}
		return q, p.parseID(q, token{text: q.addr})
	}
	return p.parseRterm(q)
}

func (p *parser) parseRterm(q qual) (qual, error) {
	t := p.peek()
	switch t.kind {
	case tLParen:
		return p.parseParen(q)
	case tRParen:
		return q, p.errAt(t, "expected a primitive before )")
	case tAnd, tOr:
		return q, p.errAt(t, "expected a primitive, found %q", t.text)
	case tMinus, tNum:
		return q, p.parseRelation()
	case tRelop, tBinop, tSlash, tColon, tLBrack, tRBrack:
		return q, p.errAt(t, "expected a primitive, found %q", t.text)
	case tKey:
	default:
		return q, unsureError{"unexpected token"}
	}
	switch t.cls {
	case kPname:
		switch n := p.peekAt(1); {
		case n.kind == tLBrack:
			return q, p.parseRelation()
		case n.kind == tKey && (n.cls == kDir || n.cls == kAddr || n.cls == kProto):
			return p.parseHead()
		case n.kind == tKey && n.cls == kBcast:
			p.next()
			p.next()
			return qual{}, nil
		case n.kind == tKey && n.cls == kOther:
			return q, unsureError{"keyword after protocol"}
		}
		p.next()
		// A protocol alone; what a bare id after it inherits is not
		// modelled.
		return qual{pname: t.text}, nil
	case kDir, kAddr, kProto:
		return p.parseHead()
	case kBcast, kBare:
		p.next()
		return qual{}, nil
	case kLess:
		p.next()
		if n := p.peek(); n.kind != tNum {
			return q, p.errAt(n, "expected a length (a number) after %q", t.text)
		}
		p.next()
		return qual{}, nil
	case kVlan:
		p.next()
		if n := p.peek(); n.kind == tNum {
			p.next()
			if t.text == "vlan" {
				if v, err := parseNum(n.text); err == nil && v > 4095 {
					return q, p.errAt(n, "VLAN ID %s is out of range (0-4095)", n.text)
				}
			}
		} else if n.kind == tLParen {
			return q, unsureError{"parenthesised number"}
		} else if isBareID(n) {
			return q, p.errAt(n, "expected a number after %q", t.text)
		}
		return qual{}, nil
	case kLen:
		return q, p.parseRelation()
	}
	return q, unsureError{"keyword not modelled: " + t.text}
}

// parseParen parses ( expr ), or a comparison that starts with a
// parenthesised arithmetic expression.
func (p *parser) parseParen(q qual) (qual, error) {
	save := p.i
	open := p.next()
	if p.peek().kind == tRParen {
		return q, p.errAt(p.peek(), "empty parentheses")
	}
	if p.peek().kind == tEnd {
		return q, p.errAt(open, "unbalanced parentheses: this ( is never closed")
	}
	inner, boolErr := p.parseExpr(q, false)
	if boolErr == nil {
		if p.peek().kind == tRParen {
			p.next()
			if k := p.peek().kind; k != tRelop && k != tBinop && k != tMinus && k != tSlash {
				return inner, nil
			}
		} else if p.peek().kind == tEnd {
			boolErr = p.errAt(open, "unbalanced parentheses: this ( is never closed")
		} else {
			boolErr = p.errAt(p.peek(), "expected ) or and/or")
		}
	}
	var unsure unsureError
	if errors.As(boolErr, &unsure) {
		return q, boolErr
	}
	boolEnd := p.i
	// Which reading the filter looks like: a comparison when the group
	// starts with something only arithmetic has.
	arithLike := false
	switch first, second := p.toks[save+1], p.peekAtIndex(save+2); {
	case first.kind == tNum, first.kind == tMinus, first.kind == tKey && first.cls == kLen:
		arithLike = true
	case first.kind == tKey && first.cls == kPname && second.kind == tLBrack:
		arithLike = true
	}
	// Maybe arithmetic: (tcp[12] & 0xf0) >> 2 > 5.
	p.i = save
	arithErr := p.parseRelation()
	if arithErr == nil {
		return qual{}, nil
	}
	if errors.As(arithErr, &unsure) {
		return q, arithErr
	}
	// Both readings fail: report the one the filter looks like.
	if boolErr == nil || arithLike {
		p.i = boolEnd
		return q, arithErr
	}
	return q, boolErr
}

func (p *parser) peekAtIndex(i int) token {
	if i < len(p.toks) {
		return p.toks[i]
	}
	return token{kind: tEnd, pos: -1}
}

// parseHead parses [pname] [dir] [addr|proto] id.
func (p *parser) parseHead() (qual, error) {
	var q qual
	q.valid = true
	var last token
	if t := p.peek(); t.kind == tKey && t.cls == kPname {
		q.pname = t.text
		last = p.next()
	}
	if t := p.peek(); t.kind == tKey && t.cls == kDir {
		last = p.next()
		// src or dst, src and dst
		if c := p.peek(); (c.kind == tAnd || c.kind == tOr) && p.peekAt(1).kind == tKey && p.peekAt(1).cls == kDir {
			p.next()
			last = p.next()
		}
	}
	addr := token{}
	if t := p.peek(); t.kind == tKey && (t.cls == kAddr || t.cls == kProto) {
		addr = p.next()
		last = addr
		q.addr = addr.text
	}
	if err := p.checkQualifiers(q, addr); err != nil {
		return q, err
	}
	if err := p.parseID(q, last); err != nil {
		return q, err
	}
	return q, nil
}

// checkQualifiers refuses protocol/address combinations libpcap refuses.
func (p *parser) checkQualifiers(q qual, addr token) error {
	if q.pname == "" || addr.text == "" {
		return nil
	}
	switch addr.text {
	case "port", "portrange":
		switch q.pname {
		case "ip", "ip6", "ether", "arp", "rarp", "link":
			return p.errAt(addr, "%q cannot qualify %s: use tcp, udp or sctp (or nothing) before it", q.pname, addr.text)
		}
	case "host", "net":
		switch q.pname {
		case "tcp", "udp", "sctp", "icmp", "icmp6", "igmp":
			return p.errAt(addr, "%q cannot qualify %s: write e.g. %q", q.pname, addr.text, q.pname+" and "+addr.text+" ...")
		}
	}
	return nil
}

// what names the value a qualifier expects.
func what(addr string) string {
	switch addr {
	case "host":
		return "a host name or address"
	case "net":
		return "a network (10.0.0.0/8 or 10.0.0.0 mask 255.0.0.0)"
	case "port":
		return "a port number"
	case "portrange":
		return "a port range (6000-6010)"
	case "gateway":
		return "a host name"
	case "proto", "protochain":
		return "a protocol number or name (escape keywords: \\tcp)"
	}
	return "an address"
}

// parseID parses the value of a qualified primitive; after is the last
// qualifier keyword (for messages).
func (p *parser) parseID(q qual, after token) error {
	for p.peek().kind == tNot {
		p.next()
	}
	t := p.peek()
	if t.kind == tLParen {
		return unsureError{"parenthesised id"}
	}
	if !isBareID(t) {
		if t.kind == tKey && t.cls == kPname && (q.addr == "proto" || q.addr == "protochain") {
			return p.errAt(t, "%q is a keyword: escape it as \\%s", t.text, t.text)
		}
		return p.errAt(t, "expected %s after %q", what(q.addr), after.text)
	}
	p.next()
	switch q.addr {
	case "port":
		if t.kind == tNum {
			if v, err := parseNum(t.text); err == nil && v > 65535 {
				return p.errAt(t, "port %s is out of range (0-65535)", t.text)
			}
		}
	case "portrange":
		if t.kind == tNum {
			if v, err := parseNum(t.text); err == nil && v > 65535 {
				return p.errAt(t, "port %s is out of range (0-65535)", t.text)
			}
		} else if t.kind == tID {
			if a, b, ok := strings.Cut(t.text, "-"); ok {
				for _, s := range []string{a, b} {
					if v, err := strconv.ParseUint(s, 10, 64); err == nil && v > 65535 {
						return p.errAt(t, "port %s is out of range (0-65535)", s)
					}
				}
			}
		}
	}
	switch t.kind {
	case tHID:
		if q.addr == "host" || q.addr == "" || q.addr == "net" {
			if err := checkOctets(t.text); err != nil && q.addr == "host" && strings.Count(t.text, ".") == 3 {
				return p.errAt(t, "%s", err)
			}
		}
		switch n := p.peek(); {
		case n.kind == tSlash:
			p.next()
			if q.addr == "host" || q.addr == "gateway" {
				return p.errAt(n, "a /length mask is for networks only: use net instead of host")
			}
			l := p.next()
			if l.kind != tNum {
				return p.errAt(l, "expected a mask length after /")
			}
			v, err := parseNum(l.text)
			if err == nil && v > 32 {
				return p.errAt(l, "mask length %s is more than 32", l.text)
			}
			if err == nil && q.addr == "net" {
				if err := hostBits(t.text, net.CIDRMask(int(v), 32)); err != nil {
					return p.errAt(t, "%s", err)
				}
			}
		case n.kind == tKey && n.cls == kMask:
			p.next()
			m := p.next()
			if m.kind != tHID {
				return p.errAt(m, "expected a netmask such as 255.255.0.0 after \"mask\"")
			}
			if ip := net.ParseIP(m.text).To4(); ip != nil && q.addr == "net" {
				if err := hostBits(t.text, net.IPMask(ip)); err != nil {
					return p.errAt(t, "%s", err)
				}
			}
		}
	case tHID6:
		if n := p.peek(); n.kind == tSlash {
			p.next()
			l := p.next()
			if l.kind != tNum {
				return p.errAt(l, "expected a mask length after /")
			}
			if v, err := parseNum(l.text); err == nil && v > 128 {
				return p.errAt(l, "mask length %s is more than 128", l.text)
			}
		}
	}
	return nil
}

// hostBits refuses a full IPv4 network address with bits set outside the
// mask, as libpcap does ("non-network bits set").
func hostBits(addr string, mask net.IPMask) error {
	ip := net.ParseIP(addr).To4()
	if ip == nil || strings.Count(addr, ".") != 3 {
		return nil
	}
	if !ip.Mask(mask).Equal(ip) {
		ones, bits := mask.Size()
		if bits == 0 {
			return fmt.Errorf("%s has bits set outside its mask", addr)
		}
		return fmt.Errorf("%s has bits set outside its /%d mask: did you mean %s/%d?", addr, ones, ip.Mask(mask), ones)
	}
	return nil
}

func checkOctets(s string) error {
	for _, part := range strings.Split(s, ".") {
		if v, err := strconv.ParseUint(part, 10, 64); err != nil || v > 255 {
			return fmt.Errorf("%s is not an IPv4 address", s)
		}
	}
	return nil
}

// parseNum reads a number the way libpcap does: 0x hex, 0 octal, decimal.
func parseNum(s string) (uint64, error) {
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		return strconv.ParseUint(s[2:], 16, 64)
	case len(s) > 1 && s[0] == '0':
		return strconv.ParseUint(s[1:], 8, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// ---- arithmetic: arth relop arth ----

func (p *parser) parseRelation() error {
	if err := p.parseArith(); err != nil {
		return err
	}
	t := p.peek()
	if t.kind != tRelop {
		if t.kind == tEnd {
			return p.errAt(t, "incomplete comparison: expected >, <, >=, <=, =, == or != and a value")
		}
		return p.errAt(t, "expected a comparison operator (>, <, >=, <=, =, ==, !=)")
	}
	p.next()
	return p.parseArith()
}

func (p *parser) parseArith() error {
	if err := p.parseUnary(); err != nil {
		return err
	}
	for {
		t := p.peek()
		if t.kind != tBinop && t.kind != tMinus && t.kind != tSlash {
			return nil
		}
		p.next()
		if p.peek().kind == tEnd {
			return p.errAt(p.peek(), "expected a value after %q", t.text)
		}
		if err := p.parseUnary(); err != nil {
			return err
		}
	}
}

func (p *parser) parseUnary() error {
	t := p.peek()
	switch {
	case t.kind == tMinus:
		p.next()
		return p.parseUnary()
	case t.kind == tNum:
		p.next()
		return nil
	case t.kind == tKey && t.cls == kLen:
		p.next()
		return nil
	case t.kind == tLParen:
		open := p.next()
		if err := p.parseArith(); err != nil {
			return err
		}
		if c := p.peek(); c.kind != tRParen {
			if c.kind == tEnd {
				return p.errAt(open, "unbalanced parentheses: this ( is never closed")
			}
			return p.errAt(c, "expected ) in arithmetic expression")
		}
		p.next()
		return nil
	case t.kind == tKey && t.cls == kPname:
		p.next()
		if b := p.peek(); b.kind != tLBrack {
			return p.errAt(b, "expected [ after %q in arithmetic expression", t.text)
		}
		p.next()
		if err := p.parseArith(); err != nil {
			return err
		}
		if c := p.peek(); c.kind == tColon {
			p.next()
			n := p.next()
			if n.kind != tNum {
				return p.errAt(n, "expected a size (1, 2 or 4) after :")
			}
			if !isNumber(n.text) {
				// A named constant (tcp-syn, icmpcode): libpcap
				// knows its value.
				return unsureError{"named size"}
			}
			if v, err := parseNum(n.text); err != nil || (v != 1 && v != 2 && v != 4) {
				return p.errAt(n, "the size after : must be 1, 2 or 4")
			}
		}
		if c := p.peek(); c.kind != tRBrack {
			return p.errAt(c, "expected ] to close %s[", t.text)
		}
		p.next()
		return nil
	case t.kind == tEnd:
		return p.errAt(t, "expected a value")
	case t.kind == tID || t.kind == tKey && t.cls == kOther:
		return unsureError{"name in arithmetic"}
	}
	return p.errAt(t, "expected a number, len or proto[offset]")
}
