package checks

import (
	"encoding/json"
	"testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The bridge fix, from the helper's judge to the plugin's planner: a down
// bridge's finding (through JSON, as on the wire) plans --bridge-up of
// that bridge, and nothing else. The conntrack and stale halves of the
// contract run the helper's command line in debugimage/contract_test.go.
func TestContractBridgeFix(t *testing.T) {
	down := with(func(s *netSnapshot) { s.mustLink("cbr0").AdminUp = false; s.mustLink("cbr0").OperState = "down" })
	f, err := judgeBridge(down, "")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := kube.ParseHelperReport(lines(t, f))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := nodeops.PlanNodeFixes(true, true)(rep)
	if err != nil || len(steps) != 1 {
		t.Fatalf("planned %+v, %v", steps, err)
	}
	var req protocol.FixRequest
	steps[0].Apply(&req)
	if req.BridgeUp != "cbr0" || req.ConntrackMax != 0 || len(req.Kill) != 0 {
		t.Errorf("fix request %+v, want --bridge-up=cbr0 alone", req)
	}

	up, err := judgeBridge(bridgeSnap(), "")
	if err != nil {
		t.Fatal(err)
	}
	rep, _ = kube.ParseHelperReport(lines(t, up))
	if steps, err := nodeops.PlanNodeFixes(true, true)(rep); err != nil || len(steps) != 0 {
		t.Errorf("a bridge that is up planned %+v, %v", steps, err)
	}
}

// lines is the helper's stdout for findings: hello, the findings, done.
func lines(t *testing.T, fs ...protocol.Finding) []byte {
	t.Helper()
	var b []byte
	add := func(v any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b = append(append(b, j...), '\n')
	}
	add(protocol.Hello{Type: protocol.TypeHello, Protocol: protocol.Version, Helper: "test"})
	for _, f := range fs {
		f.Type = protocol.TypeFinding
		add(f)
	}
	add(protocol.Done{Type: protocol.TypeDone, Findings: len(fs)})
	return b
}
