package checks

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

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/version"
)

// Main runs `netdiag-helper check ARGS`: JSON lines on stdout, a hello line
// first, one line per finding, and a done line last. Findings are data: a
// `fail` finding still exits 0. A usage error prints an error line and exits
// 2; an internal error prints an error line and exits 1, without a done
// line (a stream without done was cut short).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(protocol.Hello{Type: protocol.TypeHello, Protocol: protocol.Version, Helper: version.Version})

	cfg, err := parseFlags(args, stdin, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		msg := err.Error()
		if errors.Is(err, errUsage) {
			msg = msg[len(errUsage.Error())+2:]
		}
		_ = enc.Encode(protocol.Error{Type: protocol.TypeError, Message: msg})
		fmt.Fprintf(stderr, "netdiag-helper check: %s\n", msg)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := 0
	err = Run(ctx, cfg, func(f protocol.Finding) {
		f.Type = protocol.TypeFinding
		if encErr := enc.Encode(f); encErr == nil {
			n++
		}
	})
	if err != nil {
		_ = enc.Encode(protocol.Error{Type: protocol.TypeError, Message: err.Error()})
		return 1
	}
	if err := enc.Encode(protocol.Done{Type: protocol.TypeDone, Findings: n}); err != nil {
		return 1
	}
	return 0
}
