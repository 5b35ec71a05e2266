package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/checks"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/dnsprobe"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// runDNS is `netdiag-helper dns ARGS`: JSON lines on stdout, hello first,
// then the resolvconf line (--resolv-conf), one dnsprobe line per query as
// it completes, the dnsload line (--load), the conntrackcounters line
// (--conntrack-proc), and done last (its findings count the lines between
// hello and done). Findings are data: failed queries still exit 0. A
// usage error prints an error line and exits 2.
func runDNS(args []string, s streams) int {
	return runDNSWith(args, s, dnsprobe.Config{})
}

// runDNSWith runs dns with cfg's injected parts (tests set Proc and
// OwnResolvConf).
func runDNSWith(args []string, s streams, cfg dnsprobe.Config) int {
	enc := helloEncoder(s.out)
	req, err := protocol.ParseDNSRequest(args, s.err)
	if err != nil {
		return requestError(enc, s.err, "dns", err)
	}
	cfg.Request = req
	cfg.ConntrackStat = checks.ConntrackStatTotals
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := 0
	err = dnsprobe.Run(ctx, cfg, func(line any) {
		if enc.Encode(line) == nil {
			n++
		}
	})
	if err != nil {
		_ = enc.Encode(protocol.Error{Type: protocol.TypeError, Message: err.Error()})
		return exitError
	}
	if err := enc.Encode(protocol.Done{Type: protocol.TypeDone, Findings: n}); err != nil {
		return exitError
	}
	return exitOK
}
