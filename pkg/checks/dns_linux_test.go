package checks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// A dns run without --dns-ip is skipped and opens nothing (the --netns
// here cannot be opened); with one, a --netns that cannot be opened is an
// error, and the queries go through the exchanger.
func TestRunDNS(t *testing.T) {
	run := func(cfg Config) ([]protocol.Finding, error) {
		var fs []protocol.Finding
		err := Run(context.Background(), cfg, func(f protocol.Finding) { fs = append(fs, f) })
		return fs, err
	}
	cfg := Config{Checks: []string{CheckDNS}, NetNS: "/nonexistent/netns"}
	fs, err := run(cfg)
	if err != nil || len(fs) != 1 || !strings.Contains(fs[0].Message, "dns check skipped: no kube-dns Service IP given (--dns-ip)") {
		t.Errorf("without --dns-ip: %+v, %v", fs, err)
	}
	cfg.DNS = DNSConfig{ServiceIP: "10.96.0.10", SkipReason: "no kube-dns Service in kube-system"}
	if fs, err := run(cfg); err != nil || len(fs) != 1 || fs[0].Message != "dns check skipped: no kube-dns Service in kube-system" {
		t.Errorf("skipped by the plugin: %+v, %v", fs, err)
	}
	cfg.DNS.SkipReason = ""
	if _, err := run(cfg); err == nil || !strings.Contains(err.Error(), "--netns /nonexistent/netns") {
		t.Errorf("the dns queries need the namespace: %v", err)
	}
	cfg.dnsExchange = func(ctx context.Context, q protocol.DNSCheckTarget, name string, timeout time.Duration) protocol.DNSCheckTarget {
		q.Rcode, q.Answers = "NOERROR", 1
		return q
	}
	if fs, err := run(cfg); err != nil || len(fs) != 1 || fs[0].Severity != protocol.SeverityOK {
		t.Errorf("with a (fake) exchanger: %+v, %v", fs, err)
	}
}
