package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// failingWaitReasons are waiting reasons that will not fix themselves in time
// for a capture: waiting longer only hides the cause.
var failingWaitReasons = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"ErrImageNeverPull":          true,
	"InvalidImageName":           true,
	"CreateContainerError":       true,
	"CreateContainerConfigError": true,
	"RunContainerError":          true,
	"PreCreateHookError":         true,
	"PreStartHookError":          true,
}

// CannotStart says whether a container waiting for reason will not get to
// run by waiting (an image that cannot be pulled, a bad config).
func CannotStart(reason string) bool { return failingWaitReasons[reason] }

// WaitForEphemeralRunning waits until the ephemeral container named container
// in the pod is Running, and fails at once when it cannot get there.
func WaitForEphemeralRunning(ctx context.Context, client kubernetes.Interface, namespace, podName, container string, timeout time.Duration) (*corev1.Pod, error) {
	return waitRunning(ctx, client, namespace, podName, container, timeout, ephemeralRunning)
}

// WaitForContainerRunning waits until the regular container named container
// of the pod (a node-debug pod) is Running, and fails at once when it cannot
// get there (image missing, pod failed, ...), with the same advice as
// WaitForEphemeralRunning.
func WaitForContainerRunning(ctx context.Context, client kubernetes.Interface, namespace, podName, container string, timeout time.Duration) (*corev1.Pod, error) {
	return waitRunning(ctx, client, namespace, podName, container, timeout, regularRunning)
}

// runningFunc looks at one version of a pod: done, a state for messages, or
// an error that waiting will not fix.
type runningFunc func(pod *corev1.Pod, container string) (bool, string, error)

// waitRunning waits with client-go's watch tools (UntilWithSync: an
// informer on the one pod, which relists and rewatches by itself when a
// watch expires or breaks) until isRunning says done, says it cannot get
// there, or the pod goes away.
//
// Its list is a Get of the pod, so the wait needs get and watch on pods (as
// CaptureAccess checks), not list; its watch selects the pod by name. An
// API error waiting will not fix (the first Get, a refused watch) ends the
// wait at once with that error, as a deleted pod does; client-go would
// otherwise retry it, and log it on the user's terminal, until the timeout.
func waitRunning(ctx context.Context, client kubernetes.Interface, namespace, podName, container string, timeout time.Duration, isRunning runningFunc) (*corev1.Pod, error) {
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	defer cancelTimeout()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	end := func(err error) { stop(waitEnded{err}) }

	pods := client.CoreV1().Pods(namespace)
	key := namespace + "/" + podName
	listed := false // only the informer's goroutine reads and writes it
	lw := &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			pod, err := pods.Get(ctx, podName, metav1.GetOptions{})
			switch {
			case err == nil:
				listed = true
				return &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: pod.ResourceVersion}, Items: []corev1.Pod{*pod}}, nil
			case ctx.Err() != nil:
				// Timed out or interrupted: the wait is ending.
			case listed && apierrors.IsNotFound(err):
				end(deletedError(key))
			default:
				end(fmt.Errorf("reading pod %s: %w", key, err))
			}
			// Not an error: the informer would retry it and log it.
			return &corev1.PodList{}, nil
		},
		WatchFuncWithContext: func(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if ctx.Err() != nil {
				return watch.NewFake(), nil
			}
			opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", podName).String()
			w, err := pods.Watch(ctx, opts)
			if err == nil {
				return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
					if ev.Type != watch.Error {
						return ev, true
					}
					err := apierrors.FromObject(ev.Object)
					if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
						return ev, true // the informer relists
					}
					end(fmt.Errorf("watching the pod: %w", err))
					return ev, false
				}), nil
			}
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return nil, err // the informer relists
			}
			if ctx.Err() == nil {
				end(fmt.Errorf("watching pod %s: %w", key, err))
			}
			return watch.NewFake(), nil
		},
	}

	lastState := "not yet reported by the kubelet"
	var running *corev1.Pod
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			name := "?"
			if pod, ok := ev.Object.(*corev1.Pod); ok && pod != nil {
				name = pod.Namespace + "/" + pod.Name
			}
			return false, deletedError(name)
		case watch.Added, watch.Modified:
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				return false, nil
			}
			done, state, err := isRunning(pod, container)
			lastState = state
			if done && err == nil {
				running = pod
			}
			return done, err
		}
		return false, nil
	})
	if err == nil && running != nil {
		return running, nil
	}
	var ended waitEnded
	if errors.As(context.Cause(ctx), &ended) {
		return nil, ended.err
	}
	if ctx.Err() != nil {
		return nil, waitTimeoutError(ctx, timeout, namespace, podName, container, lastState)
	}
	if err == nil {
		err = fmt.Errorf("the wait for pod %s ended without the netdiag container %s running", key, container)
	}
	return nil, err
}

// waitEnded is why waitRunning's informer stopped the wait.
type waitEnded struct{ err error }

func (w waitEnded) Error() string { return w.err.Error() }

func deletedError(pod string) error {
	return fmt.Errorf("pod %s was deleted while waiting for the netdiag container", pod)
}

// ephemeralRunning looks at one version of the pod.
func ephemeralRunning(pod *corev1.Pod, container string) (bool, string, error) {
	return containerRunning(pod, container, pod.Status.EphemeralContainerStatuses, "before the capture could start")
}

// regularRunning looks at one version of a pod for one of its containers.
func regularRunning(pod *corev1.Pod, container string) (bool, string, error) {
	return containerRunning(pod, container, pod.Status.ContainerStatuses, "before the helper could run")
}

func containerRunning(pod *corev1.Pod, container string, statuses []corev1.ContainerStatus, before string) (bool, string, error) {
	if pod.DeletionTimestamp != nil {
		return false, "", fmt.Errorf("pod %s/%s is being deleted", pod.Namespace, pod.Name)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false, "", fmt.Errorf("pod %s/%s finished (phase %s) while waiting for the netdiag container", pod.Namespace, pod.Name, pod.Status.Phase)
	}
	var st *corev1.ContainerStatus
	for i := range statuses {
		if statuses[i].Name == container {
			st = &statuses[i]
		}
	}
	if st == nil {
		return false, "not yet reported by the kubelet", nil
	}
	switch {
	case st.State.Running != nil:
		return true, "running", nil
	case st.State.Terminated != nil:
		t := st.State.Terminated
		return false, "terminated", fmt.Errorf("the netdiag container %s in pod %s/%s terminated %s: %s, exit code %d%s",
			container, pod.Namespace, pod.Name, before, orDefault(t.Reason, "Terminated"), t.ExitCode, withMessage(t.Message))
	case st.State.Waiting != nil:
		wt := st.State.Waiting
		state := "waiting: " + orDefault(wt.Reason, "no reason given")
		if failingWaitReasons[wt.Reason] {
			return false, state, waitingAdvice(pod, st, wt)
		}
		return false, state, nil
	}
	return false, "unknown", nil
}

func waitingAdvice(pod *corev1.Pod, st *corev1.ContainerStatus, wt *corev1.ContainerStateWaiting) error {
	node := orDefault(pod.Spec.NodeName, "(unscheduled)")
	image := st.Image
	for _, ec := range pod.Spec.EphemeralContainers {
		if ec.Name == st.Name {
			image = ec.Image
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == st.Name {
			image = c.Image
		}
	}
	switch wt.Reason {
	case "ErrImageNeverPull":
		return fmt.Errorf("the helper image %s is not on node %s and the pull policy is Never (%s%s): let the node pull it (--image-pull-policy IfNotPresent), or point --image or KUBECTL_NETDIAG_IMAGE at an image the node has", image, node, wt.Reason, withMessage(wt.Message))
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName":
		return fmt.Errorf("node %s cannot pull the helper image %s (%s%s): check that the node reaches %s and, for a private registry, give it a pull secret (--image-pull-secret for node pods); or mirror the image (crane copy keeps its digest) to a registry the node can pull from and point --image or KUBECTL_NETDIAG_IMAGE at the copy", node, image, wt.Reason, withMessage(wt.Message), registryOf(image))
	}
	return fmt.Errorf("the netdiag container %s cannot start in pod %s/%s on node %s: %s%s", st.Name, pod.Namespace, pod.Name, node, wt.Reason, withMessage(wt.Message))
}

func waitTimeoutError(ctx context.Context, timeout time.Duration, namespace, pod, container, lastState string) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("interrupted while waiting for the netdiag container %s in pod %s/%s to start", container, namespace, pod)
	}
	return fmt.Errorf("timed out after %s waiting for the netdiag container %s in pod %s/%s to start (last state: %s); raise --timeout or look at: kubectl describe pod %s -n %s",
		timeout, container, namespace, pod, lastState, pod, namespace)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func withMessage(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

// registryOf names the registry of an image reference for a message: its
// host when the reference has one, else the runtime's default registry.
func registryOf(image string) string {
	host, _, found := strings.Cut(image, "/")
	if found && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return "the registry " + host
	}
	return "the container runtime's default registry"
}
