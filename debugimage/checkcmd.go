package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/checks"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// runCheck is `netdiag-helper check ARGS`: JSON lines on stdout, a hello
// line first, one line per finding, and a done line last. Findings are
// data: a `fail` finding still exits 0. A usage error prints an error line
// and exits 2; an internal error prints an error line and exits 1, without
// a done line (a stream without done was cut short).
func runCheck(args []string, s streams) int {
	enc := helloEncoder(s.out)
	req, err := protocol.ParseCheckRequest(args, s.in, s.err)
	if err != nil {
		return requestError(enc, s.err, "check", err)
	}
	cfg, err := checks.ConfigFrom(req)
	if err != nil {
		return requestError(enc, s.err, "check", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := 0
	err = checks.Run(ctx, cfg, func(f protocol.Finding) {
		f.Type = protocol.TypeFinding
		if enc.Encode(f) == nil {
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

// runFix is `netdiag-helper fix ARGS`: JSON lines on stdout, hello first,
// one {"type":"action"} line per change made, refused or failed, and done
// last. A usage error exits 2; a refused or failed action is a line, not an
// exit code.
func runFix(args []string, s streams) int {
	enc := helloEncoder(s.out)
	req, err := protocol.ParseFixRequest(args, s.in, s.err)
	if err != nil {
		return requestError(enc, s.err, "fix", err)
	}
	cfg, err := checks.FixConfigFrom(req)
	if err != nil {
		return requestError(enc, s.err, "fix", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := 0
	checks.RunFix(ctx, cfg, func(a protocol.Action) {
		a.Type = protocol.TypeAction
		if enc.Encode(a) == nil {
			n++
		}
	})
	if err := enc.Encode(protocol.Done{Type: protocol.TypeDone, Findings: n}); err != nil {
		return exitError
	}
	return exitOK
}

// helloEncoder starts a JSON-lines stream on w with the hello line.
func helloEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(hello())
	return enc
}

// requestError ends a run whose command line was refused: --help exits 0,
// a usage error is an error line on the stream (and plain text on stderr)
// and exit code 2.
func requestError(enc *json.Encoder, stderr io.Writer, command string, err error) int {
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	_ = enc.Encode(protocol.Error{Type: protocol.TypeError, Message: err.Error()})
	fmt.Fprintf(stderr, "netdiag-helper %s: %s\n", command, err)
	return exitUsage
}
