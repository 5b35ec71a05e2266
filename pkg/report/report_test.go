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
			{Type: "finding", Check: "bridge", Severity: protocol.SeverityFail, Subject: "cbr0", Message: "bridge cbr0 is down", Remedy: "ip link set cbr0 up", Data: protocol.EncodeData(map[string]any{"adminUp": false, "mtu": float64(1400)})},
			{Type: "finding", Check: "mtu", Severity: protocol.SeverityOK, Subject: "shop/web", Message: "pod MTU 1400 fits the path MTU 1400"},
			{Type: "finding", Check: "conntrack", Severity: protocol.SeverityWarn, Subject: "node", Message: "conntrack table 91% full (238901 of 262144)", Remedy: "raise net.netfilter.nf_conntrack_max to 786432", Data: protocol.EncodeData(map[string]any{"count": float64(238901)})},
			{Type: "finding", Check: "arp", Severity: protocol.SeverityInfo, Subject: "shop/db", Message: "no neighbour entry yet", Remedy: "not shown for info"},
		}, Actions: []protocol.Action{{Type: "action", Action: "bridge-up", Target: "cbr0", Result: "done", Message: "bridge cbr0 brought up"}}},
		{Node: "node-2", Err: errors.New("the helper image is not on node node-2")},
	}
}

// checkGolden compares got with testdata/name; -update rewrites it.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got), run with -update if intended:\n%s", name, d)
	}
}

func TestTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, "table", sample(), Options{}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "table.golden", b.String())
	if strings.Contains(b.String(), "\x1b[") {
		t.Errorf("colour without a terminal")
	}
}

func TestTableColour(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, "table", sample(), Options{Color: true}); err != nil {
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
		if err := Render(&b, format, sample(), Options{TopIPs: true}); err != nil {
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
		// Data is raw JSON: compare what it says, not its spacing.
		sameJSON := cmp.Transformer("json", func(r json.RawMessage) any {
			var v any
			if err := json.Unmarshal(r, &v); err != nil {
				return string(r)
			}
			return v
		})
		if d := cmp.Diff(want, got, sameJSON); d != "" {
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
	if err := Outcome(r); exitCode(err) != 1 || err.Error() != "node-2: the helper image is not on node node-2" {
		t.Errorf("with an error: %v", err)
	}
	r = r[:1]
	if err := Outcome(r); exitCode(err) != 3 || err.Error() != "1 check failed on 1 node" {
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

// conntrackTop is `kubectl netdiag conntrack node/netdiag-node --top 3` as
// the plugin gets it: the helper's JSON line, decoded.
func conntrackTop(t *testing.T) []NodeResult {
	t.Helper()
	line := `{"type":"finding","check":"conntrack","severity":"warn","subject":"node",` +
		`"message":"conntrack table 83% full (217612 of 262144)",` +
		`"remedy":"raise net.netfilter.nf_conntrack_max to 771363 (MemTotal/32) or spread the workload",` +
		`"data":{"count":217612,"max":262144,"percent":83,"recommendedMax":771363,"topIPsScope":"pods","topIPs":[` +
		`{"ip":"10.244.0.12","entries":120415,"pod":"shop/load-generator-7d9f8"},` +
		`{"ip":"10.244.0.9","entries":96001,"pod":"netdiag-demo/client"},` +
		`{"ip":"10.244.0.200","entries":1187}]}}`
	l, err := protocol.ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	var f protocol.Finding
	if err := l.Decode(&f); err != nil {
		t.Fatal(err)
	}
	return []NodeResult{{Node: "netdiag-node", Findings: []protocol.Finding{f}}}
}

// The conntrack top IPs asked for with --top are in the table, under the
// conntrack finding.
func TestTableConntrackTopGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, "table", conntrackTop(t), Options{TopIPs: true}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "conntrack-top.golden", b.String())

	// Not asked for: only the usage line.
	b.Reset()
	if err := Render(&b, "table", conntrackTop(t), Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "ENTRIES") || strings.Contains(b.String(), "10.244.0.12") {
		t.Errorf("top IPs without TopIPs:\n%s", b.String())
	}
}

func TestTableConntrackTopEmptyOrFailed(t *testing.T) {
	for _, tt := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"topIPs": []any{}, "topIPsScope": "pods"}, "\n           no pod IP has conntrack entries\n"},
		{map[string]any{"topIPs": []any{}, "topIPsScope": "all"}, "\n           no IP has conntrack entries\n"},
		{map[string]any{"topIPsError": "dumping the conntrack table: operation not permitted"}, "\n           top IPs: dumping the conntrack table: operation not permitted\n"},
		{map[string]any{"count": 1.0}, "(1 of 262144)\n\nn: 1 check, all ok\n"},
	} {
		var b bytes.Buffer
		res := []NodeResult{{Node: "n", Findings: []protocol.Finding{{Check: "conntrack", Severity: protocol.SeverityOK, Subject: "node", Message: "conntrack table 0% full (1 of 262144)", Data: protocol.EncodeData(tt.data)}}}}
		if err := Render(&b, "table", res, Options{TopIPs: true}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("data %v: want %q in\n%s", tt.data, tt.want, b.String())
		}
	}
}

func TestSummary(t *testing.T) {
	f := func(check string, sev protocol.Severity) protocol.Finding {
		return protocol.Finding{Check: check, Severity: sev, Subject: "x", Message: "m"}
	}
	ok := protocol.SeverityOK
	healthy := []protocol.Finding{f("bridge", ok), f("veth", ok), f("veth", ok), f("arp", ok), f("arp", ok), f("mtu", ok), f("mtu", ok), f("conntrack", ok), f("stale", ok), f("stale", ok)}
	for _, tt := range []struct {
		nr   NodeResult
		want string
	}{
		{NodeResult{Node: "netdiag-node", Findings: healthy}, "netdiag-node: 6 checks, all ok"},
		{NodeResult{Node: "n", Findings: []protocol.Finding{f("bridge", ok), f("conntrack", protocol.SeverityFail), f("mtu", protocol.SeverityWarn), f("mtu", ok)}}, "n: 1 fail (conntrack), 1 warn (mtu)"},
		{NodeResult{Node: "n", Findings: []protocol.Finding{f("arp", protocol.SeverityFail), f("arp", protocol.SeverityFail), f("stale", protocol.SeverityFail), f("mtu", protocol.SeverityInfo)}}, "n: 3 fail (arp, stale), 1 info (mtu)"},
		{NodeResult{Node: "n", Findings: []protocol.Finding{f("bridge", protocol.SeverityInfo), f("veth", ok), f("conntrack", protocol.SeverityInfo)}}, "n: 3 checks, all ok; 2 info (bridge, conntrack)"},
		{NodeResult{Node: "n", Findings: []protocol.Finding{f("conntrack", ok)}}, "n: 1 check, all ok"},
		{NodeResult{Node: "n", Err: errors.New("boom")}, "n: error, nothing checked"},
		{NodeResult{Node: "n", Findings: []protocol.Finding{f("bridge", protocol.SeverityFail)}, Err: errors.New("cut short")}, "n: 1 fail (bridge), then an error"},
		{NodeResult{Node: "n"}, "n: no findings"},
	} {
		if got := Summary(tt.nr, false); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
	if got := Summary(NodeResult{Node: "n", Findings: []protocol.Finding{f("bridge", protocol.SeverityFail)}}, true); !strings.HasPrefix(got, "n: \x1b[31;1m1 fail\x1b[") || !strings.HasSuffix(got, " (bridge)") {
		t.Errorf("colour: %q", got)
	}
}

func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
