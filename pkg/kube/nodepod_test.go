package kube

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func TestNewNodePod(t *testing.T) {
	hostRO := corev1.VolumeMount{Name: "host", MountPath: "/host", ReadOnly: true}
	hostVol := corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}
	sysctlRW := corev1.VolumeMount{Name: "sysctl-d", MountPath: "/host/etc/sysctl.d"}
	sysctlVol := corev1.Volume{Name: "sysctl-d", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: "/etc/sysctl.d", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}}
	for _, tt := range []struct {
		name     string
		writable bool
		work     time.Duration
		deadline *int64
		mounts   []corev1.VolumeMount
		volumes  []corev1.Volume
	}{
		{name: "open-ended, read-only", mounts: []corev1.VolumeMount{hostRO}, volumes: []corev1.Volume{hostVol}},
		{name: "writable: only sysctl.d", writable: true,
			mounts: []corev1.VolumeMount{hostRO, sysctlRW}, volumes: []corev1.Volume{hostVol, sysctlVol}},
		{name: "bounded: work plus margin", work: 20*time.Minute + 500*time.Millisecond, deadline: ptr.To[int64](20*60 + 1 + 120),
			mounts: []corev1.VolumeMount{hostRO}, volumes: []corev1.Volume{hostVol}},
	} {
		got := NewNodePod(NodePodSpec{Node: "node-1", Namespace: "ops", Image: "img:v1", PullPolicy: corev1.PullNever, PullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}, Writable: tt.writable, WorkDuration: tt.work}, "ab1cd")
		want := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:      "netdiag-node-node-1-ab1cd",
				Namespace: "ops",
				Labels:    map[string]string{"app.kubernetes.io/managed-by": "kubectl-netdiag"},
			},
			Spec: corev1.PodSpec{
				NodeName:                      "node-1",
				HostNetwork:                   true,
				HostPID:                       true,
				RestartPolicy:                 corev1.RestartPolicyNever,
				ActiveDeadlineSeconds:         tt.deadline,
				TerminationGracePeriodSeconds: ptr.To[int64](0),
				AutomountServiceAccountToken:  ptr.To(false),
				EnableServiceLinks:            ptr.To(false),
				Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				ImagePullSecrets:              []corev1.LocalObjectReference{{Name: "regcred"}},
				Containers: []corev1.Container{{
					Name:                     "netdiag",
					Image:                    "img:v1",
					ImagePullPolicy:          corev1.PullNever,
					Command:                  []string{"/netdiag-helper", "idle", "--timeout", "30s"},
					Env:                      []corev1.EnvVar{{Name: "NETDIAG", Value: "1"}},
					TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					SecurityContext:          &corev1.SecurityContext{Privileged: ptr.To(true), RunAsUser: ptr.To[int64](0)},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/netdiag-helper", "active"}}},
						PeriodSeconds: 2, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: 1,
					},
					VolumeMounts: tt.mounts,
				}},
				Volumes: tt.volumes,
			},
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: node pod (-want +got):\n%s", tt.name, d)
		}
	}
}

func TestBoundedWork(t *testing.T) {
	if got := BoundedWork(0, time.Minute); got != 0 {
		t.Errorf("BoundedWork(0, 1m) = %v, want 0 (open-ended)", got)
	}
	if got := BoundedWork(20*time.Minute, 70*time.Second); got != 21*time.Minute+10*time.Second {
		t.Errorf("BoundedWork(20m, 70s) = %v, want 21m10s", got)
	}
}

func TestNodePodName(t *testing.T) {
	long := strings.Repeat("a", 60) + ".example.com"
	got := NodePodName(long, "xyz12")
	if len(got) > 63 {
		t.Errorf("NodePodName: %d characters: %s", len(got), got)
	}
	if !strings.HasPrefix(got, "netdiag-node-aaaa") || !strings.HasSuffix(got, "-xyz12") {
		t.Errorf("NodePodName = %q", got)
	}
	if got := NodePodName("gke-pool-1.abc", "xyz12"); got != "netdiag-node-gke-pool-1-abc-xyz12" {
		t.Errorf("NodePodName = %q", got)
	}
}

func TestParseHelperReport(t *testing.T) {
	hello := `{"type":"hello","protocol":1,"helper":"v1"}`
	finding := `{"type":"finding","check":"bridge","severity":"fail","subject":"cbr0","message":"down","data":{"adminUp":false}}`
	action := `{"type":"action","action":"bridge-up","target":"cbr0","result":"done","message":"up"}`
	done := `{"type":"done","findings":1}`
	tests := []struct {
		name, in string
		want     string
		findings int
	}{
		{"complete", hello + "\n" + finding + "\n" + done + "\n", "", 1},
		{"actions", hello + "\n" + action + "\n" + done + "\n", "", 0},
		{"no done", hello + "\n" + finding + "\n", "the helper's report was cut short (no done line)", 1},
		{"empty", "", "the helper's report was cut short: the helper wrote nothing", 0},
		{"no hello", finding + "\n" + done, `the helper's report was cut short: the helper's first line is "finding", not hello`, 0},
		{"error line", hello + "\n" + `{"type":"error","message":"boom"}` + "\n", "the helper's report was cut short: boom", 0},
		{"protocol", `{"type":"hello","protocol":2,"helper":"v9"}` + "\n" + done, "the helper image (v9) speaks protocol 2, this plugin speaks protocol 1: use the helper image of this plugin's version (--image, or KUBECTL_NETDIAG_IMAGE)", 0},
		{"after done", hello + "\n" + done + "\n" + finding + "\n", `the helper's report was cut short: the helper wrote a "finding" line after done`, 0},
		{"not json", hello + "\nnope\n" + done, `the helper wrote a line that is not JSON: "nope"`, 0},
	}
	for _, tt := range tests {
		rep, err := ParseHelperReport([]byte(tt.in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, got, tt.want)
		}
		if strings.Contains(tt.want, "cut short") && !errors.Is(err, ErrCutShort) {
			t.Errorf("%s: error is not ErrCutShort", tt.name)
		}
		if rep != nil && len(rep.Findings) != tt.findings {
			t.Errorf("%s: %d findings, want %d", tt.name, len(rep.Findings), tt.findings)
		}
		if tt.name == "actions" && (len(rep.Actions) != 1 || rep.Actions[0].Result != protocol.ActionDone) {
			t.Errorf("actions: %+v", rep.Actions)
		}
	}
}
