package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

const (
	// ManagedByLabel marks every pod the plugin creates.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel.
	ManagedByValue = "kubectl-netdiag"
	// NodePodPrefix starts the name of every node-debug pod.
	NodePodPrefix = "netdiag-node-"
	// NodeContainerName is the node-debug pod's only container.
	NodeContainerName = "netdiag"
	// HostMountPath is where the node's / is mounted (read-only) in the
	// node-debug pod.
	HostMountPath = "/host"
	// SysctlDir is the one node directory a --fix writes (nf_conntrack_max
	// persisted in a sysctl.d file); a Writable node pod mounts it
	// read-write at HostMountPath+SysctlDir, and nothing else.
	SysctlDir = "/etc/sysctl.d"
	// NodePodDeadlineMargin is added to a bounded node pod's work to size
	// its activeDeadlineSeconds: the wait for the pod to start, the helper
	// finishing its file, deleting the pod.
	NodePodDeadlineMargin = 2 * time.Minute
	// NodePodIdleTimeout is the node pod's idle entrypoint timeout: once no
	// helper process (capture, check, fix, keepalive) has run in it for
	// this long, the pod ends.
	NodePodIdleTimeout = 30 * time.Second
	// KeepaliveHeartbeat is the node pod's keepalive --heartbeat: this long
	// after the plugin's last heartbeat, the keepalive exits (and the idle
	// entrypoint NodePodIdleTimeout later).
	KeepaliveHeartbeat = 30 * time.Second
	// KeepaliveReapAfter is the keepalive's --reap-after: once the plugin
	// is gone and no new keepalive started within this long, the keepalive
	// ends the helper commands still running in the pod.
	KeepaliveReapAfter = 10 * time.Second
)

// keepaliveEvery is how often the plugin sends a keepalive heartbeat (and
// waits before starting a broken keepalive again); tests shorten it.
var keepaliveEvery = 2 * time.Second

// NodePodSpec says what node-debug pod is wanted.
type NodePodSpec struct {
	Node       string
	Namespace  string
	Image      string
	PullPolicy corev1.PullPolicy
	// PullSecrets are the pod's imagePullSecrets, for a private registry.
	PullSecrets []corev1.LocalObjectReference
	// Writable adds a read-write mount of the node's /etc/sysctl.d (a
	// --fix persists nf_conntrack_max there); the node's / stays read-only.
	Writable bool
	// WorkDuration bounds the work the pod is for (a capture's --duration
	// plus the wait for the pod to start): the pod gets an
	// activeDeadlineSeconds of WorkDuration+NodePodDeadlineMargin. 0 is
	// open-ended work (a capture until Ctrl-C, checks with --fix prompts):
	// no deadline; the pod ends NodePodIdleTimeout after its keepalive
	// stops hearing from the plugin.
	WorkDuration time.Duration
	// StartTimeout bounds the wait for the pod to run (0: a minute).
	StartTimeout time.Duration
}

// BoundedWork is a NodePodSpec.WorkDuration: work plus overhead (the wait
// for the pod to start, a grace to finish), or 0 (open-ended) when work is
// not bounded (0).
func BoundedWork(work, overhead time.Duration) time.Duration {
	if work <= 0 {
		return 0
	}
	return work + overhead
}

// Deadline is the node pod's activeDeadlineSeconds: nil for open-ended
// work, else WorkDuration+NodePodDeadlineMargin in whole seconds.
func (spec NodePodSpec) Deadline() *int64 {
	if spec.WorkDuration <= 0 {
		return nil
	}
	d := spec.WorkDuration + NodePodDeadlineMargin
	return ptr.To(int64((d + time.Second - 1) / time.Second))
}

// NodePodName is netdiag-node-<node>-<suffix>, the node part trimmed so the
// whole name fits in 63 characters.
func NodePodName(node, suffix string) string {
	max := 63 - len(NodePodPrefix) - 1 - len(suffix)
	n := node
	if len(n) > max {
		n = n[:max]
	}
	n = strings.TrimRight(n, ".-")
	return NodePodPrefix + strings.ReplaceAll(n, ".", "-") + "-" + suffix
}

// NewNodePod builds the node-debug pod: host network and PID namespaces, a
// privileged helper container, the host's / read-only at /host (plus the
// node's /etc/sysctl.d read-write when spec.Writable), pinned to the node
// and tolerating every taint. It ends by itself: its idle entrypoint exits
// once no helper process runs in it, and bounded work also gets a deadline.
func NewNodePod(spec NodePodSpec, nameSuffix string) *corev1.Pod {
	mounts := []corev1.VolumeMount{{Name: "host", MountPath: HostMountPath, ReadOnly: true}}
	volumes := []corev1.Volume{{
		Name:         "host",
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}},
	}}
	if spec.Writable {
		mounts = append(mounts, corev1.VolumeMount{Name: "sysctl-d", MountPath: HostMountPath + SysctlDir})
		volumes = append(volumes, corev1.Volume{
			Name: "sysctl-d",
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: SysctlDir, Type: ptr.To(corev1.HostPathDirectoryOrCreate),
			}},
		})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      NodePodName(spec.Node, nameSuffix),
			Namespace: spec.Namespace,
			Labels:    map[string]string{ManagedByLabel: ManagedByValue},
		},
		Spec: corev1.PodSpec{
			NodeName:                      spec.Node,
			HostNetwork:                   true,
			HostPID:                       true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         spec.Deadline(),
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			ImagePullSecrets:              spec.PullSecrets,
			Containers: []corev1.Container{{
				Name:                     NodeContainerName,
				Image:                    spec.Image,
				ImagePullPolicy:          spec.PullPolicy,
				Command:                  []string{HelperPath, "idle", "--timeout", NodePodIdleTimeout.String()},
				Env:                      []corev1.EnvVar{{Name: MarkerEnv, Value: "1"}},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext: &corev1.SecurityContext{
					Privileged: ptr.To(true),
					RunAsUser:  ptr.To[int64](0),
				},
				// Ready while a helper command (keepalive, capture,
				// check, fix) runs: a plugin uses the pod. cleanup
				// leaves Ready pods alone.
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{HelperPath, "active"}}},
					PeriodSeconds:    2,
					TimeoutSeconds:   2,
					SuccessThreshold: 1,
					FailureThreshold: 1,
				},
				VolumeMounts: mounts,
			}},
			Volumes: volumes,
		},
	}
}

// Deps are what the plugin's engines talk to; tests replace them.
type Deps struct {
	Client     kubernetes.Interface
	Executor   Executor
	NameSuffix func() string
	// ErrOut receives the messages meant for the user (never the pcap):
	// warnings such as a node pod that could not be deleted. nil sends
	// them to the log.
	ErrOut io.Writer
}

// warn tells the user something went wrong that they may have to act on.
func (d Deps) warn(format string, args ...any) {
	if d.ErrOut == nil {
		klog.Warningf(format, args...)
		return
	}
	fmt.Fprintf(d.ErrOut, "warning: "+format+"\n", args...)
}

// NodeSession is a Running node-debug pod.
type NodeSession struct {
	deps Deps
	Pod  Pod

	// stopKeepalive ends the keepalive exec; keepaliveDone is closed when
	// it has returned.
	stopKeepalive func()
	keepaliveDone chan struct{}
}

// KeepaliveExecutor is an Executor that can hold a node pod's keepalive
// exec open for the pod's whole life (RemoteExecutor). Test fakes that
// replay one recorded output per exec are not, and their node pods get no
// keepalive.
type KeepaliveExecutor interface {
	Executor
	// HoldsKeepalive says the executor streams stdin for as long as the
	// exec lasts.
	HoldsKeepalive() bool
}

// StartNodePod creates the node-debug pod, waits until it runs, and starts
// its keepalive: `netdiag-helper keepalive` over exec with a heartbeat on
// stdin for as long as the session is open, so the pod's idle entrypoint
// stays between the helper runs (a --fix prompt may take minutes) and the
// pod ends about a minute after the plugin dies. On error, or when ctx is
// cancelled while the pod is being created or started, the pod is deleted
// (with a fresh context). Close deletes it.
func StartNodePod(ctx context.Context, deps Deps, spec NodePodSpec) (*NodeSession, error) {
	suffix := RandomSuffix()
	if deps.NameSuffix != nil {
		suffix = deps.NameSuffix()
	}
	pod := NewNodePod(spec, suffix)
	s := &NodeSession{deps: deps, Pod: Pod{Namespace: pod.Namespace, Name: pod.Name}}
	klog.V(2).Infof("creating node-debug pod %s/%s on node %s", pod.Namespace, pod.Name, spec.Node)
	created, err := deps.Client.CoreV1().Pods(spec.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted mid-request: the API server may have
			// created the pod anyway.
			s.deletePod()
			return nil, fmt.Errorf("interrupted while creating the node-debug pod %s/%s: %w", pod.Namespace, pod.Name, ctx.Err())
		}
		return nil, CreateNodePodAdvice(err, spec.Namespace)
	}
	s.Pod = Pod{Namespace: created.Namespace, Name: created.Name}
	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	if _, err := WaitForContainerRunning(ctx, deps.Client, s.Pod.Namespace, s.Pod.Name, NodeContainerName, timeout); err != nil {
		s.Close()
		return nil, err
	}
	if ctx.Err() != nil {
		s.Close()
		return nil, fmt.Errorf("interrupted while starting the node-debug pod %s/%s: %w", s.Pod.Namespace, s.Pod.Name, ctx.Err())
	}
	if ke, ok := deps.Executor.(KeepaliveExecutor); ok && ke.HoldsKeepalive() {
		s.startKeepalive(ke)
	}
	return s, nil
}

// KeepaliveArgs is the keepalive command line.
func KeepaliveArgs() []string {
	return []string{HelperPath, "keepalive", "--heartbeat", KeepaliveHeartbeat.String(), "--reap-after", KeepaliveReapAfter.String()}
}

// startKeepalive runs the keepalive until Close, sending a heartbeat byte
// every keepaliveEvery. When the exec breaks (a dropped connection), it is
// started again: the pod must not end under a live plugin.
func (s *NodeSession) startKeepalive(ex Executor) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopKeepalive, s.keepaliveDone = cancel, make(chan struct{})
	every := keepaliveEvery
	go func() {
		defer close(s.keepaliveDone)
		warned := false
		for ctx.Err() == nil {
			r, w := io.Pipe()
			go func() {
				Heartbeat(ctx, w, every)
				// EOF: the keepalive exits at once.
				_ = w.Close()
			}()
			var errb bytes.Buffer
			err := ex.Stream(ctx, s.Pod, NodeContainerName, KeepaliveArgs(), r, io.Discard, &errb)
			_ = r.CloseWithError(io.ErrClosedPipe)
			if ctx.Err() != nil {
				return
			}
			msg := strings.TrimSpace(errb.String())
			if !warned {
				s.deps.warn("the keepalive of node-debug pod %s/%s ended (%v%s); starting it again (without it the pod ends %s after the last helper run)",
					s.Pod.Namespace, s.Pod.Name, err, withMessage(msg), NodePodIdleTimeout)
				warned = true
			} else {
				klog.V(2).Infof("keepalive of %s/%s ended again: %v%s", s.Pod.Namespace, s.Pod.Name, err, withMessage(msg))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
}

// Close stops the keepalive and deletes the pod with a fresh context, so it
// also runs after Ctrl-C.
func (s *NodeSession) Close() {
	if s.stopKeepalive != nil {
		s.stopKeepalive()
		select {
		case <-s.keepaliveDone:
		case <-time.After(2 * time.Second):
		}
	}
	s.deletePod()
}

func (s *NodeSession) deletePod() {
	// An API server that is restarting answers again within seconds: keep
	// trying for a while, so a run that ends during an outage leaves no
	// pod behind once the API is back.
	ctx, cancel := context.WithTimeout(context.Background(), deleteRetryFor)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 10*time.Second)
		err := s.deps.Client.CoreV1().Pods(s.Pod.Namespace).Delete(attempt, s.Pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		cancelAttempt()
		if err == nil || apierrors.IsNotFound(err) {
			klog.V(2).Infof("deleted node-debug pod %s/%s", s.Pod.Namespace, s.Pod.Name)
			return
		}
		retry := !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err)
		if retry {
			select {
			case <-ctx.Done():
				retry = false
			case <-time.After(time.Second):
			}
		}
		if !retry {
			s.deps.warn("could not delete node-debug pod %s/%s: %v (it ends by itself once its helper is idle; or: kubectl delete pod %s -n %s)",
				s.Pod.Namespace, s.Pod.Name, err, s.Pod.Name, s.Pod.Namespace)
			return
		}
		klog.V(2).Infof("deleting node-debug pod %s/%s: %v; retrying", s.Pod.Namespace, s.Pod.Name, err)
	}
}

// deleteRetryFor bounds how long a node pod's deletion is retried.
var deleteRetryFor = 30 * time.Second

// Exec runs the helper with args (after /netdiag-helper) and parses its
// JSON lines.
func (s *NodeSession) Exec(ctx context.Context, args []string, stdin []byte) (*HelperReport, error) {
	var out, errb bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	cmd := append([]string{HelperPath}, args...)
	klog.V(3).Infof("exec in %s/%s: %s", s.Pod.Namespace, s.Pod.Name, strings.Join(cmd, " "))
	err := s.deps.Executor.Stream(ctx, s.Pod, NodeContainerName, cmd, in, &out, &errb)
	rep, perr := ParseHelperReport(out.Bytes())
	if err != nil {
		if rep != nil && rep.Error != "" {
			return rep, fmt.Errorf("the helper failed: %s", rep.Error)
		}
		if ctx.Err() != nil {
			return rep, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		msg := strings.TrimSpace(errb.String())
		if msg != "" {
			return rep, fmt.Errorf("running the helper: %w (stderr: %s)", &StreamError{err}, msg)
		}
		return rep, fmt.Errorf("running the helper: %w", &StreamError{err})
	}
	return rep, perr
}

// StreamError is an exec stream that failed under a helper that had not
// reported an error itself: the connection broke (an API server
// restarted), and a retry may succeed.
type StreamError struct{ Err error }

func (e *StreamError) Error() string { return e.Err.Error() }
func (e *StreamError) Unwrap() error { return e.Err }

// IsStreamError says whether err is (or wraps) a StreamError.
func IsStreamError(err error) bool {
	var se *StreamError
	return errors.As(err, &se)
}

// NodePodRunning says whether the node-debug pod still runs its helper;
// an error wrapping ErrPodGone says it never will again.
func NodePodRunning(ctx context.Context, client kubernetes.Interface, p Pod) error {
	pod, err := client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("node-debug pod %s/%s was deleted: %w", p.Namespace, p.Name, ErrPodGone)
	case err != nil:
		return fmt.Errorf("the API server does not answer: %w", err)
	case pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return fmt.Errorf("node-debug pod %s/%s ended: %w", p.Namespace, p.Name, ErrPodGone)
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name == NodeContainerName && st.State.Running != nil {
			return nil
		}
	}
	return fmt.Errorf("node-debug pod %s/%s does not run its helper", p.Namespace, p.Name)
}

// ErrPodGone marks a pod or container that will not run again.
var ErrPodGone = errors.New("gone")

// WaitUntil retries ready with backoff (0.5s doubling to 4s) until it
// succeeds, fails with ErrPodGone, ctx ends, or deadline passes.
func WaitUntil(ctx context.Context, deadline time.Time, ready func(context.Context) error) error {
	wait := 500 * time.Millisecond
	for {
		attempt, cancel := context.WithDeadline(ctx, deadline.Add(time.Second))
		err := ready(attempt)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrPodGone):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		klog.V(2).Infof("waiting: %v", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(wait, left)):
		}
		wait = min(2*wait, 4*time.Second)
	}
}

// HelperReport is one helper run's stdout: hello, findings or actions, done.
type HelperReport struct {
	Hello    protocol.Hello
	Findings []protocol.Finding
	// Actions are the {"type":"action"} lines of `netdiag-helper fix`.
	Actions []protocol.Action
	// Error is the message of an {"type":"error"} line, if any.
	Error string
}

// ErrCutShort says a helper stream lacked its hello or done line.
var ErrCutShort = protocol.ErrCutShort

// ParseHelperReport parses the helper's JSON lines (protocol.DecodeOutput):
// hello first, done last.
func ParseHelperReport(b []byte) (*HelperReport, error) {
	rep := &HelperReport{}
	msg, err := protocol.DecodeOutput(b, func(m protocol.Message) error {
		switch {
		case m.Hello != nil:
			rep.Hello = *m.Hello
		case m.Finding != nil:
			rep.Findings = append(rep.Findings, *m.Finding)
		case m.Action != nil:
			rep.Actions = append(rep.Actions, *m.Action)
		case m.Error != nil, m.Done != nil:
		default:
			klog.V(3).Infof("ignoring a helper line of type %q", m.Type)
		}
		return nil
	})
	rep.Error = msg
	return rep, err
}

// CreateNodePodAdvice turns an error from creating the node-debug pod into
// advice.
func CreateNodePodAdvice(err error, namespace string) error {
	switch {
	case IsPodSecurityRejection(err):
		return fmt.Errorf("the Pod Security policy of namespace %q refuses the node-debug pod (privileged, hostNetwork, hostPID, hostPath /): run it in a namespace labelled pod-security.kubernetes.io/enforce=privileged with -n (error from server: %v)", namespace, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you need `create` on `pods` in namespace %q to start the node-debug pod (check with: kubectl auth can-i create pods -n %s) (error from server: %v)", namespace, namespace, err)
	}
	return fmt.Errorf("creating the node-debug pod in namespace %q: %w", namespace, err)
}
