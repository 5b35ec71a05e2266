package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/filter"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/remotecapture"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

const (
	maxSnaplen       = 262144
	defaultHeartbeat = 15 * time.Second
	// defaultReconnect is how long a capture whose stream broke tries to
	// resume.
	defaultReconnect = time.Minute
	minHeartbeat     = 5 * time.Second
	// defaultMaxPods: a capture of more pods asks first.
	defaultMaxPods = 20
)

var captureExample = `  # Capture HTTPS traffic of pod web-0 into web.pcap until Ctrl-C
  kubectl netdiag capture pod/web-0 -f 'tcp port 443' -w web.pcap

  # 30 seconds of DNS from a pod in namespace shop, live in Wireshark
  kubectl netdiag capture -n shop api-7d9f -f 'port 53' --duration 30s --wireshark

  # The same into any pcap reader
  kubectl netdiag capture -n shop api-7d9f -f 'port 53' -w - | tcpdump -nr -

  # The first 1000 packets, headers only, as pcapng
  kubectl netdiag capture pod/web-0 -s 128 --count 1000 --format pcapng -w web.pcapng

  # Every Running pod of deployment web into one pcapng, an interface per pod
  kubectl netdiag capture deploy/web -f 'tcp port 8080' --duration 30s -w web.pcapng

  # The pods labelled app=web, live in Wireshark (each pod is an interface)
  kubectl netdiag capture -l app=web --wireshark

  # One pod's HTTP as the node's bridge sees it
  kubectl netdiag capture node/gke-pool-1-abcd --interface cbr0 -f 'host 10.4.1.5 and port 80' -w node.pcap

  # A pod in a namespace that enforces Pod Security "restricted", from its node
  kubectl netdiag capture pod/web-0 -n shop --on-node --node-namespace kube-system -w web.pcap

  # DNS for days, in a ring of the last ten 100 MB files (dns.pcap0 … dns.pcap9)
  kubectl netdiag capture pod/web-0 -f 'port 53' -C 100 -W 10 -w dns.pcap

  # A new file every hour, named by its start time
  kubectl netdiag capture pod/web-0 -G 1h -w 'web-%Y%m%d-%H%M%S.pcap'`

// CaptureOptions drives `kubectl netdiag capture`.
type CaptureOptions struct {
	clusterOptions
	genericiooptions.IOStreams

	Container string
	Filter    string
	Interface string
	Snaplen   int
	Count     int64
	Duration  time.Duration
	MaxBytes  int64
	Output    string
	Wireshark bool
	Format    string
	imageOptions
	Timeout   time.Duration
	Heartbeat time.Duration
	// ReconnectTimeout bounds the resume of a capture whose exec stream
	// broke; 0 ends the capture at the break.
	ReconnectTimeout time.Duration
	// OnNode captures the pod's traffic on its host-side veth from a
	// node-debug pod in NodeNamespace ("": the pod's namespace).
	OnNode        bool
	NodeNamespace string
	// Rotate splits -w FILE into a series of files (-C, -G, -W:
	// rotate.go); Now is its clock (tests set it).
	Rotate rotation
	Now    func() time.Time

	// Set by Complete (tests may preset IsTerminal).
	Target     target.Target
	IsTerminal func(stream any) bool

	// Several pods into one pcapng (capture_many in capture.go): Selector
	// is -l; Targets are every target (Target is the first).
	Selector       string
	MaxConcurrency int
	MaxPods        int
	Yes            bool
	Strict         bool
	Targets        []target.Target
	formatSet      bool

	// stoppedBy names the signal that stopped the capture; file is the
	// -w FILE output while a capture runs (for a second Ctrl-C).
	stoppedBy atomic.Value
	file      atomic.Pointer[outputFile]
	// progress is the live progress line on a terminal's stderr.
	progress atomic.Pointer[progressLine]
}

// NewCaptureOptions returns the defaults.
func NewCaptureOptions(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *CaptureOptions {
	return &CaptureOptions{
		clusterOptions:   clusterOptions{configFlags: configFlags},
		IOStreams:        streams,
		Interface:        "eth0",
		Snaplen:          maxSnaplen,
		Format:           "pcap",
		imageOptions:     newImageOptions(),
		Timeout:          time.Minute,
		Heartbeat:        defaultHeartbeat,
		ReconnectTimeout: defaultReconnect,
		MaxConcurrency:   remotecapture.DefaultMaxConcurrency,
		MaxPods:          defaultMaxPods,
	}
}

// NewCmdCapture builds `kubectl netdiag capture`.
func NewCmdCapture(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewCaptureOptions(configFlags, streams)
	cmd := &cobra.Command{
		Use:   "capture [pod/]NAME... | deploy/NAME | sts/NAME | ds/NAME | -l SELECTOR | node/NAME [-c CONTAINER] [--interface IF] [-f FILTER] [-w FILE|-|--wireshark]",
		Short: "Capture packets in a pod's network namespace, or on a node's interface",
		Long: `Capture packets in a pod's network namespace, or on a node's interface.

An ephemeral container running the netdiag helper (capabilities NET_RAW and
NET_ADMIN only, not privileged) is added to the pod, or a running one from an
earlier capture is reused. The pcap streams back over exec into the file
given with -w, or to stdout with -w - (or when stdout is a pipe), or live
into Wireshark with --wireshark. Ctrl-C stops the capture and leaves a
complete file.

-w FILE is written as a new file (mode 0600) beside FILE, renamed over it at
the end: a capture that fails before its first byte leaves an existing FILE
as it was, one that breaks later keeps what it captured. A FILE that is a
symbolic link is replaced, never written through (a link to a FIFO or a
device is written to). The summary says why the capture stopped; one cut
short (the connection to the pod broke or stalled) exits with code 1. A
stream that breaks (an API server restarted, a cut connection) is resumed
into the same output for up to --reconnect-timeout; the gap is reported.

node/NAME captures on an interface of the node (--interface: cbr0, eth0, a
pod's veth) through a short-lived node-debug pod (privileged, host network,
deleted at the end) in the current namespace, or in --node-namespace.

--on-node captures a pod's traffic on its host-side veth, found by the veth
check, through such a node-debug pod in --node-namespace (default: the pod's
namespace; it must admit privileged pods): for pods the netdiag container
cannot be added to (Pod Security baseline or restricted, an admission
policy, ephemeral containers disabled). Directions are reversed there: what
the pod sends comes in on the veth.

-C SIZE, -G DURATION and -W N split -w FILE into a series of files as
tcpdump does (FILE0 … FILE<N-1> with -W N; FILE, FILE1, … without; a % in
FILE takes the file's start time), each one a complete capture file.

On a terminal, stderr shows a live progress line: packets, bytes, kernel
drops, rate and elapsed time.

Several pods (pod/a pod/b, deploy/NAME, sts/NAME, ds/NAME: their Running
pods, -l SELECTOR: the namespace's pods it selects) are captured at once into
one pcapng, live, with one interface per pod named NAMESPACE/POD and described
as "eth0 of NAMESPACE/POD on node NODE". Packets are merged in timestamp order
within a 300ms window. The limits (--count, --duration, --max-bytes) apply to
each pod. A pod that cannot be captured is reported and the others go on;
the capture then exits with code 1 (--strict refuses to start instead). More
than --max-pods pods need a confirmation, or --yes.`,
		Example: captureExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.formatSet = cmd.Flags().Changed("format")
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// AddFlags adds the capture flags.
func (o *CaptureOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Container, "container", "c", o.Container, "container whose network to capture (default: the pod's kubectl.kubernetes.io/default-container, else its first container)")
	f.StringVarP(&o.Filter, "filter", "f", o.Filter, "capture filter in tcpdump (pcap-filter) syntax, e.g. 'tcp port 443'")
	f.StringVar(&o.Interface, "interface", o.Interface, "interface to capture on: in the pod's network namespace, or on the node for node/NAME")
	f.IntVarP(&o.Snaplen, "snaplen", "s", o.Snaplen, "bytes to keep of each packet (1..262144)")
	f.Int64Var(&o.Count, "count", o.Count, "stop after this many packets (0: no limit)")
	f.DurationVar(&o.Duration, "duration", o.Duration, "stop after this long, e.g. 30s (0: until Ctrl-C)")
	f.Int64Var(&o.MaxBytes, "max-bytes", o.MaxBytes, "stop after writing this many bytes (0: no limit)")
	f.StringVarP(&o.Output, "write", "w", o.Output, "file to write the capture to (a new file, mode 0600, renamed over FILE at the end), or - for stdout (default: stdout when it is not a terminal)")
	f.BoolVar(&o.Wireshark, "wireshark", o.Wireshark, "stream the capture live into Wireshark (runs wireshark -k -i - on this machine)")
	f.BoolVar(&o.OnNode, "on-node", o.OnNode, "capture the pod's traffic on its host-side veth, from a node-debug pod on its node: for pods where the netdiag container cannot be added (Pod Security baseline/restricted, an admission policy, ephemeral containers disabled)")
	f.StringVar(&o.NodeNamespace, "node-namespace", o.NodeNamespace, "namespace of the privileged node-debug pod of --on-node and node/NAME (default: the pod's namespace, for node/NAME the current one); it must admit privileged pods")
	f.VarP(&sizeValue{n: &o.Rotate.Size}, "rotate-size", "C", "start a new file once the current one is larger than SIZE (as tcpdump -C: a plain number is millions of bytes; or 500kB, 10MB, 1GB, 64MiB); needs -w FILE")
	f.VarP(&everyValue{d: &o.Rotate.Every}, "rotate-every", "G", "start a new file every DURATION (as tcpdump -G: a plain number is seconds; or 10m, 1h); a % in -w FILE takes the time (web-%Y%m%d-%H%M%S.pcap)")
	f.IntVarP(&o.Rotate.Files, "rotate-files", "W", o.Rotate.Files, "with -C or -G, keep only the last N files: FILE0 … FILE<N-1>, reused in a ring, as tcpdump -W (0: keep all)")
	f.StringVar(&o.Format, "format", o.Format, "file format: pcap or pcapng")
	o.imageOptions.addFlags(f, "helper image to inject")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the helper container to start")
	f.DurationVar(&o.ReconnectTimeout, "reconnect-timeout", o.ReconnectTimeout, "when the stream from the cluster breaks (an API server restarted), reconnect and resume into the same output for up to this long (0: stop at the break)")
	f.StringVarP(&o.Selector, "selector", "l", o.Selector, "capture the pods of the namespace this label selector selects (app=web, 'tier in (web,api)') into one pcapng")
	f.IntVar(&o.MaxConcurrency, "max-concurrency", o.MaxConcurrency, "with several pods: how many are set up at once (netdiag container added and started); every pod's capture then runs to the end")
	f.IntVar(&o.MaxPods, "max-pods", o.MaxPods, "with more pods than this, ask before capturing them (or pass --yes)")
	f.BoolVar(&o.Yes, "yes", o.Yes, "capture more than --max-pods pods without asking")
	f.BoolVar(&o.Strict, "strict", o.Strict, "with several pods: start nothing unless every pod can be captured (default: capture those that can, report the others, exit 1)")
	f.DurationVar(&o.Heartbeat, "heartbeat", o.Heartbeat, "the helper stops when it hears nothing from the plugin for this long")
	_ = f.MarkHidden("heartbeat")
}

// Complete parses the target and finds the namespace and the clients.
func (o *CaptureOptions) Complete(args []string) error {
	targets, err := target.ParseCaptureArgs(args, o.Selector)
	if err != nil {
		return err
	}
	t := targets[0]
	o.Targets = targets
	if t.Kind == target.KindNode && o.Container != "" {
		return fmt.Errorf("-c/--container names a container of a pod; a node capture takes --interface, e.g. --interface cbr0")
	}
	o.Target = t
	if o.IsTerminal == nil {
		o.IsTerminal = isTerminal
	}
	_, err = o.completeCluster()
	return err
}

// Validate checks the flags without talking to the cluster.
func (o *CaptureOptions) Validate() error {
	if o.Snaplen < 1 || o.Snaplen > maxSnaplen {
		return fmt.Errorf("--snaplen must be between 1 and %d, got %d", maxSnaplen, o.Snaplen)
	}
	if o.Count < 0 {
		return fmt.Errorf("--count must not be negative, got %d", o.Count)
	}
	if o.Duration < 0 {
		return fmt.Errorf("--duration must not be negative, got %s", o.Duration)
	}
	if o.MaxBytes < 0 {
		return fmt.Errorf("--max-bytes must not be negative, got %d", o.MaxBytes)
	}
	if o.Format != "pcap" && o.Format != "pcapng" {
		return fmt.Errorf("--format must be pcap or pcapng, got %q", o.Format)
	}
	if err := validateHelper(&o.imageOptions, o.Timeout); err != nil {
		return err
	}
	if len(o.PullSecrets) > 0 && o.Target.Kind != target.KindNode {
		return fmt.Errorf("--image-pull-secret applies to node pods only: an ephemeral container pulls with its pod's own imagePullSecrets; add the secret to the pod's spec.imagePullSecrets (or its service account), or mirror the image to a registry the pod can pull from and pass --image")
	}
	if o.ReconnectTimeout < 0 {
		return fmt.Errorf("--reconnect-timeout must not be negative (0 turns reconnecting off), got %s", o.ReconnectTimeout)
	}
	if o.Heartbeat < minHeartbeat {
		return fmt.Errorf("--heartbeat must be at least %s, got %s", minHeartbeat, o.Heartbeat)
	}
	if err := validInterface(o.Interface); err != nil {
		return err
	}
	if err := filter.Check(o.Filter); err != nil {
		return err
	}
	if err := o.validateOnNode(); err != nil {
		return err
	}
	if err := o.validateMany(); err != nil {
		return err
	}
	if err := o.Rotate.validate(o.Output, o.Wireshark); err != nil {
		return err
	}
	if err := o.validateOutput(); err != nil {
		return err
	}
	if o.Rotate.on() {
		if stream, _ := classifyOutput(o.Output); stream {
			return fmt.Errorf("-C and -G write a series of files, and -w %s is a pipe or a device: name a file", o.Output)
		}
	}
	return nil
}

// validateOnNode checks --on-node and --node-namespace.
func (o *CaptureOptions) validateOnNode() error {
	switch {
	case o.OnNode && o.Target.Kind == target.KindNode:
		return fmt.Errorf("--on-node captures a pod's traffic on its node; node/%s is a node already: drop --on-node", o.Target.Name)
	case o.OnNode && o.Container != "":
		return fmt.Errorf("--on-node captures all of the pod's traffic on its host-side veth: drop -c/--container")
	case o.OnNode && o.Interface != "eth0":
		return fmt.Errorf("--on-node finds the pod's host-side veth itself: drop --interface")
	case o.NodeNamespace != "" && !o.OnNode && o.Target.Kind != target.KindNode:
		return fmt.Errorf("--node-namespace is where --on-node runs its node-debug pod: add --on-node, or drop --node-namespace")
	}
	return nil
}

// validInterface follows the kernel's rules for interface names.
func validInterface(name string) error {
	if name == "" {
		return fmt.Errorf("--interface must not be empty")
	}
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("--interface %q is not a valid interface name", name)
	}
	return nil
}

func (o *CaptureOptions) toStdout() bool {
	return !o.Wireshark && (o.Output == "" || o.Output == "-")
}

// wiresharkPath finds the Wireshark to stream into: $NETDIAG_WIRESHARK, else
// wireshark on PATH.
func wiresharkPath() (string, error) {
	name := os.Getenv("NETDIAG_WIRESHARK")
	if name == "" {
		name = "wireshark"
	}
	return exec.LookPath(name)
}

func (o *CaptureOptions) validateOutput() error {
	if o.Wireshark {
		if o.Output != "" {
			return fmt.Errorf("--wireshark and -w cannot be used together: --wireshark streams into Wireshark, -w into a file or stdout")
		}
		if _, err := wiresharkPath(); err != nil {
			return fmt.Errorf("--wireshark: %v; install Wireshark, or pipe the capture into another viewer with -w - | VIEWER", err)
		}
		return nil
	}
	if o.toStdout() {
		if o.IsTerminal != nil && o.IsTerminal(o.Out) {
			return fmt.Errorf("refusing to write pcap to a terminal; use -w FILE or pipe it")
		}
		return nil
	}
	stream, err := classifyOutput(o.Output)
	if err != nil {
		return err
	}
	if stream || isRegularFile(o.Output) {
		// Check it can be written, without truncating or replacing it
		// yet: a read-only file is refused as a write to it would be (a
		// link is replaced, whatever its target allows).
		f, err := os.OpenFile(o.Output, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("-w %s: %w", o.Output, unwrapPathError(err))
		}
		_ = f.Close()
	}
	return nil
}

func isRegularFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// classifyOutput says how -w PATH is written: stream (a FIFO or a device,
// written to as it is: never truncated, replaced nor created) or not (a
// regular file, new or existing, written as a new file beside it and renamed
// over it at the end). A symbolic link is never written through unless it
// leads to a FIFO or device: the rename replaces the link itself, and the
// file it pointed to is left as it was.
func classifyOutput(path string) (stream bool, err error) {
	li, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, checkOutputDir(path)
	case err != nil:
		return false, fmt.Errorf("-w %s: %w", path, unwrapPathError(err))
	case li.IsDir():
		return false, fmt.Errorf("-w %s: is a directory", path)
	case li.Mode().IsRegular():
		return false, checkOutputDir(path)
	case isStream(li.Mode()):
		return true, nil
	case li.Mode()&fs.ModeSymlink == 0:
		return false, fmt.Errorf("-w %s: not a regular file", path)
	}
	fi, err := os.Stat(path)
	if err == nil && isStream(fi.Mode()) {
		return true, nil // /dev/stdout in a pipe, /dev/null, a FIFO
	}
	if fd, ok := fdLink(path); ok {
		return false, fmt.Errorf("-w %s is a link to an open file of this process (%s): write to stdout with -w -, or name a file", path, fd)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A dangling link: the capture replaces it.
	case err != nil:
		return false, fmt.Errorf("-w %s: %w", path, unwrapPathError(err))
	case fi.IsDir():
		return false, fmt.Errorf("-w %s: is a link to a directory; name a file in it", path)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("-w %s: links to something that is not a regular file", path)
	}
	return false, checkOutputDir(path)
}

func isStream(m fs.FileMode) bool {
	return m&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0
}

// fdLink says whether path is a chain of links into /proc or /dev/fd (like
// /dev/stdout): a file descriptor of the process, not a place to put a file.
func fdLink(path string) (string, bool) {
	p := path
	for range 40 {
		t, err := os.Readlink(p)
		if err != nil {
			return "", false
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		if strings.HasPrefix(t, "/proc/") || strings.HasPrefix(t, "/dev/fd/") {
			return t, true
		}
		p = t
	}
	return "", false
}

// checkOutputDir checks that the directory of path exists: the capture is
// written into a new file there.
func checkOutputDir(path string) error {
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("-w %s: directory %q does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("-w %s: %w", path, unwrapPathError(err))
	case !di.IsDir():
		return fmt.Errorf("-w %s: %q is not a directory", path, dir)
	}
	return nil
}

// outputFile is the -w FILE output. The capture goes into a new file beside
// the target (same directory, so the rename is atomic; created exclusively,
// so no link is followed; mode 0600), named .NAME.netdiag-XXXX.tmp. finish
// renames it over the target when it holds data, else removes it: a capture
// that fails before its first byte leaves an existing file as it was.
type outputFile struct {
	path string
	f    *os.File
	n    atomic.Int64

	mu       sync.Mutex
	closed   bool
	closeErr error
	finished bool
	kept     bool
	finErr   error
}

func createOutputFile(path string) (*outputFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".netdiag-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("-w %s: cannot create a file in %s: %w", path, dir, unwrapPathError(err))
	}
	// CreateTemp makes it 0600 less the umask; make it exactly 0600.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("-w %s: %w", path, unwrapPathError(err))
	}
	return &outputFile{path: path, f: f}, nil
}

func (o *outputFile) Write(p []byte) (int, error) {
	n, err := o.f.Write(p)
	o.n.Add(int64(n))
	return n, err
}

// Written is the number of bytes written so far.
func (o *outputFile) Written() int64 { return o.n.Load() }

// Close syncs and closes the file (it stays under its temporary name).
func (o *outputFile) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closeLocked()
}

func (o *outputFile) closeLocked() error {
	if !o.closed {
		o.closed = true
		err := o.f.Sync()
		if cerr := o.f.Close(); err == nil {
			err = cerr
		}
		o.closeErr = err
	}
	return o.closeErr
}

// finish closes the file and moves it into place if it holds data or keep is
// set; otherwise it removes it. It says whether the file was moved into
// place. Only the first call acts.
func (o *outputFile) finish(keep bool) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.finished {
		return o.kept, o.finErr
	}
	o.finished = true
	_ = o.closeLocked() // a sync error is not worth losing the data for
	tmp := o.f.Name()
	if !keep && o.n.Load() == 0 {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			o.finErr = fmt.Errorf("removing %s: %w", tmp, unwrapPathError(err))
		}
		return false, o.finErr
	}
	if err := os.Rename(tmp, o.path); err != nil {
		o.finErr = fmt.Errorf("the capture is in %s, but moving it to %s failed (%v): move it yourself", tmp, o.path, unwrapPathError(err))
		return false, o.finErr
	}
	o.kept = true
	return true, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Run captures until a limit is hit or Ctrl-C. A second Ctrl-C ends the
// plugin at once, keeping what the file holds so far.
func (o *CaptureOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := withInterrupts(ctx, func(sig string) { o.stoppedBy.Store(sig) }, o.abandon)
	defer stop()
	return o.run(ctx)
}

// abandon is the second Ctrl-C: keep what the file holds and say so.
func (o *CaptureOptions) abandon(sig string) {
	o.stopProgress()
	msg := fmt.Sprintf("a second %s: stopping at once; the helper in the pod stops by itself within %s", sig, o.Heartbeat)
	if f := o.file.Load(); f != nil {
		n := f.Written()
		switch kept, err := f.finish(false); {
		case err != nil:
			msg += "; " + err.Error()
		case kept:
			msg += fmt.Sprintf("; %s keeps the %s written so far (its last packet may be cut)", f.path, remotecapture.HumanBytes(uint64(n)))
		}
	}
	fmt.Fprintln(o.ErrOut, msg)
}

func (o *CaptureOptions) run(ctx context.Context) error {
	outputName := o.Output
	switch {
	case o.Wireshark:
		outputName = "Wireshark"
	case o.toStdout():
		outputName = "stdout"
	}
	if o.Wireshark || o.toStdout() {
		// A reader that goes away (head, a closed Wireshark) must give
		// EPIPE, so the capture stops cleanly, not a SIGPIPE death that
		// leaves no summary.
		sigpipe := make(chan os.Signal, 1)
		signal.Notify(sigpipe, syscall.SIGPIPE)
		defer signal.Stop(sigpipe)
	}
	var file *outputFile
	var rot *rotator
	open := func() (io.WriteCloser, error) {
		if o.Wireshark {
			return startWireshark()
		}
		if o.toStdout() {
			return nopCloser{o.Out}, nil
		}
		stream, err := classifyOutput(o.Output)
		if err != nil {
			return nil, err
		}
		if stream {
			f, err := os.OpenFile(o.Output, os.O_WRONLY, 0)
			if err != nil {
				return nil, fmt.Errorf("-w %s: %w", o.Output, unwrapPathError(err))
			}
			return f, nil
		}
		if o.Rotate.on() {
			rot = newRotator(o.Output, o.Rotate, o.Now, func(f *outputFile) { o.file.Store(f) })
			return rot, nil
		}
		file, err = createOutputFile(o.Output)
		if err != nil {
			return nil, err
		}
		o.file.Store(file)
		return file, nil
	}
	cfg := remotecapture.Config{
		Pod:              o.Target.Name,
		Namespace:        o.Namespace,
		Container:        o.Container,
		Interface:        o.Interface,
		Filter:           o.Filter,
		Snaplen:          o.Snaplen,
		Count:            o.Count,
		Duration:         o.Duration,
		MaxBytes:         o.MaxBytes,
		Format:           o.Format,
		Image:            o.Image,
		PullPolicy:       corev1.PullPolicy(o.PullPolicy),
		PullSecrets:      o.pullSecrets(),
		Timeout:          o.Timeout,
		Heartbeat:        o.Heartbeat,
		ReconnectTimeout: o.ReconnectTimeout,
		Open:             open,
		OutputName:       outputName,
	}
	if o.Target.Kind == target.KindNode {
		cfg.Pod, cfg.Node = "", o.Target.Name
	}
	cfg.OnNode, cfg.NodeNamespace = o.OnNode, o.NodeNamespace
	if o.Target.Kind == target.KindNode && o.NodeNamespace != "" {
		cfg.Namespace = o.NodeNamespace
	}
	if o.many() {
		return o.runMany(ctx, cfg)
	}
	deps := remotecapture.Deps{Client: o.Client, Executor: o.Executor, NameSuffix: o.NameSuffix, ErrOut: o.startProgress(&cfg)}
	res, err := remotecapture.Run(ctx, deps, cfg)
	o.stopProgress()
	if rot != nil {
		outputName = rot.describe()
	}
	if res.Interrupted {
		if by, _ := o.stoppedBy.Load().(string); by != "" {
			res.InterruptedBy = by
		}
	}
	if file != nil {
		err = o.finishFile(file, err, errors.As(err, new(*remotecapture.CutShortError)))
	}
	if res.Reported && (err == nil || errors.As(err, new(*remotecapture.CutShortError))) {
		fmt.Fprintln(o.ErrOut, res.Summary(outputName))
	}
	return err
}

// startWireshark runs Wireshark reading the capture from its stdin. Closing
// the returned writer ends the stream; Wireshark stays open to browse it.
func startWireshark() (io.WriteCloser, error) {
	path, err := wiresharkPath()
	if err != nil {
		return nil, fmt.Errorf("--wireshark: %w", err)
	}
	cmd := exec.Command(path, "-k", "-i", "-")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("--wireshark: starting %s: %w", path, err)
	}
	klog.V(2).Infof("streaming into %s (pid %d)", path, cmd.Process.Pid)
	go func() { _ = cmd.Wait() }() // reap it whenever the user closes it
	return in, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// ----------------------------------------------- several pods, one pcapng

// many says whether the targets are several pods (a workload, a selector,
// more than one pod/NAME): one pcapng with an interface per pod.
func (o *CaptureOptions) many() bool {
	return len(o.Targets) > 0 && target.Many(o.Targets)
}

// validateMany checks the flags of a multi-pod capture.
func (o *CaptureOptions) validateMany() error {
	if o.MaxConcurrency < 1 {
		return fmt.Errorf("--max-concurrency must be at least 1, got %d", o.MaxConcurrency)
	}
	if o.MaxPods < 1 {
		return fmt.Errorf("--max-pods must be at least 1, got %d", o.MaxPods)
	}
	if !o.many() {
		return nil
	}
	switch {
	case o.formatSet && o.Format != "pcapng":
		return fmt.Errorf("several pods are captured into one pcapng, an interface per pod; --format %s cannot hold them: pass --format pcapng, or leave --format out", o.Format)
	case o.OnNode:
		return fmt.Errorf("--on-node captures one pod: name a single pod/NAME, or drop --on-node to capture several pods")
	case o.Rotate.on():
		return fmt.Errorf("-C/-G rotate the capture of one pod or node: with several pods, write one file (drop -C, -G and -W)")
	}
	return nil
}

// runMany captures the pods the targets select into one pcapng; cfg is
// every pod's capture, its Open the output.
func (o *CaptureOptions) runMany(ctx context.Context, cfg remotecapture.Config) error {
	sel, err := remotecapture.SelectPods(ctx, o.Client, o.Namespace, o.Targets)
	if err != nil {
		return err
	}
	for _, s := range sel.Skipped {
		fmt.Fprintf(o.ErrOut, "not a target: %s\n", s)
	}
	if len(sel.Pods) > o.MaxPods && !o.Yes {
		if !o.IsTerminal(o.In) {
			return fmt.Errorf("%d pods selected, more than --max-pods %d: pass --yes to capture them all (or narrow the selection, or raise --max-pods)", len(sel.Pods), o.MaxPods)
		}
		ok, err := askYesNo(ctx, bufio.NewReader(o.In), o.ErrOut, fmt.Sprintf("capture %d pods (more than --max-pods %d)?", len(sel.Pods), o.MaxPods))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not confirmed: nothing was started")
		}
	}
	deps := remotecapture.Deps{Client: o.Client, Executor: o.Executor, NameSuffix: o.NameSuffix, ErrOut: o.ErrOut}
	res, err := remotecapture.RunMany(ctx, deps, remotecapture.ManyConfig{
		Config: cfg, Pods: sel.Pods, MaxConcurrency: o.MaxConcurrency, Strict: o.Strict,
	})
	if by, _ := o.stoppedBy.Load().(string); by != "" {
		for i := range res.Pods {
			if res.Pods[i].Result.Interrupted {
				res.Pods[i].Result.InterruptedBy = by
			}
		}
	}
	var missed *remotecapture.MissedError
	if file := o.file.Load(); file != nil {
		err = o.finishFile(file, err, errors.As(err, &missed))
	}
	if err == nil || errors.As(err, &missed) {
		for _, line := range res.Summary(cfg.OutputName) {
			fmt.Fprintln(o.ErrOut, line)
		}
	}
	return err
}

// finishFile ends the -w file of a run that ended with err: a failure
// before the first byte leaves an existing file as it was; anything
// captured is kept, even when the run failed later, and the error says so
// unless summarized (the summary says where the packets went).
func (o *CaptureOptions) finishFile(file *outputFile, err error, summarized bool) error {
	n := file.Written()
	kept, ferr := file.finish(err == nil)
	switch {
	case ferr != nil && err == nil:
		return ferr
	case ferr != nil:
		return fmt.Errorf("%w; %v", err, ferr)
	case err != nil && kept && !summarized:
		return fmt.Errorf("%w; the %s received before that are saved in %s", err, remotecapture.HumanBytes(uint64(n)), o.Output)
	}
	return err
}
