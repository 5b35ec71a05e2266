package kube

import (
	"bufio"
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
	// HostMountPath is where the node's / is mounted in the node-debug pod.
	HostMountPath = "/host"
	// NodePodDeadline bounds a node-debug pod's life even if the plugin is
	// killed before it can delete it.
	NodePodDeadline int64 = 600
	// NodePodIdleTimeout is the idle entrypoint's own timeout.
	NodePodIdleTimeout = "10m"
)

// NodePodSpec says what node-debug pod is wanted.
type NodePodSpec struct {
	Node       string
	Namespace  string
	Image      string
	PullPolicy corev1.PullPolicy
	// PullSecrets are the pod's imagePullSecrets, for a private registry.
	PullSecrets []corev1.LocalObjectReference
	// Writable mounts the host's / read-write (a --fix or --kill needs it);
	// otherwise it is read-only.
	Writable bool
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
// privileged helper container, the host's / at /host (read-only unless
// spec.Writable), pinned to the node and tolerating every taint, and a
// deadline so it ends even when nobody deletes it.
func NewNodePod(spec NodePodSpec, nameSuffix string) *corev1.Pod {
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
			ActiveDeadlineSeconds:         ptr.To(NodePodDeadline),
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			ImagePullSecrets:              spec.PullSecrets,
			Containers: []corev1.Container{{
				Name:                     NodeContainerName,
				Image:                    spec.Image,
				ImagePullPolicy:          spec.PullPolicy,
				Command:                  []string{HelperPath, "idle", "--timeout", NodePodIdleTimeout},
				Env:                      []corev1.EnvVar{{Name: MarkerEnv, Value: "1"}},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext: &corev1.SecurityContext{
					Privileged: ptr.To(true),
					RunAsUser:  ptr.To[int64](0),
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "host", MountPath: HostMountPath, ReadOnly: !spec.Writable}},
			}},
			Volumes: []corev1.Volume{{
				Name:         "host",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}},
			}},
		},
	}
}

// NodeDeps are what a node-debug run talks to.
type NodeDeps struct {
	Client     kubernetes.Interface
	Executor   Executor
	NameSuffix func() string
	// StartTimeout bounds the wait for the pod to run.
	StartTimeout time.Duration
}

// NodeSession is a Running node-debug pod.
type NodeSession struct {
	deps NodeDeps
	Pod  Pod
}

// StartNodePod creates the node-debug pod and waits until it runs. On error
// the pod is already deleted. Close deletes it.
func StartNodePod(ctx context.Context, deps NodeDeps, spec NodePodSpec) (*NodeSession, error) {
	suffix := RandomSuffix()
	if deps.NameSuffix != nil {
		suffix = deps.NameSuffix()
	}
	pod := NewNodePod(spec, suffix)
	klog.V(2).Infof("creating node-debug pod %s/%s on node %s", pod.Namespace, pod.Name, spec.Node)
	created, err := deps.Client.CoreV1().Pods(spec.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, CreateNodePodAdvice(err, spec.Namespace)
	}
	s := &NodeSession{deps: deps, Pod: Pod{Namespace: created.Namespace, Name: created.Name}}
	timeout := deps.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	if _, err := WaitForContainerRunning(ctx, deps.Client, s.Pod.Namespace, s.Pod.Name, NodeContainerName, timeout); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close deletes the pod with a fresh context, so it also runs after Ctrl-C.
func (s *NodeSession) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := s.deps.Client.CoreV1().Pods(s.Pod.Namespace).Delete(ctx, s.Pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		klog.Warningf("could not delete node-debug pod %s/%s: %v (it ends by itself within %ds; or: kubectl delete pod %s -n %s)",
			s.Pod.Namespace, s.Pod.Name, err, NodePodDeadline, s.Pod.Name, s.Pod.Namespace)
		return
	}
	klog.V(2).Infof("deleted node-debug pod %s/%s", s.Pod.Namespace, s.Pod.Name)
}

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
			return rep, fmt.Errorf("running the helper: %w (stderr: %s)", err, msg)
		}
		return rep, fmt.Errorf("running the helper: %w", err)
	}
	return rep, perr
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
var ErrCutShort = errors.New("the helper's report was cut short")

// ParseHelperReport parses the helper's JSON lines: hello first, done last.
func ParseHelperReport(b []byte) (*HelperReport, error) {
	rep := &HelperReport{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	n := 0
	done := false
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		l, err := protocol.ParseLine(line)
		if err != nil {
			return rep, err
		}
		if done {
			return rep, fmt.Errorf("%w: a %q line came after done", ErrCutShort, l.Type)
		}
		if n == 0 && l.Type != protocol.TypeHello {
			return rep, fmt.Errorf("%w: the first line is %q, not hello", ErrCutShort, l.Type)
		}
		n++
		switch l.Type {
		case protocol.TypeHello:
			if err := l.Decode(&rep.Hello); err != nil {
				return rep, fmt.Errorf("decoding the helper's hello: %w", err)
			}
			if rep.Hello.Protocol != protocol.Version {
				return rep, fmt.Errorf("the helper speaks protocol %d, this plugin %d: use a helper image of the same version (--image)", rep.Hello.Protocol, protocol.Version)
			}
		case protocol.TypeFinding:
			var f protocol.Finding
			if err := l.Decode(&f); err != nil {
				return rep, fmt.Errorf("decoding a finding: %w", err)
			}
			rep.Findings = append(rep.Findings, f)
		case protocol.TypeError:
			var e protocol.Error
			_ = l.Decode(&e)
			rep.Error = e.Message
		case protocol.TypeDone:
			done = true
		case protocol.TypeAction:
			var a protocol.Action
			if err := l.Decode(&a); err != nil {
				return rep, fmt.Errorf("decoding an action: %w", err)
			}
			rep.Actions = append(rep.Actions, a)
		default:
			klog.V(3).Infof("ignoring a helper line of type %q", l.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("reading the helper's report: %w", err)
	}
	if n == 0 {
		return rep, fmt.Errorf("%w: the helper wrote nothing", ErrCutShort)
	}
	if !done {
		if rep.Error != "" {
			return rep, fmt.Errorf("%w: %s", ErrCutShort, rep.Error)
		}
		return rep, fmt.Errorf("%w (no done line)", ErrCutShort)
	}
	return rep, nil
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
