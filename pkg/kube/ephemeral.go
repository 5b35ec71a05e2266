// Package kube holds the plugin's Kubernetes plumbing: the netdiag ephemeral
// container, waiting for it, and exec streams into it.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	// NamePrefix starts the name of every netdiag ephemeral container.
	// Ephemeral containers have no labels: the prefix, the NETDIAG env var
	// and the image are how we recognise ours.
	NamePrefix = "netdiag-"
	// MarkerEnv is set to "1" in every netdiag ephemeral container.
	MarkerEnv = "NETDIAG"
	// HelperPath is where the helper binary lives in the helper image.
	HelperPath = "/netdiag-helper"
	// IdleTimeout is how long an injected container lives. An ephemeral
	// container cannot be removed; once its idle process exits it stays
	// Terminated and costs nothing.
	IdleTimeout = "30m"
	// DefaultContainerAnnotation names the container kubectl picks by default.
	DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"
)

// EphemeralSpec says what netdiag container is wanted.
type EphemeralSpec struct {
	Image           string
	PullPolicy      corev1.PullPolicy
	TargetContainer string
}

// RandomSuffix returns 5 random lower-case alphanumeric characters.
func RandomSuffix() string { return utilrand.String(5) }

// NewEphemeralContainer builds the netdiag ephemeral container. It is not
// privileged: every capability is dropped and only NET_RAW and NET_ADMIN
// added back, privilege escalation is off, the runtime's default seccomp
// profile applies, and runAsUser 0 is set on the container so a pod-level
// runAsUser/runAsNonRoot cannot silently drop the capabilities.
func NewEphemeralContainer(spec EphemeralSpec, nameSuffix string) corev1.EphemeralContainer {
	return corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name:                     NamePrefix + nameSuffix,
			Image:                    spec.Image,
			ImagePullPolicy:          spec.PullPolicy,
			Command:                  []string{HelperPath, "idle", "--timeout", IdleTimeout},
			Env:                      []corev1.EnvVar{{Name: MarkerEnv, Value: "1"}},
			Stdin:                    false,
			TTY:                      false,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			SecurityContext:          EphemeralSecurityContext(),
		},
		TargetContainerName: spec.TargetContainer,
	}
}

// EphemeralSecurityContext is the netdiag ephemeral container's security
// context. A container is reused only when it has exactly this one.
func EphemeralSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                ptr.To[int64](0),
		RunAsNonRoot:             ptr.To(false),
		Privileged:               ptr.To(false),
		AllowPrivilegeEscalation: ptr.To(false),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		Capabilities: &corev1.Capabilities{
			Drop: []corev1.Capability{"ALL"},
			Add:  []corev1.Capability{"NET_RAW", "NET_ADMIN"},
		},
	}
}

// IsNetdiagContainer says whether an ephemeral container carries our marks:
// the name prefix and the marker env var.
func IsNetdiagContainer(ec *corev1.EphemeralContainer) bool {
	if !strings.HasPrefix(ec.Name, NamePrefix) {
		return false
	}
	for _, e := range ec.Env {
		if e.Name == MarkerEnv && e.Value == "1" {
			return true
		}
	}
	return false
}

// FindReusable returns the name of a netdiag ephemeral container in the pod
// that may be used instead of adding one (see FindReusableContainer), or "".
func FindReusable(pod *corev1.Pod, spec EphemeralSpec) string {
	name, _ := FindReusableContainer(pod, spec)
	return name
}

// FindReusableContainer returns a netdiag ephemeral container of the pod
// that may be used instead of adding one: ours (name prefix and marker env),
// with exactly our security context, the same image and target container,
// and Running (the newest if several) or else Waiting or not yet reported
// (the newest: a retry after a failed pull must not add another container;
// waiting on it again gives the same advice). running says which; a
// reused container that is not running must be waited for. "" when a new
// one must be added.
func FindReusableContainer(pod *corev1.Pod, spec EphemeralSpec) (name string, running bool) {
	statuses := map[string]corev1.ContainerStatus{}
	for _, s := range pod.Status.EphemeralContainerStatuses {
		statuses[s.Name] = s
	}
	want := EphemeralSecurityContext()
	waiting := ""
	var bestStart metav1.Time
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		if !IsNetdiagContainer(ec) || ec.Image != spec.Image || ec.TargetContainerName != spec.TargetContainer ||
			!apiequality.Semantic.DeepEqual(ec.SecurityContext, want) {
			continue
		}
		st, ok := statuses[ec.Name]
		switch {
		case !ok || st.State.Waiting != nil:
			waiting = ec.Name // later in the spec is newer
		case st.State.Running != nil:
			// Later in the spec is newer; a later start time wins over that.
			if name == "" || !st.State.Running.StartedAt.Before(&bestStart) {
				name, bestStart = ec.Name, st.State.Running.StartedAt
			}
		}
	}
	if name != "" {
		return name, true
	}
	return waiting, false
}

// DefaultContainer is the container kubectl would pick: the
// kubectl.kubernetes.io/default-container annotation if it names a container
// of the pod, else the first container.
func DefaultContainer(pod *corev1.Pod) string {
	if name := pod.Annotations[DefaultContainerAnnotation]; name != "" {
		for _, c := range pod.Spec.Containers {
			if c.Name == name {
				return name
			}
		}
		klog.V(2).Infof("annotation %s names %q, which pod %s/%s does not have; using its first container", DefaultContainerAnnotation, name, pod.Namespace, pod.Name)
	}
	if len(pod.Spec.Containers) == 0 {
		return ""
	}
	return pod.Spec.Containers[0].Name
}

// AddEphemeralContainer patches the pod's ephemeralcontainers subresource to
// add ec, the way kubectl debug does, and turns API errors into advice.
func AddEphemeralContainer(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, ec corev1.EphemeralContainer) (*corev1.Pod, error) {
	podJS, err := json.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("encoding pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	updated := pod.DeepCopy()
	updated.Spec.EphemeralContainers = append(updated.Spec.EphemeralContainers, ec)
	updatedJS, err := json.Marshal(updated)
	if err != nil {
		return nil, fmt.Errorf("encoding pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(podJS, updatedJS, pod)
	if err != nil {
		return nil, fmt.Errorf("creating the patch that adds the netdiag container: %w", err)
	}
	klog.V(2).Infof("patching pods/%s/ephemeralcontainers in namespace %s: %s", pod.Name, pod.Namespace, patch)
	result, err := client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "ephemeralcontainers")
	if err != nil {
		return nil, PatchAdvice(err, pod.Namespace, pod.Name)
	}
	return result, nil
}

// PatchAdvice turns an error from the ephemeralcontainers patch into advice.
func PatchAdvice(err error, namespace, pod string) error {
	var status apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s
	}
	switch {
	case apierrors.IsNotFound(err) && (status == nil || status.Status().Details == nil || status.Status().Details.Name == ""):
		// A missing pod names itself in the details; a missing
		// subresource (feature disabled) does not.
		return fmt.Errorf("ephemeral containers are disabled on this cluster (error from server: %v)", err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("pod %q not found in namespace %q: it was deleted before the netdiag container could be added", pod, namespace)
	case IsPodSecurityRejection(err):
		return fmt.Errorf("the Pod Security policy of namespace %q refuses the netdiag container: it needs the capabilities NET_RAW and NET_ADMIN and runAsUser 0 to capture (error from server: %v)", namespace, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you need `patch` on `pods/ephemeralcontainers` in namespace %q to add the netdiag container (check with: kubectl auth can-i patch pods --subresource=ephemeralcontainers -n %s) (error from server: %v)", namespace, namespace, err)
	}
	return fmt.Errorf("adding the netdiag container to pod %s/%s: %w", namespace, pod, err)
}

// IsPodSecurityRejection reports whether err is Pod Security admission
// refusing a pod (it answers 403 with "violates PodSecurity").
func IsPodSecurityRejection(err error) bool {
	return err != nil && apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity")
}
