package cmd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
)

func nodeDebugPod(ns, name string, phase corev1.PodPhase, state corev1.ContainerState, ready bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{kube.ManagedByLabel: kube.ManagedByValue}},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status:     corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: "netdiag", State: state, Ready: ready}}},
	}
	return p
}

var (
	stRunning    = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	stTerminated = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	stCreating   = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	stNeverPull  = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull"}}
)

func cleanupPods() []*corev1.Pod {
	failed := nodeDebugPod("default", "netdiag-node-node-1-dead1", corev1.PodFailed, stTerminated, false)
	failed.Status.Reason = "DeadlineExceeded"
	netdiagEC := func(name string) corev1.EphemeralContainer {
		ec := kube.NewEphemeralContainer(kube.EphemeralSpec{Image: "img:v1", TargetContainer: "app"}, name)
		return ec
	}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0"}}
	web.Spec.EphemeralContainers = []corev1.EphemeralContainer{netdiagEC("abcde"), netdiagEC("old00"), netdiagEC("pull0"), netdiagEC("new00"),
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger-x", Image: "busybox"}}}
	web.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{
		{Name: "netdiag-abcde", State: stRunning},
		{Name: "netdiag-old00", State: stTerminated},
		{Name: "netdiag-pull0", State: stNeverPull},
		{Name: "debugger-x", State: stRunning},
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-0", Labels: map[string]string{kube.ManagedByLabel: "helm"}}}
	return []*corev1.Pod{
		failed,
		nodeDebugPod("default", "netdiag-node-node-1-live1", corev1.PodRunning, stRunning, true),
		nodeDebugPod("shop", "netdiag-node-node-1-done1", corev1.PodSucceeded, stTerminated, false),
		nodeDebugPod("shop", "netdiag-node-node-1-live2", corev1.PodRunning, stRunning, true),
		nodeDebugPod("shop", "netdiag-node-node-1-idle1", corev1.PodRunning, stRunning, false),
		nodeDebugPod("shop", "netdiag-node-node-1-pend1", corev1.PodPending, stCreating, false),
		nodeDebugPod("shop", "netdiag-node-node-1-nopul", corev1.PodPending, stNeverPull, false),
		web, other,
	}
}

const webContainers = "pod shop/web-0: netdiag container netdiag-abcde (image img:v1): running (its helper exits 30m after its last capture)\n" +
	"pod shop/web-0: netdiag container netdiag-old00 (image img:v1): terminated\n" +
	"pod shop/web-0: netdiag container netdiag-pull0 (image img:v1): waiting (ErrImageNeverPull)\n" +
	"pod shop/web-0: netdiag container netdiag-new00 (image img:v1): waiting (not yet reported by the kubelet)\n" +
	"(ephemeral containers cannot be removed from a pod; a waiting or terminated one uses no resources)\n"

const (
	delDead  = "deleted pod default/netdiag-node-node-1-dead1 (node node-1): ended (Failed: DeadlineExceeded)\n"
	delDone  = "deleted pod shop/netdiag-node-node-1-done1 (node node-1): ended (Succeeded)\n"
	delIdle  = "deleted pod shop/netdiag-node-node-1-idle1 (node node-1): idle: no plugin uses it any more (it ends by itself within a minute)\n"
	delNoPul = "deleted pod shop/netdiag-node-node-1-nopul (node node-1): its helper is not running (ErrImageNeverPull)\n"
	delPend  = "deleted pod shop/netdiag-node-node-1-pend1 (node node-1): its helper is not running (ContainerCreating)\n"
	leftLive = "left pod default/netdiag-node-node-1-live1 (node node-1): live, running its helper (a capture or check in progress, maybe another user's%s)\n" +
		"left pod shop/netdiag-node-node-1-live2 (node node-1): live, running its helper (a capture or check in progress, maybe another user's%s)\n"
	delLive = "deleted pod default/netdiag-node-node-1-live1 (node node-1): running its helper\n" +
		"deleted pod shop/netdiag-node-node-1-live2 (node node-1): running its helper\n"
)

func TestCleanup(t *testing.T) {
	left := func(hint string) string { return fmt.Sprintf(leftLive, hint, hint) }
	everything := []string{"default/netdiag-node-node-1-dead1", "default/netdiag-node-node-1-live1", "shop/db-0", "shop/netdiag-node-node-1-done1",
		"shop/netdiag-node-node-1-idle1", "shop/netdiag-node-node-1-live2", "shop/netdiag-node-node-1-nopul", "shop/netdiag-node-node-1-pend1", "shop/web-0"}
	for _, tt := range []struct {
		name      string
		all, yes  bool
		dryRun    bool
		terminal  bool
		in        string
		want      string
		wantErr   string
		remaining []string
	}{
		{name: "all namespaces: ended, idle and pending pods deleted, live ones left",
			want:      webContainers + delDead + delDone + delIdle + delNoPul + delPend + left("; --all deletes it too"),
			remaining: []string{"default/netdiag-node-node-1-live1", "shop/db-0", "shop/netdiag-node-node-1-live2", "shop/web-0"}},
		{name: "one namespace, dry run", dryRun: true,
			want: webContainers + strings.ReplaceAll(delDone+delIdle+delNoPul+delPend, "deleted pod", "would delete pod") +
				"left pod shop/netdiag-node-node-1-live2 (node node-1): live, running its helper (a capture or check in progress, maybe another user's; --all deletes it too)\n",
			remaining: everything},
		{name: "--all --yes deletes live ones too", all: true, yes: true,
			want:      webContainers + delDead + delDone + delIdle + delNoPul + delPend + delLive,
			remaining: []string{"shop/db-0", "shop/web-0"}},
		{name: "--all answered no on the terminal", all: true, terminal: true, in: "n\n",
			want:      webContainers + delDead + delDone + delIdle + delNoPul + delPend + left(""),
			remaining: []string{"default/netdiag-node-node-1-live1", "shop/db-0", "shop/netdiag-node-node-1-live2", "shop/web-0"}},
		{name: "--all answered yes on the terminal", all: true, terminal: true, in: "y\n",
			want:      webContainers + delDead + delDone + delIdle + delNoPul + delPend + delLive,
			remaining: []string{"shop/db-0", "shop/web-0"}},
		{name: "--all without a terminal nor --yes", all: true,
			wantErr:   "--all deletes node-debug pods that may be in use and asks first: add --yes, or run it on an interactive terminal",
			remaining: everything},
		{name: "--yes without --all", yes: true, wantErr: "--yes only goes with --all", remaining: everything},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			for _, p := range cleanupPods() {
				objs = append(objs, p)
			}
			client := fake.NewClientset(objs...)
			streams, in, out, errOut := genericiooptions.NewTestIOStreams()
			in.WriteString(tt.in)
			o := &CleanupOptions{IOStreams: streams, DryRun: tt.dryRun, AllNamespaces: tt.name != "one namespace, dry run", All: tt.all, Yes: tt.yes,
				IsTerminal: func(any) bool { return tt.terminal }}
			o.Namespace, o.Client = "shop", client
			err := o.Validate()
			if err == nil {
				err = o.Run(context.Background())
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if tt.terminal && !strings.Contains(errOut.String(), "Delete these 2 node-debug pods in use? The captures and checks using them stop. [y/N]") {
				t.Errorf("no confirmation asked: stderr %q", errOut.String())
			}
			l, err := client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, p := range l.Items {
				left = append(left, p.Namespace+"/"+p.Name)
			}
			if diff := cmp.Diff(tt.remaining, left); diff != "" {
				t.Errorf("pods left (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCleanupNothing(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := &CleanupOptions{IOStreams: streams}
	o.Namespace, o.Client = "shop", fake.NewClientset()
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "nothing left by kubectl netdiag in namespace \"shop\"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
