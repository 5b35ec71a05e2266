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
	enc := helloEncoder(stdout)
	cfg, err := parseFlags(args, stdin, stderr)
	if err != nil {
		return flagError(enc, stderr, "check", err)
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

// helloEncoder starts a JSON-lines stream on w with the hello line.
func helloEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(protocol.Hello{Type: protocol.TypeHello, Protocol: protocol.Version, Helper: version.Version})
	return enc
}

// flagError ends a run whose command line did not parse: --help exits 0, a
// usage error is an error line on the stream (and plain text on stderr) and
// exit code 2.
func flagError(enc *json.Encoder, stderr io.Writer, command string, err error) int {
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	msg := err.Error()
	_ = enc.Encode(protocol.Error{Type: protocol.TypeError, Message: msg})
	fmt.Fprintf(stderr, "netdiag-helper %s: %s\n", command, msg)
	return 2
}
