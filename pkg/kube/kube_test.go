package kube

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func TestNewEphemeralContainer(t *testing.T) {
	got := NewEphemeralContainer(EphemeralSpec{Image: "img:v1", PullPolicy: corev1.PullNever, TargetContainer: "app"}, "ab1cd")
	want := corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name:                     "netdiag-ab1cd",
			Image:                    "img:v1",
			ImagePullPolicy:          corev1.PullNever,
			Command:                  []string{"/netdiag-helper", "idle", "--timeout", "30m"},
			Env:                      []corev1.EnvVar{{Name: "NETDIAG", Value: "1"}},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			SecurityContext: &corev1.SecurityContext{
				RunAsUser:                ptr.To[int64](0),
				RunAsNonRoot:             ptr.To(false),
				Privileged:               ptr.To(false),
				AllowPrivilegeEscalation: ptr.To(false),
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_RAW", "NET_ADMIN"}},
			},
		},
		TargetContainerName: "app",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ephemeral container (-want +got):\n%s", d)
	}
	if s := RandomSuffix(); len(s) != 5 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("RandomSuffix() = %q, want 5 lower-case alphanumerics", s)
	}
}

func ec(name, image, target string) corev1.EphemeralContainer {
	return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: name, Image: image, Env: []corev1.EnvVar{{Name: "NETDIAG", Value: "1"}}, SecurityContext: EphemeralSecurityContext(),
	}, TargetContainerName: target}
}

func running(name string, at int64) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Unix(at, 0)}}}
}

func waiting(name, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func TestFindReusable(t *testing.T) {
	spec := EphemeralSpec{Image: "img:v1", TargetContainer: "app"}
	terminated := corev1.ContainerStatus{Name: "netdiag-dead1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}
	noMarker := ec("netdiag-aaaaa", "img:v1", "app")
	noMarker.Env = nil
	privileged := ec("netdiag-aaaaa", "img:v1", "app")
	privileged.SecurityContext.Privileged = ptr.To(true)
	oldStyle := ec("netdiag-aaaaa", "img:v1", "app") // before drop ALL
	oldStyle.SecurityContext.Capabilities.Drop = nil
	oldStyle.SecurityContext.AllowPrivilegeEscalation = nil
	oldStyle.SecurityContext.SeccompProfile = nil
	tests := []struct {
		name        string
		containers  []corev1.EphemeralContainer
		statuses    []corev1.ContainerStatus
		want        string
		wantRunning bool
	}{
		{"none", nil, nil, "", false},
		{"running match", []corev1.EphemeralContainer{ec("netdiag-aaaaa", "img:v1", "app")}, []corev1.ContainerStatus{running("netdiag-aaaaa", 1)}, "netdiag-aaaaa", true},
		{"other image", []corev1.EphemeralContainer{ec("netdiag-aaaaa", "img:v0", "app")}, []corev1.ContainerStatus{running("netdiag-aaaaa", 1)}, "", false},
		{"other target", []corev1.EphemeralContainer{ec("netdiag-aaaaa", "img:v1", "sidecar")}, []corev1.ContainerStatus{running("netdiag-aaaaa", 1)}, "", false},
		{"not ours: name", []corev1.EphemeralContainer{ec("debugger-xyz", "img:v1", "app")}, []corev1.ContainerStatus{running("debugger-xyz", 1)}, "", false},
		{"not ours: no marker env", []corev1.EphemeralContainer{noMarker}, []corev1.ContainerStatus{running("netdiag-aaaaa", 1)}, "", false},
		{"other security context: privileged", []corev1.EphemeralContainer{privileged}, []corev1.ContainerStatus{running("netdiag-aaaaa", 1)}, "", false},
		{"other security context: older plugin", []corev1.EphemeralContainer{oldStyle}, []corev1.ContainerStatus{running("netdiag-aaaaa", 1)}, "", false},
		{"terminated", []corev1.EphemeralContainer{ec("netdiag-dead1", "img:v1", "app")}, []corev1.ContainerStatus{terminated}, "", false},
		{"waiting (failed pull)", []corev1.EphemeralContainer{ec("netdiag-aaaaa", "img:v1", "app")}, []corev1.ContainerStatus{waiting("netdiag-aaaaa", "ErrImageNeverPull")}, "netdiag-aaaaa", false},
		{"no status yet", []corev1.EphemeralContainer{ec("netdiag-aaaaa", "img:v1", "app")}, nil, "netdiag-aaaaa", false},
		{"running wins over waiting", []corev1.EphemeralContainer{ec("netdiag-run11", "img:v1", "app"), ec("netdiag-wait1", "img:v1", "app")},
			[]corev1.ContainerStatus{running("netdiag-run11", 1), waiting("netdiag-wait1", "ContainerCreating")}, "netdiag-run11", true},
		{"newest of two waiting", []corev1.EphemeralContainer{ec("netdiag-old11", "img:v1", "app"), ec("netdiag-new11", "img:v1", "app")},
			[]corev1.ContainerStatus{waiting("netdiag-old11", "ErrImagePull"), waiting("netdiag-new11", "ErrImagePull")}, "netdiag-new11", false},
		{"newest of two", []corev1.EphemeralContainer{ec("netdiag-new11", "img:v1", "app"), ec("netdiag-old11", "img:v1", "app")},
			[]corev1.ContainerStatus{running("netdiag-new11", 200), running("netdiag-old11", 100)}, "netdiag-new11", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{EphemeralContainers: tt.containers}, Status: corev1.PodStatus{EphemeralContainerStatuses: tt.statuses}}
			got, gotRunning := FindReusableContainer(pod, spec)
			if got != tt.want || gotRunning != tt.wantRunning {
				t.Errorf("FindReusableContainer = %q, running %v; want %q, running %v", got, gotRunning, tt.want, tt.wantRunning)
			}
			if got := FindReusable(pod, spec); got != tt.want {
				t.Errorf("FindReusable = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultContainer(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}}
	if got := DefaultContainer(pod); got != "a" {
		t.Errorf("got %q, want a", got)
	}
	pod.Annotations = map[string]string{DefaultContainerAnnotation: "b"}
	if got := DefaultContainer(pod); got != "b" {
		t.Errorf("got %q, want b", got)
	}
	pod.Annotations[DefaultContainerAnnotation] = "gone"
	if got := DefaultContainer(pod); got != "a" {
		t.Errorf("got %q, want a", got)
	}
}

func TestPatchAdvice(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"feature disabled", apierrors.NewNotFound(gr, ""), `ephemeral containers are disabled on this cluster (error from server: pods "" not found)`},
		{"pod gone", apierrors.NewNotFound(gr, "web-0"), `pod "web-0" not found in namespace "shop": it was deleted before the netdiag container could be added`},
		{"rbac", apierrors.NewForbidden(gr, "web-0", errors.New("no")), "you need `patch` on `pods/ephemeralcontainers` in namespace \"shop\" to add the netdiag container (check with: kubectl auth can-i patch pods --subresource=ephemeralcontainers -n shop)"},
		{"pod security", apierrors.NewForbidden(gr, "web-0", errors.New(`violates PodSecurity "baseline:latest": non-default capabilities`)), `the Pod Security policy of namespace "shop" refuses the netdiag container: it needs the capabilities NET_RAW and NET_ADMIN and runAsUser 0 to capture`},
	}
	for _, tt := range tests {
		got := PatchAdvice(tt.err, "shop", "web-0").Error()
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s:\n got %s\nwant prefix %s", tt.name, got, tt.want)
		}
	}
}

func TestEphemeralRunning(t *testing.T) {
	pod := func(st corev1.ContainerState) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"},
			Spec:       corev1.PodSpec{NodeName: "node-1", EphemeralContainers: []corev1.EphemeralContainer{ec("netdiag-x", "img:v1", "app")}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "netdiag-x", State: st}}},
		}
	}
	tests := []struct {
		name    string
		state   corev1.ContainerState
		done    bool
		wantErr string
	}{
		{"running", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, true, ""},
		{"creating", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}, false, ""},
		{"never pull", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "not present"}}, false,
			"the helper image img:v1 is not on node node-1 and the pull policy is Never (ErrImageNeverPull: not present): let the node pull it (--image-pull-policy IfNotPresent), or point --image or KUBECTL_NETDIAG_IMAGE at an image the node has"},
		{"backoff", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "back-off"}}, false,
			"node node-1 cannot pull the helper image img:v1 (ImagePullBackOff: back-off): check that the node reaches the container runtime's default registry and, for a private registry, give it a pull secret (--image-pull-secret for node pods); or mirror the image (crane copy keeps its digest) to a registry the node can pull from and point --image or KUBECTL_NETDIAG_IMAGE at the copy"},
		{"create error", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: "no such file"}}, false,
			"the netdiag container netdiag-x cannot start in pod shop/web-0 on node node-1: CreateContainerError: no such file"},
		{"terminated", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}}, false,
			"the netdiag container netdiag-x in pod shop/web-0 terminated before the capture could start: Error, exit code 2"},
	}
	for _, tt := range tests {
		done, _, err := ephemeralRunning(pod(tt.state), "netdiag-x")
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if done != tt.done || gotErr != tt.wantErr {
			t.Errorf("%s: got (%v, %q), want (%v, %q)", tt.name, done, gotErr, tt.done, tt.wantErr)
		}
	}
	_ = time.Second
}

func TestRegistryOf(t *testing.T) {
	for image, want := range map[string]string{
		"localhost:5000/netdiag-helper@sha256:ab": "the registry localhost:5000",
		"registry.example/team/netdiag-helper:v1": "the registry registry.example",
		"localhost/netdiag-helper:dev":            "the registry localhost",
		"team/netdiag-helper:v1":                  "the container runtime's default registry",
		"netdiag-helper":                          "the container runtime's default registry",
	} {
		if got := registryOf(image); got != want {
			t.Errorf("registryOf(%q) = %q, want %q", image, got, want)
		}
	}
}
