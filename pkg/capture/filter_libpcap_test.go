//go:build cgo && libpcap

package capture

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func TestLibpcapRejectsIncompleteExpression(t *testing.T) {
	_, err := CompileFilter(layers.LinkTypeEthernet, DefaultSnaplen, "tcp port")
	want := `invalid filter "tcp port": can't parse filter expression: syntax error`
	if err == nil || err.Error() != want {
		t.Fatalf("CompileFilter(tcp port) = %v, want %q", err, want)
	}
}

func TestLibpcapPortrangeIsARealProgram(t *testing.T) {
	prog, err := CompileFilter(layers.LinkTypeEthernet, DefaultSnaplen, "portrange 1000-2000")
	if err != nil {
		t.Fatal(err)
	}
	// A pure-Go compiler produced "ret #262144; ret #0" (match all) here.
	if len(prog) <= 20 {
		t.Fatalf("portrange 1000-2000 compiled to %d instructions, want more than 20: %v", len(prog), prog)
	}
}

func TestLibpcapAcceptsPort(t *testing.T) {
	prog, err := CompileFilter(layers.LinkTypeEthernet, DefaultSnaplen, "port 80")
	if err != nil {
		t.Fatal(err)
	}
	// libpcap's "port" covers SCTP (IP protocol 132) as well as TCP and UDP.
	sctp := false
	for _, in := range prog {
		if in.Op == 0x15 && in.K == 132 {
			sctp = true
		}
	}
	if !sctp {
		t.Errorf("port 80 does not test for SCTP: %v", prog)
	}
}

// TestFilterCorpus checks the shared corpus: libpcap accepts every "ok" line
// and rejects every "bad" line.
func TestFilterCorpus(t *testing.T) {
	const path = "../filter/testdata/filters.txt"
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		t.Skipf("%s does not exist (yet)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line, checked := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimSpace(text), "#") {
			continue
		}
		kind, expr, ok := strings.Cut(text, "\t")
		if !ok || (kind != "ok" && kind != "bad") {
			t.Errorf("%s:%d: want \"ok<TAB>expr\" or \"bad<TAB>expr\", got %q", path, line, text)
			continue
		}
		checked++
		_, err := CompileFilter(layers.LinkTypeEthernet, DefaultSnaplen, expr)
		switch {
		case kind == "ok" && err != nil:
			t.Errorf("%s:%d: libpcap rejects %q, the corpus says ok: %v", path, line, expr, err)
		case kind == "bad" && err == nil:
			t.Errorf("%s:%d: libpcap accepts %q, the corpus says bad", path, line, expr)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("checked %d filters", checked)
}
