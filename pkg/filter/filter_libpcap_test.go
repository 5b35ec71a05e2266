//go:build cgo && libpcap

// Linked with libpcap (hack/test-helper.sh builds it statically with musl):
// a test file, so the plugin, which imports this package, never links it.

package filter

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
)

// libpcapSnaplen is the helper's default snap length (capture.DefaultSnaplen).
const libpcapSnaplen = 262144

// FuzzAgainstLibpcap holds the pre-check to its promise: whatever it
// refuses, libpcap's compiler (as the helper calls it: Ethernet, the
// default snap length) refuses too. Seeds: the shared corpus, the tables
// of filter_test.go and testdata/fuzz/FuzzAgainstLibpcap (escapes found by
// earlier runs).
//
//	hack/test-helper.sh --pkg ./pkg/filter -run '^$' -fuzz '^FuzzAgainstLibpcap$' -fuzztime 30m -timeout 0
func FuzzAgainstLibpcap(f *testing.F) {
	for _, c := range readCorpus(f) {
		f.Add(c.expr)
	}
	for _, tt := range commonMistakes {
		f.Add(tt.expr)
	}
	for _, expr := range onlyLibpcapCanJudge {
		f.Add(expr)
	}
	// Go's mutator changes bytes; it seldom spells a keyword. Every word
	// the checker knows, in each place it judges one.
	words := append(append(append([]string{"and", "or", "not"}, pnames...), otherKeywords...), numericNames...)
	for w, c := range keywords {
		if c != kPname && c != kOther {
			words = append(words, w)
		}
	}
	sort.Strings(words)
	for _, w := range words {
		for _, form := range []string{"%s", "host %s", "port %s", "%s 1", "%s[0] = 1", "tcp and %s", "%s host ::ffff:10.0.0.1", "%s src net 10.0.0.0/8", "(%s)"} {
			f.Add(fmt.Sprintf(form, w))
		}
	}
	vocab := fuzzVocabulary(words)
	f.Fuzz(func(t *testing.T, input string) {
		// The input as a filter, and read as a sentence of filter words
		// (one byte, one word), spaced and not: byte mutations then
		// explore the grammar and where the scanner splits words.
		for _, expr := range []string{input, sentence(vocab, input, " "), sentence(vocab, input, "")} {
			err := Check(expr)
			if err == nil {
				continue
			}
			if _, cerr := pcap.CompileBPFFilter(layers.LinkTypeEthernet, libpcapSnaplen, expr); cerr == nil {
				t.Fatalf("libpcap accepts %q, the pre-check refuses it: %v", expr, err)
			}
		}
	})
}

// fuzzVocabulary: the words of filters, the operators, and values around
// every limit the pre-check judges.
func fuzzVocabulary(words []string) []string {
	v := append([]string{
		"(", ")", "[", "]", ":", "/", "-", "+", "*", "%", "&", "|", "^", "<<", ">>",
		">", "<", ">=", "<=", "=", "==", "!=", "!", "&&", "||",
		"0", "1", "2", "3", "4", "8", "13", "32", "33", "80", "128", "129", "4095", "4096", "65535", "65536",
		"0x10", "0x1000", "010", "08", "4294967296", "1-2", "1-70000", "80-90",
		"10", "10.1", "1.2.3", "10.0.0.0", "10.0.0.1", "1.2.3.256", "255.0.0.0", "255.255.255.0",
		"::", "::1", "fe80::1", "2001:db8::", "::ffff:10.0.0.1", "::10.0.0.1", "64:ff9b::10.0.0.1",
		"aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", "001122334455",
		"localhost", "\\tcp", "\\ip", "http",
	}, words...)
	return v
}

// sentence reads each of the first 40 bytes of in as a word of vocab.
func sentence(vocab []string, in, sep string) string {
	in = in[:min(len(in), 40)]
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(vocab[int(in[i])%len(vocab)])
	}
	return b.String()
}
