package nodeops

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
)

// NodePod is a node-debug pod and what cleanup makes of it: Live when a
// plugin uses it (its readiness probe sees a helper command running), and
// why in words.
type NodePod struct {
	Pod  *corev1.Pod
	Live bool
	Why  string
}

// Container is one netdiag ephemeral container: ephemeral containers cannot
// be removed, so cleanup only reports them.
type Container struct {
	Namespace, Pod string
	// Text describes the container and its state.
	Text string
}

// Leftovers is what runs left in the cluster.
type Leftovers struct {
	// Where names the namespace looked at, for messages.
	Where string
	// Ended are node-debug pods nobody uses any more; Live the ones in
	// use, maybe by another user's run.
	Ended, Live []NodePod
	Containers  []Container
}

// FindLeftovers lists the node-debug pods and netdiag ephemeral containers
// in namespace ("" is every namespace).
func FindLeftovers(ctx context.Context, client kubernetes.Interface, namespace string) (*Leftovers, error) {
	where := fmt.Sprintf("namespace %q", namespace)
	canI := " -n " + namespace
	if namespace == metav1.NamespaceAll {
		where, canI = "any namespace", " --all-namespaces"
	}
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("you need `list` on `pods` in %s (check with: kubectl auth can-i list pods%s) (error from server: %v)", where, canI, err)
	case err != nil:
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	items := pods.Items
	sort.Slice(items, func(i, j int) bool {
		return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
	})
	l := &Leftovers{Where: where}
	for i := range items {
		p := &items[i]
		if p.Labels[kube.ManagedByLabel] == kube.ManagedByValue {
			live, why := NodePodState(p)
			if live {
				l.Live = append(l.Live, NodePod{p, true, why})
			} else {
				l.Ended = append(l.Ended, NodePod{p, false, why})
			}
			continue
		}
		for _, text := range netdiagContainers(p) {
			l.Containers = append(l.Containers, Container{Namespace: p.Namespace, Pod: p.Name, Text: text})
		}
	}
	return l, nil
}

// DeleteNodePod deletes a node-debug pod at once. deleted is false for a
// pod already gone, which is no error.
func DeleteNodePod(ctx context.Context, client kubernetes.Interface, np NodePod) (deleted bool, err error) {
	p := np.Pod
	err = client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil // gone meanwhile
	case apierrors.IsForbidden(err):
		return false, fmt.Errorf("you need `delete` on `pods` in namespace %q to delete %s (check with: kubectl auth can-i delete pods -n %s)", p.Namespace, p.Name, p.Namespace)
	case err != nil:
		return false, fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return true, nil
}

// NodePodState says whether a node-debug pod is live (a plugin uses it:
// its readiness probe, `netdiag-helper active`, sees a keepalive, capture,
// check or fix running in it), and why in words.
func NodePodState(p *corev1.Pod) (bool, string) {
	if p.DeletionTimestamp != nil {
		return false, "being deleted"
	}
	var st *corev1.ContainerStatus
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == kube.NodeContainerName {
			st = &p.Status.ContainerStatuses[i]
		}
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		why := "ended (" + string(p.Status.Phase)
		if p.Status.Reason != "" {
			why += ": " + p.Status.Reason
		}
		return false, why + ")"
	case corev1.PodRunning:
		if st == nil || st.State.Running == nil {
			return false, "its helper is not running any more"
		}
		if st.Ready {
			return true, "running its helper"
		}
		return false, "idle: no plugin uses it any more (it ends by itself within a minute)"
	case corev1.PodPending:
		if st != nil && st.State.Waiting != nil && st.State.Waiting.Reason != "" {
			return false, "its helper is not running (" + st.State.Waiting.Reason + ")"
		}
		return false, "its helper is not running (Pending)"
	}
	return false, fmt.Sprintf("its helper is not running (phase %q)", or(string(p.Status.Phase), "Unknown"))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// netdiagContainers describes each netdiag ephemeral container of the pod,
// whatever its state.
func netdiagContainers(p *corev1.Pod) []string {
	statuses := map[string]corev1.ContainerStatus{}
	for _, st := range p.Status.EphemeralContainerStatuses {
		statuses[st.Name] = st
	}
	var out []string
	for i := range p.Spec.EphemeralContainers {
		ec := &p.Spec.EphemeralContainers[i]
		if !kube.IsNetdiagContainer(ec) {
			continue
		}
		st, ok := statuses[ec.Name]
		var state string
		switch {
		case !ok:
			state = "waiting (not yet reported by the kubelet)"
		case st.State.Running != nil:
			state = fmt.Sprintf("running (its helper exits %s after its last capture)", kube.IdleTimeout)
		case st.State.Waiting != nil:
			state = "waiting (" + or(st.State.Waiting.Reason, "no reason given") + ")"
		case st.State.Terminated != nil:
			state = "terminated"
		default:
			state = "state unknown"
		}
		out = append(out, fmt.Sprintf("netdiag container %s (image %s): %s", ec.Name, ec.Image, state))
	}
	return out
}
