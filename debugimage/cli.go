package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/capture"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/version"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `usage: netdiag-helper <command> [flags]

commands:
  version    print one hello JSON line
  idle       sleep until --timeout without activity, or SIGTERM (container entrypoint)
  keepalive  stay while heartbeat bytes arrive on stdin: ends on EOF, after --heartbeat
             without a byte, or on SIGTERM (the plugin holds a node pod with it); then
             ends the container's orphaned helper commands (--reap-after)
  active     exit 0 if another helper command (keepalive, capture, check, fix) runs in this
             container, else 1 (the node pod's readiness probe: ready = a plugin uses it)
  capture    capture packets: pcap/pcapng on stdout, JSON lines on stderr
  check      diagnose the node or a pod: JSON lines of findings on stdout
  fix        change the node (bridge up, conntrack max, end stale processes): JSON lines of actions
  dns        send DNS queries to each hop, the way the pod's resolver does: JSON lines of answers

run "netdiag-helper <command> --help" for the flags of a command
`

type streams struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func hello() protocol.Hello {
	return protocol.Hello{Type: protocol.TypeHello, Protocol: protocol.Version, Helper: version.Version}
}

// run is the whole command line; it returns the exit code.
func run(args []string, s streams) int {
	if len(args) == 0 {
		fmt.Fprint(s.err, usage)
		reportError(s.err, usageError{"missing command; one of: version, idle, keepalive, active, capture, check, fix, dns"})
		return exitUsage
	}
	var err error
	switch args[0] {
	case "version":
		err = runVersion(args[1:], s)
	case "idle":
		err = runIdle(args[1:], s)
	case "keepalive":
		err = runKeepalive(args[1:], s)
	case "active":
		return runActive(args[1:], s)
	case "capture":
		err = runCapture(args[1:], s)
	case "check":
		// check speaks its own JSON lines (hello, findings, done) and
		// chooses its exit code.
		return runCheck(args[1:], s)
	case "fix":
		return runFix(args[1:], s)
	case "dns":
		return runDNS(args[1:], s)
	case "-h", "--help", "help":
		fmt.Fprint(s.out, usage)
		return exitOK
	default:
		err = usageError{fmt.Sprintf("unknown command %q; one of: version, idle, keepalive, active, capture, check, fix, dns", args[0])}
	}
	return finish(s, err)
}

func finish(s streams, err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	}
	var r reportedError
	if errors.As(err, &r) {
		return exitError
	}
	reportError(s.err, err)
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitError
}

// reportError writes the {"type":"error"} line the plugin reads.
func reportError(w io.Writer, err error) {
	_ = capture.WriteLine(w, protocol.Error{Type: protocol.TypeError, Message: err.Error()})
}

// newFlagSet makes a flag set whose parse errors become usage errors and
// whose --help goes to stdout.
func newFlagSet(name string, s streams, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(s.out, "usage: netdiag-helper %s\n\nflags:\n", synopsis)
		fs.SetOutput(s.out)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.Usage()
			return err
		}
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q", fs.Name(), strings.Join(fs.Args(), " "))}
	}
	return nil
}

func runVersion(args []string, s streams) error {
	fs := newFlagSet("version", s, "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	return capture.WriteLine(s.out, hello())
}

func runCapture(args []string, s streams) error {
	// hello comes first, whatever happens next.
	if err := capture.WriteLine(s.err, hello()); err != nil {
		return err
	}
	fs := newFlagSet("capture", s, "capture [flags]   (pcap/pcapng on stdout, JSON lines on stderr)")
	req := protocol.NewCaptureFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return usageError{err.Error()}
	}
	cfg := capture.Config{
		Interface: req.Interface, Filter: req.Filter, Snaplen: req.Snaplen,
		Count: req.Count, Duration: req.Duration, MaxBytes: req.MaxBytes,
		Format: req.Format, Netns: req.Netns, Heartbeat: req.Heartbeat,
		Application: "netdiag-helper " + version.Version,
	}
	if req.Takeover {
		// The earlier segment of this capture (its stream broke) must
		// be gone before this one writes.
		takeOver("/proc", req.ID, 3*time.Second)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stats, err := capture.Run(ctx, cfg, capture.Streams{Stdin: s.in, Stdout: s.out, Stderr: s.err, ProgressEvery: req.Progress})
	if stats == nil {
		return err
	}
	if err != nil {
		reportError(s.err, err)
	}
	if werr := capture.WriteLine(s.err, stats); werr != nil && err == nil {
		return werr
	}
	if err != nil {
		return reportedError{err}
	}
	return nil
}

// reportedError was already written as an error line (before the stats
// line, which must stay last); it only sets the exit code.
type reportedError struct{ error }

func runIdle(args []string, s streams) error {
	timeout := time.Hour
	fs := newFlagSet("idle", s, "idle [--timeout D]")
	fs.DurationVar(&timeout, "timeout", timeout, "exit after this long without another helper process running in this container (0: never)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if timeout < 0 {
		return usageError{fmt.Sprintf("--timeout must not be negative, not %s", timeout)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	idle(ctx, "/proc", timeout)
	return nil
}

// defaultKeepaliveHeartbeat is keepalive's --heartbeat default.
const defaultKeepaliveHeartbeat = 30 * time.Second

// runKeepalive is `netdiag-helper keepalive --heartbeat D [--reap-after D]`:
// a hello line on stdout, then it stays until stdin ends, no byte arrived
// for --heartbeat, or SIGTERM. When its plugin is gone (EOF, no heartbeat)
// and no new keepalive starts within --reap-after, it ends the other helper
// commands of the container. Its last stdout line says why it ended
// ({"type":"done","reason":...,"ended":N}).
func runKeepalive(args []string, s streams) error {
	heartbeat := defaultKeepaliveHeartbeat
	reapAfter := 10 * time.Second
	fs := newFlagSet("keepalive", s, "keepalive [--heartbeat D] [--reap-after D]   (heartbeat bytes on stdin)")
	fs.DurationVar(&heartbeat, "heartbeat", heartbeat, "exit when no byte arrives on stdin for this long (must be positive)")
	fs.DurationVar(&reapAfter, "reap-after", reapAfter, "once the plugin is gone (EOF or no heartbeat), end the capture, check and fix commands still running in this container unless another keepalive starts within this long (0: leave them)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if heartbeat <= 0 {
		return usageError{fmt.Sprintf("--heartbeat must be positive, not %s: without it a keepalive whose plugin died would never end", heartbeat)}
	}
	if reapAfter < 0 {
		return usageError{fmt.Sprintf("--reap-after must not be negative, not %s", reapAfter)}
	}
	if err := capture.WriteLine(s.out, hello()); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reason := keepalive(ctx, s.in, heartbeat)
	ended := 0
	if reason != "signal" && reapAfter > 0 {
		ended = reapOrphans("/proc", reapAfter, 5*time.Second)
	}
	// The plugin may be gone: a failed write is no error.
	_ = capture.WriteLine(s.out, keepaliveDone{Type: protocol.TypeDone, Reason: reason, Ended: ended})
	return nil
}

// keepaliveDone is keepalive's last line.
type keepaliveDone struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	// Ended counts the orphaned helper commands it ended.
	Ended int `json:"ended"`
}

// runActive is `netdiag-helper active`: exit 0 when another helper command
// runs in this container, 1 (with a line on stderr) when none does.
func runActive(args []string, s streams) int {
	fs := newFlagSet("active", s, "active   (exit 0: a helper command runs here; 1: none)")
	if err := parse(fs, args); err != nil {
		return finish(s, err)
	}
	if busyHelperRunning("/proc", os.Getpid()) {
		return exitOK
	}
	fmt.Fprintln(s.err, "no helper command runs in this container")
	return exitError
}
