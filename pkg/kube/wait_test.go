package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// waitPod is pod shop/web with the ephemeral container netdiag-x in state st.
func waitPod(rv string, st corev1.ContainerStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", ResourceVersion: rv},
		Spec:       corev1.PodSpec{NodeName: "node-1", EphemeralContainers: []corev1.EphemeralContainer{ec("netdiag-x", "img:v1", "app")}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, EphemeralContainerStatuses: []corev1.ContainerStatus{st}},
	}
}

// watches hands the wait a fake watch per Watch call and records the
// options of each call.
type watches struct {
	mu   sync.Mutex
	opts []metav1.ListOptions
	ws   []*watch.FakeWatcher
	made chan *watch.FakeWatcher
}

func watchReactor(client *fake.Clientset) *watches {
	w := &watches{made: make(chan *watch.FakeWatcher, 10)}
	client.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		fw := watch.NewFakeWithChanSize(10, false)
		w.mu.Lock()
		w.opts = append(w.opts, a.(k8stesting.WatchActionImpl).ListOptions)
		w.ws = append(w.ws, fw)
		w.mu.Unlock()
		w.made <- fw
		return true, fw, nil
	})
	return w
}

// next is the next watch the wait opens.
func (w *watches) next(t *testing.T) *watch.FakeWatcher {
	t.Helper()
	select {
	case fw := <-w.made:
		return fw
	case <-time.After(5 * time.Second):
		t.Fatal("the wait opened no watch on the pod")
		return nil
	}
}

type waitResult struct {
	pod *corev1.Pod
	err error
}

func startWait(client *fake.Clientset, timeout time.Duration) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		pod, err := WaitForEphemeralRunning(context.Background(), client, "shop", "web", "netdiag-x", timeout)
		done <- waitResult{pod, err}
	}()
	return done
}

func result(t *testing.T, done <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not return")
		return waitResult{}
	}
}

func TestWaitRunningAfterWatchEvent(t *testing.T) {
	client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
	w := watchReactor(client)
	done := startWait(client, time.Minute)
	fw := w.next(t)
	fw.Modify(waitPod("11", waiting("netdiag-x", "ContainerCreating")))
	fw.Modify(waitPod("12", running("netdiag-x", 5)))
	r := result(t, done)
	if r.err != nil {
		t.Fatalf("wait: %v", r.err)
	}
	if r.pod.ResourceVersion != "12" || r.pod.Status.EphemeralContainerStatuses[0].State.Running == nil {
		t.Errorf("wait returned pod version %s with %+v, want version 12, running", r.pod.ResourceVersion, r.pod.Status.EphemeralContainerStatuses)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.opts[0]; got.FieldSelector != "metadata.name=web" || got.ResourceVersion != "10" {
		t.Errorf("watch options %+v, want the field selector metadata.name=web from the read's version 10", got)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() == "list" {
			t.Errorf("the wait listed pods (%v): it must need only get and watch", a)
		}
	}
}

func TestWaitAlreadyRunning(t *testing.T) {
	client := fake.NewClientset(waitPod("10", running("netdiag-x", 5)))
	watchReactor(client)
	r := result(t, startWait(client, time.Minute))
	if r.err != nil || r.pod == nil || r.pod.Name != "web" {
		t.Fatalf("wait = %v, %v; want the running pod", r.pod, r.err)
	}
}

func TestWaitTimeout(t *testing.T) {
	client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
	watchReactor(client)
	start := time.Now()
	r := result(t, startWait(client, 300*time.Millisecond))
	want := "timed out after 300ms waiting for the netdiag container netdiag-x in pod shop/web to start (last state: waiting: ContainerCreating); raise --timeout or look at: kubectl describe pod web -n shop"
	if r.err == nil || r.err.Error() != want {
		t.Fatalf("wait error:\n got %v\nwant %s", r.err, want)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the wait took %s for a 300ms timeout", d)
	}
}

func TestWaitInterrupted(t *testing.T) {
	client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
	w := watchReactor(client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := WaitForEphemeralRunning(ctx, client, "shop", "web", "netdiag-x", time.Minute)
		done <- err
	}()
	w.next(t)
	cancel()
	select {
	case err := <-done:
		want := "interrupted while waiting for the netdiag container netdiag-x in pod shop/web to start"
		if err == nil || err.Error() != want {
			t.Fatalf("wait error:\n got %v\nwant %s", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the wait did not return after its context was cancelled")
	}
}

func TestWaitPodDeleted(t *testing.T) {
	client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
	w := watchReactor(client)
	done := startWait(client, time.Minute)
	w.next(t).Delete(waitPod("11", waiting("netdiag-x", "ContainerCreating")))
	r := result(t, done)
	want := "pod shop/web was deleted while waiting for the netdiag container"
	if r.err == nil || r.err.Error() != want {
		t.Fatalf("wait error:\n got %v\nwant %s", r.err, want)
	}
}

// A watch that ends (expired version, API server restart) is opened again
// after a new read of the pod; a pod gone by then was deleted.
func TestWaitRewatches(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
		w := watchReactor(client)
		done := startWait(client, time.Minute)
		first := w.next(t)
		if err := client.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, waitPod("20", running("netdiag-x", 5)), "shop"); err != nil {
			t.Fatal(err)
		}
		first.Error(&apierrors.NewResourceExpired("too old resource version: 10 (15)").ErrStatus)
		r := result(t, done)
		if r.err != nil || r.pod == nil || r.pod.ResourceVersion != "20" {
			t.Fatalf("wait = %v, %v; want the running pod read again (version 20)", r.pod, r.err)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
		w := watchReactor(client)
		done := startWait(client, time.Minute)
		first := w.next(t)
		if err := client.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "shop", "web"); err != nil {
			t.Fatal(err)
		}
		first.Error(&apierrors.NewResourceExpired("too old resource version: 10 (15)").ErrStatus)
		r := result(t, done)
		want := "pod shop/web was deleted while waiting for the netdiag container"
		if r.err == nil || r.err.Error() != want {
			t.Fatalf("wait error:\n got %v\nwant %s", r.err, want)
		}
	})
}

// What waiting will not fix ends the wait at once, with the reason.
func TestWaitFailsFast(t *testing.T) {
	forbidden := func(verb string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web", fmt.Errorf("User \"dev\" cannot %s resource \"pods\" in API group \"\" in the namespace \"shop\"", verb))
	}
	tests := []struct {
		name  string
		setup func(*fake.Clientset)
		event func(*watch.FakeWatcher) // on the first watch
		want  string
	}{
		{
			name: "no such pod",
			want: `reading pod shop/web: pods "web" not found`,
			setup: func(c *fake.Clientset) {
				_ = c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "shop", "web")
			},
		},
		{
			name: "get refused",
			want: `reading pod shop/web: pods "web" is forbidden: User "dev" cannot get resource "pods" in API group "" in the namespace "shop"`,
			setup: func(c *fake.Clientset) {
				c.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbidden("get") })
			},
		},
		{
			name: "watch refused",
			want: `watching pod shop/web: pods "web" is forbidden: User "dev" cannot watch resource "pods" in API group "" in the namespace "shop"`,
			setup: func(c *fake.Clientset) {
				c.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, forbidden("watch") })
			},
		},
		{
			name: "watch fails",
			want: "watching the pod: Internal error occurred: etcd is down",
			event: func(fw *watch.FakeWatcher) {
				fw.Error(&apierrors.NewInternalError(errors.New("etcd is down")).ErrStatus)
			},
		},
		{
			name: "image cannot be pulled",
			want: "node node-1 cannot pull the helper image img:v1 (ImagePullBackOff): check that the node reaches",
			event: func(fw *watch.FakeWatcher) {
				fw.Modify(waitPod("11", waiting("netdiag-x", "ImagePullBackOff")))
			},
		},
		{
			name: "pod finished",
			want: "pod shop/web finished (phase Failed) while waiting for the netdiag container",
			event: func(fw *watch.FakeWatcher) {
				p := waitPod("11", waiting("netdiag-x", "ContainerCreating"))
				p.Status.Phase = corev1.PodFailed
				fw.Modify(p)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(waitPod("10", waiting("netdiag-x", "ContainerCreating")))
			w := watchReactor(client)
			if tt.setup != nil {
				tt.setup(client)
			}
			start := time.Now()
			done := startWait(client, time.Minute)
			if tt.event != nil {
				tt.event(w.next(t))
			}
			r := result(t, done)
			if r.err == nil || !strings.HasPrefix(r.err.Error(), tt.want) {
				t.Fatalf("wait error:\n got %v\nwant %s", r.err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the wait took %s to fail", d)
			}
		})
	}
}
