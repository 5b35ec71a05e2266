package remotecapture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
	netdiagtarget "github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// DefaultMaxConcurrency is how many pods are set up at once by default.
const DefaultMaxConcurrency = 10

// Selection is the pods a multi-pod capture targets.
type Selection struct {
	// Pods are the pods to capture, in the order named (a workload's or
	// selector's pods sorted by name).
	Pods []string
	// Skipped says, for each pod a workload or selector matched but that
	// is not Running (Pending, Succeeded, being deleted), why it is left
	// out. These are not targets: they are only told.
	Skipped []string
}

// SelectPods resolves targets to pods of namespace: pod/NAME as it is (its
// state is checked when it is captured), deploy/sts/ds/NAME through the
// workload's selector, and a label selector, to their Running pods.
func SelectPods(ctx context.Context, client kubernetes.Interface, namespace string, targets []netdiagtarget.Target) (Selection, error) {
	var sel Selection
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			sel.Pods = append(sel.Pods, name)
		}
	}
	for _, t := range targets {
		if t.Kind == netdiagtarget.KindPod {
			add(t.Name)
			continue
		}
		selector, err := workloadSelector(ctx, client, namespace, t)
		if err != nil {
			return sel, err
		}
		list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
		if err != nil {
			return sel, fmt.Errorf("listing the pods of %s in namespace %q: %w", t, namespace, err)
		}
		pods := list.Items
		sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
		running := 0
		for _, p := range pods {
			switch {
			case p.DeletionTimestamp != nil:
				sel.Skipped = append(sel.Skipped, fmt.Sprintf("pod/%s of %s is being deleted", p.Name, t))
			case p.Status.Phase != corev1.PodRunning:
				phase := p.Status.Phase
				if phase == "" {
					phase = "Unknown"
				}
				sel.Skipped = append(sel.Skipped, fmt.Sprintf("pod/%s of %s is %s, not Running", p.Name, t, phase))
			default:
				running++
				add(p.Name)
			}
		}
		if running == 0 {
			return sel, fmt.Errorf("%s has no Running pods in namespace %q (selector %s)%s", t, namespace, selector, skippedNote(len(pods)))
		}
	}
	return sel, nil
}

func skippedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(": %d %s, none Running", n, plural(n, "pod matches", "pods match"))
}

// workloadSelector is the label selector of a workload or -l target.
func workloadSelector(ctx context.Context, client kubernetes.Interface, namespace string, t netdiagtarget.Target) (labels.Selector, error) {
	if t.Kind == netdiagtarget.KindSelector {
		return labels.Parse(t.Name)
	}
	var ls *metav1.LabelSelector
	var err error
	apps := client.AppsV1()
	switch t.Kind {
	case netdiagtarget.KindDeployment:
		d, e := apps.Deployments(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			ls = d.Spec.Selector
		}
	case netdiagtarget.KindStatefulSet:
		s, e := apps.StatefulSets(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			ls = s.Spec.Selector
		}
	case netdiagtarget.KindDaemonSet:
		d, e := apps.DaemonSets(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			ls = d.Spec.Selector
		}
	default:
		return nil, fmt.Errorf("%s cannot be resolved to pods", t)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%s not found in namespace %q", t, namespace)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("not allowed to read %s in namespace %q (%v): capture its pods by name, pod/NAME, or with -l SELECTOR", t, namespace, err)
	case err != nil:
		return nil, fmt.Errorf("reading %s in namespace %q: %w", t, namespace, err)
	}
	if ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0) {
		return nil, fmt.Errorf("%s has no pod selector: name its pods with pod/NAME or -l SELECTOR", t)
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s has a selector this plugin cannot use (%v): name its pods with -l SELECTOR", t, err)
	}
	return s, nil
}

// ManyConfig is a capture of several pods into one pcapng.
type ManyConfig struct {
	// Config is every pod's capture (Namespace, Container, Interface,
	// Filter, limits, image, ...); its Open and OutputName are the merged
	// output's. Pod and Node are ignored; Format is pcapng.
	Config
	Pods []string
	// MaxConcurrency bounds the pods being set up at once (checked, their
	// netdiag container injected and waited for); a pod whose helper is
	// streaming no longer counts. Default DefaultMaxConcurrency.
	MaxConcurrency int
	// Strict refuses the capture, before anything is created, when any
	// pod cannot be captured.
	Strict bool
	// Window is the merge's reorder window (pcapstream.DefaultMergeWindow
	// when 0).
	Window time.Duration
}

// PodResult is one pod of a multi-pod capture.
type PodResult struct {
	Pod  string
	Node string
	// Started: its helper wrote to the output.
	Started bool
	Result  Result
	// Err is why the pod was not captured, or was cut short.
	Err error
	// ReaderLeft: the output's reader went away before this pod's capture
	// started; it is not counted as missed.
	ReaderLeft bool
}

// Captured says whether the pod was captured to a normal end.
func (p PodResult) Captured() bool { return p.Err == nil && p.Result.Reported }

// ManyResult is what a multi-pod capture did.
type ManyResult struct {
	Namespace string
	Pods      []PodResult
	Merge     pcapstream.MergeSummary
	Written   int64
	// ReaderGone: the output's reader went away.
	ReaderGone bool
}

// Missed counts the pods that were not captured to a normal end.
func (r ManyResult) Missed() int {
	n := 0
	for _, p := range r.Pods {
		if !p.Captured() && !p.ReaderLeft {
			n++
		}
	}
	return n
}

// MissedError is returned, with a ManyResult to summarise, when some pods
// were not captured (or were cut short) while the others were: the output
// holds those. The plugin exits 1.
type MissedError struct {
	Missed, Total int
	Output        string
}

func (e *MissedError) Error() string {
	return fmt.Sprintf("%d of %d pods %s not captured to the end (see above); %s holds the others", e.Missed, e.Total, plural(e.Missed, "was", "were"), e.Output)
}

// Summary is the lines printed after a multi-pod capture: one per pod,
// then the total.
func (r ManyResult) Summary(output string) []string {
	var lines []string
	var packets, bytes, drops uint64
	captured := 0
	for _, p := range r.Pods {
		label := "pod/" + p.Pod
		if p.Node != "" {
			label += " (node " + p.Node + ")"
		}
		if !p.Result.Reported {
			if p.ReaderLeft {
				lines = append(lines, fmt.Sprintf("  %s: not captured: the reader of %s went away before its capture started", label, output))
				continue
			}
			if p.Started {
				lines = append(lines, fmt.Sprintf("  %s: cut short: %v (what it captured until then is in %s)", label, p.Err, output))
			} else {
				lines = append(lines, fmt.Sprintf("  %s: not captured: %v", label, p.Err))
			}
			continue
		}
		st := p.Result.Stats
		packets += st.Packets
		bytes += st.Bytes
		drops += st.KernelDrops
		if p.Err == nil {
			captured++
		}
		why, _ := p.Result.StopReason()
		line := fmt.Sprintf("  %s %s: %d packets (%s), %d dropped by the kernel", label, p.Result.Interface, st.Packets, HumanBytes(st.Bytes), st.KernelDrops)
		if p.Result.Gaps > 0 {
			line += fmt.Sprintf(", %d %s (%s in all)", p.Result.Gaps, plural(p.Result.Gaps, "gap", "gaps"), roundGap(p.Result.GapTotal))
		}
		line += "; stopped: " + why
		if p.Err != nil {
			line += " (cut short)"
		}
		lines = append(lines, line)
	}
	total := fmt.Sprintf("captured %d packets (%s) from %d of %d pods, %d dropped by the kernel → %s",
		packets, HumanBytes(bytes), captured, len(r.Pods), drops, output)
	if r.ReaderGone {
		total += fmt.Sprintf(", which its reader closed after %s", HumanBytes(uint64(r.Written)))
	}
	if r.Merge.Late > 0 {
		total += fmt.Sprintf("; %d %s arrived more than the merge window late and %s out of timestamp order", r.Merge.Late, plural(int(r.Merge.Late), "packet", "packets"), plural(int(r.Merge.Late), "is", "are"))
	}
	return append(lines, total)
}

// lockedWriter serialises the messages of concurrent captures.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// RunMany captures several pods of one namespace into one pcapng: each
// pod with Run (its own netdiag container, heartbeat and resume), its
// stream merged live into the output (pcapstream.MergeWriter), one
// interface per pod named NAMESPACE/POD. A pod that cannot be captured is
// reported and the others go on (MissedError); with Strict, the capture is
// refused before anything is created when any pod cannot be captured.
// Cancelling ctx stops every pod cleanly.
func RunMany(ctx context.Context, deps Deps, cfg ManyConfig) (ManyResult, error) {
	res := ManyResult{Namespace: cfg.Namespace}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = DefaultMaxConcurrency
	}
	if deps.ErrOut == nil {
		deps.ErrOut = io.Discard
	}
	deps.ErrOut = &lockedWriter{w: deps.ErrOut}
	if suffix := deps.NameSuffix; suffix != nil {
		var mu sync.Mutex
		deps.NameSuffix = func() string { mu.Lock(); defer mu.Unlock(); return suffix() }
	}
	cfg.Format = "pcapng"
	cfg.Node = ""

	// Every pod is checked before anything is created.
	res.Pods = make([]PodResult, len(cfg.Pods))
	var refused []string
	for i, name := range cfg.Pods {
		res.Pods[i].Pod = name
		pc := cfg.Config
		pc.Pod = name
		pod, _, err := CheckPod(ctx, deps.Client, pc)
		if pod != nil {
			res.Pods[i].Node = pod.Spec.NodeName
		}
		if err != nil {
			res.Pods[i].Err = err
			refused = append(refused, err.Error())
		}
	}
	if len(refused) > 0 && cfg.Strict {
		return res, fmt.Errorf("--strict: %d of %d pods cannot be captured, nothing was started: %s", len(refused), len(cfg.Pods), strings.Join(refused, "; "))
	}
	if len(refused) == len(cfg.Pods) {
		if len(refused) == 1 {
			return res, errors.New(refused[0])
		}
		return res, fmt.Errorf("none of the %d pods can be captured: %s", len(cfg.Pods), strings.Join(refused, "; "))
	}
	for _, r := range refused {
		fmt.Fprintf(deps.ErrOut, "not capturing: %s\n", r)
	}

	out, err := cfg.Open()
	if err != nil {
		return res, err
	}
	// When the output fails (its reader went away), every pod is stopped
	// the way Ctrl-C stops it: a pod's own write into the merge may have
	// succeeded, and a quiet pod would not learn it for a long time.
	runCtx, stopPods := context.WithCancel(ctx)
	defer stopPods()
	counted := &mergedOutput{w: out, failedFn: func(err error) {
		if readerGone(err) {
			fmt.Fprintf(deps.ErrOut, "the reader of %s went away (%v); stopping the capture on every pod\n", cfg.OutputName, err)
		} else {
			fmt.Fprintf(deps.ErrOut, "writing %s failed (%v); stopping the capture on every pod\n", cfg.OutputName, err)
		}
		stopPods()
	}}
	merger, err := pcapstream.NewMergeWriter(counted, pcapstream.MergeOptions{Window: cfg.Window, Application: "kubectl-netdiag"})
	if err != nil {
		_ = out.Close()
		return res, fmt.Errorf("writing %s: %w", cfg.OutputName, err)
	}

	// Every pod is a source of the merge from the start: until its helper
	// streams (or it fails), the others' packets wait for it up to the
	// merge window, so the first packets come out in order too.
	sources := make([]io.WriteCloser, len(res.Pods))
	for i, p := range res.Pods {
		if p.Err != nil {
			continue
		}
		label, node := cfg.Namespace+"/"+p.Pod, p.Node
		sources[i] = merger.Add(pcapstream.MergeInfo{Name: label, Describe: func(ifName string) string {
			if ifName == "" {
				ifName = cfg.Interface
			}
			return fmt.Sprintf("%s of %s on node %s", ifName, label, node)
		}})
	}
	slots := make(chan struct{}, cfg.MaxConcurrency)
	var wg sync.WaitGroup
	for i := range res.Pods {
		p := &res.Pods[i]
		if p.Err != nil {
			continue
		}
		// Pods start in the order named, at most MaxConcurrency setting
		// up at a time.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			p.Err = errors.New("interrupted before its capture started")
			_ = sources[i].Close()
			continue
		}
		if werr := counted.error(); werr != nil {
			p.Err = fmt.Errorf("not started: writing %s failed (%v)", cfg.OutputName, werr)
			p.ReaderLeft = readerGone(werr)
			_ = sources[i].Close()
			<-slots
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var release sync.Once
			free := func() { release.Do(func() { <-slots }) }
			defer free()
			pc := cfg.Config
			pc.Pod = p.Pod
			src := &sourceWriter{w: sources[i], first: free}
			pc.Open = func() (io.WriteCloser, error) { return src, nil }
			r, err := Run(runCtx, deps, pc)
			gone := ctx.Err() == nil && readerGone(counted.error())
			if r.Interrupted && gone {
				r.Interrupted, r.ReaderGone = false, true
			}
			// Closed whatever Run did: a pod that failed before its
			// output was opened holds the merge no longer.
			_ = src.Close()
			p.Result, p.Err = r, err
			p.Started = src.n.Load() > 0
			if gone && !p.Started && !r.Reported {
				p.ReaderLeft = true
			}
		}()
	}
	wg.Wait()
	mergeErr := merger.Close()
	res.Merge = merger.Summary()
	res.Written = counted.n.Load()
	closeErr := out.Close()
	if werr := counted.error(); werr != nil {
		if !readerGone(werr) {
			return res, fmt.Errorf("writing %s: %w; the capture was stopped", cfg.OutputName, werr)
		}
		res.ReaderGone = true
		closeErr, mergeErr = nil, nil
	}
	if mergeErr != nil {
		return res, mergeErr
	}
	if closeErr != nil {
		return res, fmt.Errorf("closing %s: %w", cfg.OutputName, closeErr)
	}
	started := false
	var why []string
	for _, p := range res.Pods {
		started = started || p.Started || p.Result.Reported
		if p.Err != nil {
			why = append(why, fmt.Sprintf("pod/%s: %v", p.Pod, p.Err))
		}
	}
	if !started && len(why) > 0 {
		// Nothing reached the output: an existing file stays as it was.
		return res, fmt.Errorf("none of the %d pods was captured: %s", len(res.Pods), strings.Join(why, "; "))
	}
	if missed := res.Missed(); missed > 0 {
		return res, &MissedError{Missed: missed, Total: len(res.Pods), Output: cfg.OutputName}
	}
	return res, nil
}

// readerGone says whether an output error means its reader went away.
func readerGone(err error) bool { return err != nil && (&outputWriter{err: err}).readerGone() }

// mergedOutput counts what reaches the output and keeps its first error.
type mergedOutput struct {
	w        io.Writer
	n        atomic.Int64
	mu       sync.Mutex
	err      error
	failedFn func(error) // called once, at the first error
}

func (o *mergedOutput) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.n.Add(int64(n))
	if err != nil {
		o.mu.Lock()
		first := o.err == nil
		if first {
			o.err = err
		}
		o.mu.Unlock()
		if first && o.failedFn != nil {
			o.failedFn(err)
		}
	}
	return n, err
}

func (o *mergedOutput) error() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// sourceWriter is a pod's way into the merge; its first write (the
// helper's file header: the helper runs) frees the pod's set-up slot.
type sourceWriter struct {
	w     io.WriteCloser
	first func()
	n     atomic.Int64
}

func (s *sourceWriter) Write(p []byte) (int, error) {
	if s.n.Add(int64(len(p))) == int64(len(p)) {
		s.first()
	}
	return s.w.Write(p)
}

func (s *sourceWriter) Close() error {
	s.first()
	return s.w.Close()
}
