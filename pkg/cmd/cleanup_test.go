package cmd

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
)

func cleanupPods() []*corev1.Pod {
	nodePod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{kube.ManagedByLabel: kube.ManagedByValue}},
			Spec:       corev1.PodSpec{NodeName: "node-1"},
		}
	}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0"}}
	web.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{
		{Name: "netdiag-abcde", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		{Name: "netdiag-old00", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}},
		{Name: "debugger-x", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-0", Labels: map[string]string{kube.ManagedByLabel: "helm"}}}
	return []*corev1.Pod{nodePod("default", "netdiag-node-node-1-abcde"), nodePod("shop", "netdiag-node-node-2-fghij"), web, other}
}

func TestCleanup(t *testing.T) {
	for _, tt := range []struct {
		name      string
		all       bool
		dryRun    bool
		want      string
		remaining []string
	}{
		{name: "all namespaces", all: true,
			want: "deleted pod default/netdiag-node-node-1-abcde (node node-1)\n" +
				"deleted pod shop/netdiag-node-node-2-fghij (node node-1)\n" +
				"pod shop/web-0: netdiag container netdiag-abcde still running (ephemeral containers cannot be removed; the helper exits 30 minutes after its last capture)\n",
			remaining: []string{"shop/db-0", "shop/web-0"}},
		{name: "one namespace, dry run", dryRun: true,
			want: "would delete pod shop/netdiag-node-node-2-fghij (node node-1)\n" +
				"pod shop/web-0: netdiag container netdiag-abcde still running (ephemeral containers cannot be removed; the helper exits 30 minutes after its last capture)\n",
			remaining: []string{"default/netdiag-node-node-1-abcde", "shop/db-0", "shop/netdiag-node-node-2-fghij", "shop/web-0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			for _, p := range cleanupPods() {
				objs = append(objs, p)
			}
			client := fake.NewClientset(objs...)
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			o := &CleanupOptions{IOStreams: streams, DryRun: tt.dryRun, AllNamespaces: tt.all}
			o.Namespace, o.Client = "shop", client
			if err := o.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
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
