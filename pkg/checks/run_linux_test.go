package checks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Only the network checks (and the conntrack table dump, which runs in the
// node's namespace) open --netns: a conntrack or stale run with a --netns
// that cannot be opened still runs.
func TestRunOpensTheNamespaceOnlyForNetworkChecks(t *testing.T) {
	cfg := Config{
		Proc: "testdata/proc-conntrack", Sys: "testdata/none", Kmsg: "testdata/kmsg-old.txt",
		NetNS: "/nonexistent/netns",
		Now:   func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
		sleep: func(time.Duration) {},
	}
	run := func(cfg Config) (int, error) {
		n := 0
		err := Run(context.Background(), cfg, func(protocol.Finding) { n++ })
		return n, err
	}
	c := cfg
	c.Checks = []string{CheckConntrack}
	if n, err := run(c); err != nil || n != 1 {
		t.Errorf("conntrack without a table dump: %d findings, %v", n, err)
	}
	c.Top = 3
	c.PodCIDRs = nil
	c.dumpConntrack = func() ([]flowAddrs, error) { return nil, nil }
	if n, err := run(c); err != nil || n != 1 {
		t.Errorf("conntrack with a (fake) dump: %d findings, %v", n, err)
	}
	c.dumpConntrack = nil
	if _, err := run(c); err == nil || !strings.Contains(err.Error(), "--netns /nonexistent/netns") {
		t.Errorf("the conntrack dump needs the namespace: %v", err)
	}
	for _, name := range networkChecks {
		c := cfg
		c.Checks = []string{name}
		if n, err := run(c); err == nil || n != 0 || !strings.Contains(err.Error(), "--netns /nonexistent/netns") {
			t.Errorf("%s: %d findings, %v", name, n, err)
		}
	}
}
