// Package remotecapture is the plugin's capture engine: it runs
// `netdiag-helper capture` where the packets are and streams the pcap back
// over exec into the output. A pod capture injects (or reuses) the netdiag
// ephemeral container in the pod; a node capture runs in a node-debug pod,
// deleted at the end. It reports what was captured.
//
// (pkg/capture is the helper's engine; this package never runs in the pod.)
package remotecapture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Config is everything a capture needs, already validated.
type Config struct {
	Namespace string
	Pod       string
	// Container is the target container; "" picks the default one.
	Container string
	// Node, when set instead of Pod, captures on an interface of that node
	// through a node-debug pod in Namespace.
	Node string

	Interface string
	Filter    string
	Snaplen   int
	Count     int64
	Duration  time.Duration
	MaxBytes  int64
	Format    string

	Image      string
	PullPolicy corev1.PullPolicy
	// PullSecrets are the node pod's imagePullSecrets (node captures).
	PullSecrets []corev1.LocalObjectReference
	// Timeout bounds the wait for the netdiag container to run.
	Timeout time.Duration
	// Heartbeat is the helper's --heartbeat; HeartbeatEvery is how often
	// the plugin sends a byte (default 2s).
	Heartbeat      time.Duration
	HeartbeatEvery time.Duration
	// Grace is how long to wait for the helper to finish its file after
	// the context is cancelled (default 10s).
	Grace time.Duration
	// ReconnectTimeout is how long a capture whose exec stream broke tries
	// to resume (a new helper in the same container, appending to the same
	// output); 0 ends the capture at the first break.
	ReconnectTimeout time.Duration

	// Open opens the output; it is called after the API checks, before
	// anything is created in the cluster. OutputName names it in messages.
	Open       func() (io.WriteCloser, error)
	OutputName string

	// OnNode captures the pod's traffic on its host-side veth, through a
	// node-debug pod in NodeNamespace ("": the pod's namespace) on the
	// pod's node, instead of in the pod (onnode.go).
	OnNode        bool
	NodeNamespace string
	// Progress, when set, gets the capture's running count about once a
	// second (the helper's progress lines, summed across resumed
	// segments), from the goroutine that reads the helper's stderr.
	Progress func(protocol.Progress)
}

// Label names the capture's target the way kubectl does: pod/NAME or
// node/NAME.
func (c Config) Label() string {
	if c.Node != "" {
		return "node/" + c.Node
	}
	return "pod/" + c.Pod
}

// Deps are the seams tests replace; ErrOut gets the messages meant for
// the user (never the pcap).
type Deps = kube.Deps

// Result is what a finished capture reports.
type Result struct {
	Target    string // pod/NAME or node/NAME
	Container string // the netdiag ephemeral container
	Interface string
	Stats     protocol.Stats
	// Reported: Stats holds the helper's stats line (the capture ran to
	// its end, normal or not); Summary needs it.
	Reported bool
	Written  int64 // bytes written to the output
	Reused   bool
	// ReaderGone: the output's reader went away (a closed pipe or viewer)
	// and the capture stopped there.
	ReaderGone bool
	// Interrupted: the plugin stopped the capture because its context
	// ended (Ctrl-C or a signal).
	Interrupted bool
	// InterruptedBy names what ended the context in the summary; "" says
	// Ctrl-C.
	InterruptedBy string
	// Note is said in the summary after the target (an --on-node capture:
	// whose veth, and that directions are reversed).
	Note string
	// Segments is how many helper runs wrote the output (more than one
	// when the capture resumed after its stream broke); Gaps and GapTotal
	// are the breaks between them, when nothing was captured.
	Segments int
	Gaps     int
	GapTotal time.Duration
}

// Stop reasons the helper reports in its stats line (pkg/capture).
const (
	reasonCount        = "count"
	reasonDuration     = "duration"
	reasonMaxBytes     = "max-bytes"
	reasonSignal       = "signal"
	reasonStdinEOF     = "stdin-eof"
	reasonHeartbeat    = "heartbeat"
	reasonStdoutClosed = "stdout-closed"
	reasonError        = "error"
)

// StopReason says in words why the capture stopped, and whether that was a
// normal end (a limit, the user, a reader that left) or the capture was cut
// short.
func (r Result) StopReason() (text string, normal bool) {
	switch r.Stats.Reason {
	case reasonCount:
		return "--count reached", true
	case reasonDuration:
		return "--duration reached", true
	case reasonMaxBytes:
		return "--max-bytes reached", true
	case reasonSignal:
		return "the helper was stopped by a signal in the pod", true
	}
	switch {
	case r.ReaderGone:
		return "the reader went away", true
	case r.Interrupted:
		if r.InterruptedBy != "" {
			return r.InterruptedBy, true
		}
		return "Ctrl-C", true
	}
	switch r.Stats.Reason {
	case reasonStdinEOF:
		return "the helper's input ended unexpectedly (the exec stream from the pod broke)", false
	case reasonHeartbeat:
		return "the helper heard no heartbeat from this plugin for the --heartbeat time (the connection to the pod stalled)", false
	case reasonStdoutClosed:
		return "the helper's output was closed (the exec stream to this plugin broke)", false
	case reasonError:
		return "the helper failed", false
	case "":
		return "the helper gave no reason", false
	}
	return fmt.Sprintf("unknown reason %q (pass --image with the helper of this plugin's version)", r.Stats.Reason), false
}

// Summary is the one line printed after a capture.
func (r Result) Summary(output string) string {
	on := r.Target + " " + r.Interface
	if r.Note != "" {
		on += " (" + r.Note + ")"
	}
	s := fmt.Sprintf("captured %d packets (%s) on %s, %d dropped by the kernel → %s",
		r.Stats.Packets, HumanBytes(r.Stats.Bytes), on, r.Stats.KernelDrops, output)
	if r.ReaderGone {
		s += fmt.Sprintf(", which its reader closed after %s", HumanBytes(uint64(r.Written)))
	}
	if r.Stats.PreFilterDropped > 0 {
		s += fmt.Sprintf(", %d packets from before the filter was attached discarded", r.Stats.PreFilterDropped)
	}
	if r.Stats.KernelDrops > 0 {
		s += " (narrow the filter with -f or lower -s to drop less)"
	}
	if r.Gaps > 0 {
		s += fmt.Sprintf(", %d %s in the stream (%s in all) when nothing was captured", r.Gaps, plural(r.Gaps, "gap", "gaps"), roundGap(r.GapTotal))
	}
	why, _ := r.StopReason()
	return s + "; stopped: " + why
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func roundGap(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// CutShortError is returned, with a Result that can be summarised, when
// the helper reported its stats but stopped for a reason other than a limit,
// the user or a reader that left: the output is complete up to there.
type CutShortError struct {
	Target string
	Output string
	Reason string
}

func (e *CutShortError) Error() string {
	return fmt.Sprintf("the capture on %s was cut short: %s; %s holds what was captured until then", e.Target, e.Reason, e.Output)
}

// HumanBytes renders n with SI units: 999 B, 1.2 kB, 3.4 MB.
func HumanBytes(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		v /= 1000
		if v < 1000 {
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
		}
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " PB"
}

// Request is the helper's capture request for cfg.
func Request(cfg Config) protocol.CaptureRequest {
	return protocol.CaptureRequest{
		Interface: cfg.Interface, Filter: cfg.Filter, Snaplen: cfg.Snaplen,
		Count: cfg.Count, Duration: cfg.Duration, MaxBytes: cfg.MaxBytes,
		Format: cfg.Format, Heartbeat: cfg.Heartbeat,
		Progress: progressEvery(cfg),
	}
}

// HelperArgs is the helper command line for cfg. Every value is its own
// argument: no shell ever sees user text.
func HelperArgs(cfg Config) []string {
	return append([]string{kube.HelperPath}, Request(cfg).Command()...)
}

// CheckPod reads the pod and says why it cannot be captured, if it cannot.
// It returns the target container to use.
func CheckPod(ctx context.Context, client kubernetes.Interface, cfg Config) (*corev1.Pod, string, error) {
	pod, err := kube.GetPod(ctx, client, cfg.Namespace, cfg.Pod)
	if err != nil {
		return nil, "", err
	}
	if pod.DeletionTimestamp != nil {
		return nil, "", fmt.Errorf("pod %q in namespace %q is being deleted; nothing to capture", pod.Name, pod.Namespace)
	}
	if pod.Status.Phase != corev1.PodRunning {
		phase := pod.Status.Phase
		if phase == "" {
			phase = "Unknown"
		}
		return nil, "", fmt.Errorf("pod %q in namespace %q is %s, not Running: only a running pod can be captured", pod.Name, pod.Namespace, phase)
	}
	if pod.Spec.HostNetwork {
		return nil, "", fmt.Errorf("pod %q in namespace %q uses hostNetwork: a capture in it would see the node's interfaces, not the pod's; capture on its node instead: kubectl netdiag capture node/%s", pod.Name, pod.Namespace, pod.Spec.NodeName)
	}
	container := cfg.Container
	if container == "" {
		container = kube.DefaultContainer(pod)
	} else {
		found := false
		var names []string
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
			found = found || c.Name == container
		}
		if !found {
			return nil, "", fmt.Errorf("container %q not found in pod %q; its containers are: %s", container, pod.Name, joinNames(names))
		}
	}
	if container == "" {
		return nil, "", fmt.Errorf("pod %q in namespace %q has no containers", pod.Name, pod.Namespace)
	}
	return pod, container, nil
}

func joinNames(names []string) string {
	var b bytes.Buffer
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	return b.String()
}

// Run does one pod capture. Cancelling ctx (Ctrl-C) stops the capture
// cleanly: the heartbeat pipe is closed, the helper sees EOF on stdin,
// finishes the file and reports its stats.
func Run(ctx context.Context, deps Deps, cfg Config) (Result, error) {
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 2 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if deps.NameSuffix == nil {
		deps.NameSuffix = kube.RandomSuffix
	}
	if cfg.Node != "" {
		return runNode(ctx, deps, cfg)
	}
	if cfg.OnNode {
		return runOnNode(ctx, deps, cfg)
	}
	res := Result{Target: cfg.Label(), Interface: cfg.Interface}

	pod, targetContainer, err := CheckPod(ctx, deps.Client, cfg)
	if err != nil {
		return res, err
	}
	spec := kube.EphemeralSpec{Image: cfg.Image, PullPolicy: cfg.PullPolicy, TargetContainer: targetContainer}
	name := kube.FindReusable(pod, spec)
	if err := kube.PreflightCapture(ctx, deps.Client, pod.Namespace, name == ""); err != nil {
		return res, onNodeAdvice(ctx, deps.Client, pod.Namespace, err)
	}
	out, err := cfg.Open()
	if err != nil {
		return res, err
	}
	if name != "" {
		res.Reused = true
		klog.V(1).Infof("reusing netdiag container %s in pod %s/%s", name, pod.Namespace, pod.Name)
	} else {
		ec := kube.NewEphemeralContainer(spec, deps.NameSuffix())
		name = ec.Name
		klog.V(1).Infof("adding netdiag container %s (image %s, target %s) to pod %s/%s", name, cfg.Image, targetContainer, pod.Namespace, pod.Name)
		if _, err := kube.AddEphemeralContainer(ctx, deps.Client, pod, ec); err != nil {
			_ = out.Close()
			return res, onNodeAdvice(ctx, deps.Client, pod.Namespace, err)
		}
	}
	// A reused container may still be Waiting (an earlier run that never
	// started it): wait for it like for a new one. The kubelet reports a
	// started container only at its next status sync, up to a second
	// later, so the helper is exec'd at once, and again every
	// earlyRetry, while the wait watches for the container to run or to
	// fail.
	started := make(chan error, 1)
	go func() {
		_, err := kube.WaitForEphemeralRunning(ctx, deps.Client, pod.Namespace, pod.Name, name, cfg.Timeout)
		if err != nil {
			err = fmt.Errorf("%w; %s", err, leftBehind(deps.Client, pod.Namespace, pod.Name, name))
		}
		started <- err
	}()
	res.Container = name
	t := target{pod: kube.Pod{Namespace: pod.Namespace, Name: pod.Name}, container: name, started: started}
	t.ready = func(ctx context.Context) error { return ephemeralRunning(ctx, deps.Client, t.pod, name) }
	return capture(ctx, deps, cfg, res, t, out)
}

// runNode captures on a node's interface through a node-debug pod, deleted
// at the end whatever happens.
func runNode(ctx context.Context, deps Deps, cfg Config) (Result, error) {
	res := Result{Target: cfg.Label(), Interface: cfg.Interface}
	if _, err := kube.GetNode(ctx, deps.Client, cfg.Node); err != nil {
		return res, err
	}
	if err := kube.PreflightNodePods(ctx, deps.Client, cfg.Namespace); err != nil {
		return res, err
	}
	out, err := cfg.Open()
	if err != nil {
		return res, err
	}
	session, err := kube.StartNodePod(ctx, deps, kube.NodePodSpec{Node: cfg.Node, Namespace: cfg.Namespace, Image: cfg.Image, PullPolicy: cfg.PullPolicy, PullSecrets: cfg.PullSecrets, StartTimeout: cfg.Timeout,
		// A --duration bounds the pod (plus the wait for it to start); a
		// capture until Ctrl-C gets no deadline, only its heartbeats.
		WorkDuration: kube.BoundedWork(cfg.Duration, cfg.Timeout+cfg.Grace)})
	if err != nil {
		_ = out.Close()
		return res, err
	}
	defer session.Close()
	res.Container = kube.NodeContainerName
	t := target{pod: session.Pod, container: kube.NodeContainerName}
	t.ready = func(ctx context.Context) error { return kube.NodePodRunning(ctx, deps.Client, t.pod) }
	return capture(ctx, deps, cfg, res, t, out)
}

// leftBehind says what stays of a netdiag container that did not get to
// run, and why.
func leftBehind(client kubernetes.Interface, namespace, podName, name string) string {
	stays := fmt.Sprintf("the netdiag container %s stays in pod %s/%s (Kubernetes cannot remove ephemeral containers)", name, namespace, podName)
	// The wait may have ended with Ctrl-C: look once more, briefly.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if pod, err := client.CoreV1().Pods(namespace).Get(ctx, podName, metav1.GetOptions{}); err == nil {
		for _, st := range pod.Status.EphemeralContainerStatuses {
			if st.Name != name {
				continue
			}
			switch {
			case st.State.Terminated != nil:
				return stays + "; it has exited and uses no resources"
			case st.State.Running != nil:
				return stays + fmt.Sprintf("; it is running idle, exits by itself after %s, and a retry reuses it", kube.IdleTimeout)
			}
		}
	}
	return stays + "; it never started and uses no resources; a retry reuses it"
}

// target is where the helper runs; ready says whether it still runs there
// (before a resumed segment), and why not.
type target struct {
	pod       kube.Pod
	container string
	ready     func(ctx context.Context) error
	// started, when set, reports once whether the container runs (nil)
	// or will not (why); until then the first exec is retried.
	started <-chan error
}

// earlyRetry is how often the first exec is tried while the container
// may not run yet.
var earlyRetry = 100 * time.Millisecond

// closedErr is a closed channel: a started that already reported.
var closedErr = func() chan error { c := make(chan error); close(c); return c }()

// segment is one helper run of a capture.
type segment struct {
	stderr  *stderrParser
	execErr error
	copied  pcapstream.SegmentStats
	copyErr error
}

// resumable says whether the segment's stream broke under a capture that
// nobody asked to stop: no stats line (or one that says its input or
// output broke), no helper error.
func (sg segment) resumable() bool {
	p := sg.stderr
	if p.refusal != nil || p.errMsg != "" || !p.started {
		return false
	}
	if errors.Is(sg.copyErr, pcapstream.ErrCorrupt) || errors.Is(sg.copyErr, pcapstream.ErrIncompatible) {
		return false
	}
	if p.stats == nil {
		return sg.execErr != nil
	}
	switch p.stats.Reason {
	case reasonStdinEOF, reasonHeartbeat, reasonStdoutClosed:
		return true
	}
	return false
}

// capture runs the helper in the target, streams its pcap into out (closed
// at the end) and turns its stderr into the result. When the stream breaks
// and nobody asked the capture to stop, it reconnects for up to
// cfg.ReconnectTimeout and runs a new helper (a segment) that appends to
// the same output, with the limits left; the gap is said on stderr, and in
// pcapng as a comment on the first packet after it.
func capture(ctx context.Context, deps Deps, cfg Config, res Result, t target, out io.WriteCloser) (Result, error) {
	counted := newOutputWriter(out)
	joiner := pcapstream.NewJoiner(counted)
	start := time.Now()
	id := "cap-" + deps.NameSuffix()
	var total protocol.Stats
	var sg segment
	// The reconnect deadline runs from the first break of a series: a
	// segment that breaks again at once (nothing captured, under two
	// seconds) does not earn a new one.
	var deadline time.Time
	for n := 1; ; n++ {
		segStart := time.Now()
		req := Request(cfg)
		req.ID, req.Takeover = id, n > 1
		if n > 1 {
			sum := joiner.Summary()
			if reason := remaining(cfg, &req, sum.Packets, sum.Bytes, time.Since(start)); reason != "" {
				total.Reason = reason
				break
			}
		}
		sg = runSegment(ctx, deps, withProgressBase(cfg, total, start), req, t, counted, joiner, n > 1, &res)
		// Until the container is reported running, and for a moment
		// after, an exec that did not reach the helper is tried again.
		var runningSince time.Time
		for n == 1 && t.started != nil && sg.execErr != nil && !sg.stderr.started && ctx.Err() == nil &&
			(runningSince.IsZero() || time.Since(runningSince) < 2*time.Second) {
			select {
			case err, ok := <-t.started:
				switch {
				case !ok:
				case err != nil:
					res.Written = counted.n
					_ = out.Close()
					return res, err
				default:
					runningSince = time.Now()
				}
				if ok {
					t.started = closedErr
				}
				time.Sleep(earlyRetry)
			case <-time.After(earlyRetry):
			case <-ctx.Done():
			}
			klog.V(3).Infof("exec before the container ran (%v); again", sg.execErr)
			sg = runSegment(ctx, deps, withProgressBase(cfg, total, start), req, t, counted, joiner, false, &res)
		}
		res.Segments = n
		if st := sg.stderr.stats; st != nil {
			total.Packets += st.Packets
			total.Bytes += st.Bytes
			total.KernelDrops += st.KernelDrops
			total.PreFilterDropped += st.PreFilterDropped
		} else {
			total.Packets += uint64(sg.copied.Packets)
			total.Bytes += uint64(sg.copied.Bytes)
		}
		if cfg.ReconnectTimeout <= 0 || ctx.Err() != nil || res.Interrupted || counted.err != nil || !sg.resumable() {
			break
		}
		brokeAt := time.Now()
		if deadline.IsZero() || sg.copied.Packets > 0 || brokeAt.Sub(segStart) >= 2*time.Second {
			deadline = brokeAt.Add(cfg.ReconnectTimeout)
		}
		why := "its helper's input or output broke"
		if sg.execErr != nil {
			why = sg.execErr.Error()
		}
		fmt.Fprintf(deps.ErrOut, "the capture stream from %s broke at %s (%s); reconnecting for up to %s...\n",
			cfg.Label(), brokeAt.Format("15:04:05"), why, time.Until(deadline).Round(time.Second))
		if err := reconnect(ctx, t, deadline); err != nil {
			res.Written = counted.n
			_ = out.Close()
			if ctx.Err() != nil {
				res.Interrupted = true
				return res, fmt.Errorf("interrupted while reconnecting to %s; %s holds what was captured until the stream broke at %s", cfg.Label(), cfg.OutputName, brokeAt.Format("15:04:05"))
			}
			// The command says what the output holds.
			return res, fmt.Errorf("the capture stream from %s broke at %s and could not be resumed within --reconnect-timeout %s (%v)",
				cfg.Label(), brokeAt.Format("15:04:05"), cfg.ReconnectTimeout, err)
		}
		fmt.Fprintln(deps.ErrOut, joiner.Gap(brokeAt, time.Now()))
	}
	sum := joiner.Summary()
	res.Gaps, res.GapTotal = sum.Gaps, sum.GapTotal
	stderr, execErr := sg.stderr, sg.execErr
	res.Written = counted.n
	closeErr := out.Close()
	if closeErr != nil {
		closeErr = fmt.Errorf("closing %s: %w", cfg.OutputName, closeErr)
	}
	if counted.err != nil {
		if !counted.readerGone() {
			return res, fmt.Errorf("writing %s: %w; the capture was stopped", cfg.OutputName, counted.err)
		}
		res.ReaderGone = true
		closeErr = nil // closing a pipe nobody reads says nothing new
	}
	if total.Reason != "" {
		// The limits were used up by the segments before the break.
		res.Stats, res.Reported = total, true
		return res, closeErr
	}
	if stderr.refusal != nil {
		return res, stderr.refusal
	}
	if stderr.errMsg != "" {
		return res, fmt.Errorf("capture in %s failed: %s", cfg.Label(), stderr.errMsg)
	}
	if errors.Is(sg.copyErr, pcapstream.ErrCorrupt) || errors.Is(sg.copyErr, pcapstream.ErrIncompatible) {
		return res, fmt.Errorf("the helper in %s wrote no capture this plugin can read (%v); pass --image with the helper of this plugin's version", cfg.Label(), sg.copyErr)
	}
	if stderr.stats == nil {
		switch {
		case execErr != nil && !stderr.started:
			return res, fmt.Errorf("cannot run the helper in container %s of pod %s/%s: %w", t.container, t.pod.Namespace, t.pod.Name, execErr)
		case execErr != nil && counted.n == 0:
			return res, fmt.Errorf("the capture stream from %s broke before anything was captured (%v)", cfg.Label(), execErr)
		case execErr != nil:
			return res, fmt.Errorf("the capture stream from %s broke before the helper reported its stats (%v); %s may be incomplete", cfg.Label(), execErr, cfg.OutputName)
		default:
			return res, fmt.Errorf("the helper in %s ended without reporting its stats; %s may be incomplete", cfg.Label(), cfg.OutputName)
		}
	}
	if execErr != nil {
		klog.V(2).Infof("exec ended with %v after the helper's stats", execErr)
	}
	res.Stats = *stderr.stats
	if res.Segments > 1 {
		last := res.Stats
		res.Stats = total
		res.Stats.Reason, res.Stats.Interface, res.Stats.DurationSeconds = last.Reason, last.Interface, time.Since(start).Seconds()
	}
	res.Reported = true
	if stderr.stats.Interface != "" {
		res.Interface = stderr.stats.Interface
	}
	if closeErr != nil {
		return res, closeErr
	}
	if why, normal := res.StopReason(); !normal {
		return res, &CutShortError{Target: cfg.Label(), Output: cfg.OutputName, Reason: why}
	}
	return res, nil
}

// remaining sets the limits of a resumed segment to what the earlier ones
// left, and says which limit was used up ("" when none).
func remaining(cfg Config, req *protocol.CaptureRequest, packets, bytes int64, elapsed time.Duration) string {
	if cfg.Count > 0 {
		if req.Count = cfg.Count - packets; req.Count <= 0 {
			return reasonCount
		}
	}
	if cfg.MaxBytes > 0 {
		if req.MaxBytes = cfg.MaxBytes - bytes; req.MaxBytes <= 0 {
			return reasonMaxBytes
		}
	}
	if cfg.Duration > 0 {
		if req.Duration = cfg.Duration - elapsed; req.Duration <= 0 {
			return reasonDuration
		}
	}
	return ""
}

// runSegment runs one helper capture; its pcap goes through the joiner
// into the output.
func runSegment(ctx context.Context, deps Deps, cfg Config, req protocol.CaptureRequest, t target, counted *outputWriter, joiner *pcapstream.Joiner, resumed bool, res *Result) segment {
	sg := segment{stderr: newStderrParser(deps.ErrOut, cfg.Label(), cfg.Interface)}
	sg.stderr.resumed = resumed
	sg.stderr.progress = cfg.Progress
	pr, pw := io.Pipe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sg.copied, sg.copyErr = joiner.Copy(pr)
		// Whatever the joiner did not take is drained: the exec must
		// never block on it.
		_, _ = io.Copy(io.Discard, pr)
	}()
	sg.execErr = stream(ctx, deps, cfg, append([]string{kube.HelperPath}, req.Command()...), t, counted, pw, sg.stderr, res)
	if sg.execErr != nil {
		_ = pw.CloseWithError(sg.execErr)
	} else {
		_ = pw.Close()
	}
	<-copied
	sg.stderr.flush()
	if sg.copyErr != nil {
		klog.V(2).Infof("capture segment: %v", sg.copyErr)
	}
	return sg
}

// reconnect waits until the target runs again (the API answers, the pod
// and its container run), with backoff, until deadline.
func reconnect(ctx context.Context, t target, deadline time.Time) error {
	return kube.WaitUntil(ctx, deadline, t.ready)
}

// ephemeralRunning says whether the netdiag container of the pod runs.
func ephemeralRunning(ctx context.Context, client kubernetes.Interface, p kube.Pod, name string) error {
	pod, err := client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("pod %s/%s was deleted: %w", p.Namespace, p.Name, kube.ErrPodGone)
	case err != nil:
		return fmt.Errorf("the API server does not answer: %w", err)
	case pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning:
		return fmt.Errorf("pod %s/%s is not running any more: %w", p.Namespace, p.Name, kube.ErrPodGone)
	}
	for _, st := range pod.Status.EphemeralContainerStatuses {
		if st.Name != name {
			continue
		}
		switch {
		case st.State.Running != nil:
			return nil
		case st.State.Terminated != nil:
			return fmt.Errorf("the netdiag container %s ended: %w", name, kube.ErrPodGone)
		}
		return fmt.Errorf("the netdiag container %s is not running yet", name)
	}
	return fmt.Errorf("the netdiag container %s is not in pod %s/%s: %w", name, p.Namespace, p.Name, kube.ErrPodGone)
}

// errGraceExpired ends the exec when the helper does not finish in time.
var errGraceExpired = errors.New("the helper did not finish in time after the capture was stopped")

// stream runs the helper (argv) with a heartbeat on stdin; its stdout goes
// to pcap, and output watches the output that pcap ends in.
func stream(ctx context.Context, deps Deps, cfg Config, argv []string, t target, output *outputWriter, pcap io.Writer, stderr *stderrParser, res *Result) error {
	// The exec outlives ctx: after Ctrl-C the helper still has to finish
	// the file. It is cut only when the grace period is over.
	execCtx, cancelExec := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelExec(nil)

	stdinR, stdinW := io.Pipe()
	var closeOnce sync.Once
	closeStdin := func() { closeOnce.Do(func() { _ = stdinW.Close() }) }
	defer closeStdin()

	done := make(chan error, 1)
	go func() {
		done <- deps.Executor.Stream(execCtx, t.pod, t.container, argv, stdinR, pcap, stderr)
		// End the heartbeat with EOF: client-go's stdin copier may still be
		// reading, and a closed reader makes it log an error.
		closeStdin()
	}()
	go kube.Heartbeat(execCtx, stdinW, cfg.HeartbeatEvery)

	select {
	case err := <-done:
		return err
	case <-stderr.refused:
		// A helper of another protocol: stop it now, nothing it writes
		// can be trusted.
		cancelExec(stderr.refusal)
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Second):
			return stderr.refusal
		}
	case <-ctx.Done():
		res.Interrupted = true
		fmt.Fprintf(deps.ErrOut, "stopping the capture on %s, waiting up to %s for the helper to finish the file...\n", cfg.Label(), cfg.Grace)
	case <-output.gone:
		fmt.Fprintf(deps.ErrOut, "the reader of %s went away (%v); stopping the capture on %s\n", cfg.OutputName, output.err, cfg.Label())
	}
	closeStdin()
	grace := time.NewTimer(cfg.Grace)
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-grace.C:
		cancelExec(errGraceExpired)
		select {
		case err := <-done:
			if err == nil {
				err = errGraceExpired
			}
			return fmt.Errorf("%w (%v)", errGraceExpired, err)
		case <-time.After(2 * time.Second):
			return errGraceExpired
		}
	}
}

// outputWriter counts what reaches the output. When the output fails (its
// reader closed a pipe, Wireshark was closed, a full disk), it remembers the
// error, says so on gone, and drains the rest of the stream: the capture is
// then stopped the way Ctrl-C stops it, so the helper ends cleanly instead of
// the exec stream breaking under it.
type outputWriter struct {
	w    io.Writer
	n    int64
	err  error
	gone chan struct{}
}

func newOutputWriter(w io.Writer) *outputWriter {
	return &outputWriter{w: w, gone: make(chan struct{})}
}

func (o *outputWriter) Write(p []byte) (int, error) {
	if o.err != nil {
		return len(p), nil
	}
	n, err := o.w.Write(p)
	o.n += int64(n)
	if err != nil {
		o.err = err
		close(o.gone)
	}
	return len(p), nil
}

// readerGone says whether the output failed because its reader went away,
// which ends a capture normally.
func (o *outputWriter) readerGone() bool {
	return errors.Is(o.err, syscall.EPIPE) || errors.Is(o.err, io.ErrClosedPipe) || errors.Is(o.err, os.ErrClosed)
}

// stderrParser reads the helper's stderr JSON lines as they arrive
// (protocol.Decoder). A helper of another protocol is refused: refused is
// closed and refusal says why.
type stderrParser struct {
	errOut io.Writer
	target string // pod/NAME or node/NAME
	iface  string

	dec     protocol.Decoder
	buf     []byte
	started bool // any line seen: the helper runs
	stats   *protocol.Stats
	errMsg  string
	refused chan struct{}
	refusal error
	// resumed: this helper resumes a capture whose stream broke.
	resumed bool
	// progress gets the helper's progress lines (nil: ignore them).
	progress func(protocol.Progress)
}

func newStderrParser(errOut io.Writer, target, iface string) *stderrParser {
	return &stderrParser{errOut: errOut, target: target, iface: iface, refused: make(chan struct{})}
}

func (p *stderrParser) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *stderrParser) flush() {
	if len(p.buf) > 0 {
		p.line(p.buf)
		p.buf = nil
	}
}

func (p *stderrParser) line(raw []byte) {
	raw = bytes.TrimRight(raw, "\r")
	if len(bytes.TrimSpace(raw)) == 0 || p.refusal != nil {
		return
	}
	p.started = true
	m, err := p.dec.Decode(raw)
	var verr *protocol.VersionError
	switch {
	case errors.As(err, &verr):
		p.refusal = err
		close(p.refused)
		return
	case errors.Is(err, protocol.ErrNotJSON):
		// Not ours (a runtime or libc message): show it as it is.
		fmt.Fprintf(p.errOut, "%s\n", raw)
		return
	case err != nil:
		klog.V(2).Infof("helper line %q: %v", raw, err)
		return
	}
	switch {
	case m.Hello != nil:
		klog.V(2).Infof("helper %s, protocol %d", m.Hello.Helper, m.Hello.Protocol)
	case m.Ready != nil:
		if m.Ready.Interface != "" {
			p.iface = m.Ready.Interface
		}
		klog.V(2).Infof("helper ready: %s", raw)
		filter := ""
		if m.Ready.Filter != "" {
			filter = fmt.Sprintf(" (filter %q)", m.Ready.Filter)
		}
		if p.resumed {
			fmt.Fprintf(p.errOut, "resumed the capture on %s %s%s\n", p.target, p.iface, filter)
		} else {
			fmt.Fprintf(p.errOut, "capturing on %s %s%s, Ctrl-C to stop\n", p.target, p.iface, filter)
		}
	case m.Error != nil:
		p.errMsg = m.Error.Message
		if p.errMsg == "" {
			p.errMsg = string(raw)
		}
	case m.Stats != nil:
		p.stats = m.Stats
	case m.Type == protocol.TypeProgress:
		var pr protocol.Progress
		if err := json.Unmarshal(m.Raw, &pr); err != nil {
			klog.V(2).Infof("helper progress line %q: %v", raw, err)
		} else if p.progress != nil {
			p.progress(pr)
		}
	default:
		klog.V(2).Infof("helper line: %s", raw)
	}
}
