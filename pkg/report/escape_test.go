package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nc -l 8081", "nc -l 8081"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"a\rb\nc\td", `a\rb\nc\td`},
		{"caf\u00e9 \u00fcber", "caf\u00e9 \u00fcber"},
		{"evil\u202etxt", `evil\u202etxt`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"c1\u009bx", `c1\u009bx`},
		{"keep \ufffd", "keep \ufffd"},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// An ESC in anything a process or the helper controls never reaches the
// terminal through the table.
func TestTableEscapesControlCharacters(t *testing.T) {
	res := []NodeResult{{
		Node: "node-1",
		Findings: []protocol.Finding{{
			Check: "stale", Severity: protocol.SeverityFail, Subject: "ns/\x1b[2Jweb",
			Message: "stale process 42 (\x1b[31mnc -l 8081) holds tcp port 8081",
			Remedy:  "end it\x1b]0;title\x07",
		}},
		Actions: []protocol.Action{{Action: "kill", Target: "42", Result: "done", Message: "ended \x1b[31mnc"}},
	}, {Node: "node-2", Err: errors.New("helper said: \x1b[31mboom")}}
	var b bytes.Buffer
	if err := Render(&b, "table", res, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsRune(out, 0x1b) || strings.ContainsRune(out, 0x07) {
		t.Fatalf("raw control characters in the table:\n%q", out)
	}
	for _, want := range []string{`(\x1b[31mnc -l 8081)`, `ns/\x1b[2Jweb`, `end it\x1b]0;title\a`, `ended \x1b[31mnc`, `helper said: \x1b[31mboom`} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
