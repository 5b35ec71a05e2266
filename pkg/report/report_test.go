package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func sample() []NodeResult {
	return []NodeResult{
		{Node: "node-1", Findings: []protocol.Finding{
			{Type: "finding", Check: "bridge", Severity: protocol.SeverityFail, Subject: "cbr0", Message: "bridge cbr0 is down", Remedy: "ip link set cbr0 up", Data: map[string]any{"adminUp": false, "mtu": float64(1400)}},
			{Type: "finding", Check: "mtu", Severity: protocol.SeverityOK, Subject: "shop/web", Message: "pod MTU 1400 fits the path MTU 1400"},
			{Type: "finding", Check: "conntrack", Severity: protocol.SeverityWarn, Subject: "node", Message: "conntrack table 91% full (238901 of 262144)", Remedy: "raise net.netfilter.nf_conntrack_max to 786432", Data: map[string]any{"count": float64(238901)}},
			{Type: "finding", Check: "arp", Severity: protocol.SeverityInfo, Subject: "shop/db", Message: "no neighbour entry yet", Remedy: "not shown for info"},
		}, Actions: []protocol.Action{{Type: "action", Action: "bridge-up", Target: "cbr0", Result: "done", Message: "bridge cbr0 brought up"}}},
		{Node: "node-2", Err: errors.New("the helper image is not on node node-2")},
	}
}

func TestTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, "table", sample(), false); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), b.String()); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Errorf("colour without a terminal")
	}
}

func TestTableColour(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, "table", sample(), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[31;1mfail\x1b[") {
		t.Errorf("no red fail:\n%q", b.String())
	}
	t.Setenv("NO_COLOR", "")
	if UseColor(true) {
		t.Errorf("NO_COLOR set: no colour even on a terminal")
	}
	os.Unsetenv("NO_COLOR")
	if !UseColor(true) || UseColor(false) {
		t.Errorf("colour only on a terminal")
	}
}

func TestJSONAndYAMLRoundTrip(t *testing.T) {
	want := Build(sample())
	for _, format := range []string{"json", "yaml"} {
		var b bytes.Buffer
		if err := Render(&b, format, sample(), false); err != nil {
			t.Fatal(err)
		}
		var got Report
		var err error
		if format == "json" {
			err = json.Unmarshal(b.Bytes(), &got)
		} else {
			err = yaml.Unmarshal(b.Bytes(), &got)
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, b.String())
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s round trip (-want +got):\n%s", format, d)
		}
		for _, field := range []string{"node", "check", "severity", "subject", "message", "remedy", "data", "type"} {
			if !strings.Contains(b.String(), field) {
				t.Errorf("%s lacks %q", format, field)
			}
		}
	}
}

func TestOutcome(t *testing.T) {
	r := sample()
	if err := Outcome(r); ExitCodeOf(err) != 1 || err.Error() != "node-2: the helper image is not on node node-2" {
		t.Errorf("with an error: %v", err)
	}
	r = r[:1]
	if err := Outcome(r); ExitCodeOf(err) != 3 || err.Error() != "1 check failed on 1 node" {
		t.Errorf("with a fail: %v", err)
	}
	r[0].Findings = r[0].Findings[1:]
	if err := Outcome(r); err != nil {
		t.Errorf("warn only: %v", err)
	}
	if ValidFormat("wide") == nil {
		t.Errorf("-o wide accepted")
	}
}
