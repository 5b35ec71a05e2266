package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// keepaliveExec is a fake KeepaliveExecutor: each exec reads its stdin like
// `netdiag-helper keepalive` does, until EOF or ctx ends.
type keepaliveExec struct {
	holds bool
	// failFirst makes the first exec break at once, like a dropped
	// connection.
	failFirst bool

	mu    sync.Mutex
	cmds  [][]string
	beats atomic.Int64
	ended chan string // why each exec returned
}

func (k *keepaliveExec) HoldsKeepalive() bool { return k.holds }

func (k *keepaliveExec) Stream(ctx context.Context, pod Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	k.mu.Lock()
	k.cmds = append(k.cmds, cmd)
	n := len(k.cmds)
	k.mu.Unlock()
	if k.failFirst && n == 1 {
		k.ended <- "broken"
		return errors.New("connection reset")
	}
	buf := make([]byte, 8)
	for {
		m, err := stdin.Read(buf)
		k.beats.Add(int64(m))
		if err != nil {
			k.ended <- "eof"
			return nil
		}
		if ctx.Err() != nil {
			k.ended <- "ctx"
			return ctx.Err()
		}
	}
}

func (k *keepaliveExec) calls() [][]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]string(nil), k.cmds...)
}

// runningOnCreate makes every created pod Running at once.
func runningOnCreate(client *fake.Clientset) {
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		pod.Status.Phase = corev1.PodRunning
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: NodeContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		return false, nil, nil
	})
}

func nodeSpec() NodePodSpec {
	return NodePodSpec{Node: "node-1", Namespace: "ops", Image: "img:v1"}
}

func podGone(t *testing.T, client *fake.Clientset, name string) {
	t.Helper()
	_, err := client.CoreV1().Pods("ops").Get(context.Background(), name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("pod ops/%s still there (err %v): it must be deleted", name, err)
	}
}

func TestNodeSessionKeepalive(t *testing.T) {
	old := keepaliveEvery
	keepaliveEvery = 20 * time.Millisecond
	defer func() { keepaliveEvery = old }()

	client := fake.NewClientset()
	runningOnCreate(client)
	ex := &keepaliveExec{holds: true, ended: make(chan string, 4)}
	s, err := StartNodePod(context.Background(), Deps{Client: client, Executor: ex, NameSuffix: func() string { return "abcde" }}, nodeSpec())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ex.beats.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeat bytes after 5s at one per 20ms", ex.beats.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case why := <-ex.ended:
		t.Fatalf("the keepalive ended (%s) while the session was open", why)
	default:
	}
	s.Close()
	select {
	case <-ex.ended:
	case <-time.After(3 * time.Second):
		t.Fatal("the keepalive still runs after Close")
	}
	want := [][]string{{"/netdiag-helper", "keepalive", "--heartbeat", "30s", "--reap-after", "10s"}}
	if d := cmp.Diff(want, ex.calls()); d != "" {
		t.Errorf("execs (-want +got):\n%s", d)
	}
	podGone(t, client, "netdiag-node-node-1-abcde")
}

// TestNodeSessionKeepaliveRestarts: a keepalive exec that breaks is started
// again, so a dropped connection does not let the pod end under a live
// plugin.
func TestNodeSessionKeepaliveRestarts(t *testing.T) {
	old := keepaliveEvery
	keepaliveEvery = 20 * time.Millisecond
	defer func() { keepaliveEvery = old }()

	client := fake.NewClientset()
	runningOnCreate(client)
	ex := &keepaliveExec{holds: true, failFirst: true, ended: make(chan string, 4)}
	s, err := StartNodePod(context.Background(), Deps{Client: client, Executor: ex}, nodeSpec())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if why := <-ex.ended; why != "broken" {
		t.Fatalf("first exec ended %q, want broken", why)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ex.calls()) < 2 || ex.beats.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the broken keepalive was not started again: %d execs, %d beats", len(ex.calls()), ex.beats.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNodeSessionNoKeepalive: an executor that cannot hold a stream (the
// replaying fakes of other packages) gets no keepalive exec.
func TestNodeSessionNoKeepalive(t *testing.T) {
	client := fake.NewClientset()
	runningOnCreate(client)
	ex := &keepaliveExec{holds: false, ended: make(chan string, 4)}
	s, err := StartNodePod(context.Background(), Deps{Client: client, Executor: ex}, nodeSpec())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := len(ex.calls()); n != 0 {
		t.Errorf("%d execs, want none", n)
	}
}

// TestStartNodePodInterruptedWhileCreating: Ctrl-C while the create request
// is under way; the server created the pod anyway. It is deleted.
func TestStartNodePodInterruptedWhileCreating(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if err := client.Tracker().Add(pod); err != nil {
			t.Error(err)
		}
		cancel()
		return true, nil, context.Canceled
	})
	_, err := StartNodePod(ctx, Deps{Client: client, Executor: &keepaliveExec{}, NameSuffix: func() string { return "abcde" }}, nodeSpec())
	if err == nil || !strings.Contains(err.Error(), "interrupted while creating the node-debug pod ops/netdiag-node-node-1-abcde") {
		t.Fatalf("error %v, want interrupted while creating", err)
	}
	podGone(t, client, "netdiag-node-node-1-abcde")
}

// TestStartNodePodInterruptedWhileStarting: Ctrl-C while the pod is
// created but not yet running: it is deleted.
func TestStartNodePodInterruptedWhileStarting(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	created := make(chan struct{})
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		close(created)
		return false, nil, nil // stays Pending
	})
	go func() { <-created; time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := StartNodePod(ctx, Deps{Client: client, Executor: &keepaliveExec{}, NameSuffix: func() string { return "abcde" }}, func() NodePodSpec { s := nodeSpec(); s.StartTimeout = 10 * time.Second; return s }())
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v, want interrupted", err)
	}
	podGone(t, client, "netdiag-node-node-1-abcde")
}

// TestNodeSessionDeleteRetries: a node pod whose deletion meets an API
// server that is restarting is deleted once it answers; one the user may
// not delete is reported at once, on the command's error stream.
func TestNodeSessionDeleteRetries(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		failures int
		warn     string
	}{
		{"API down twice", errors.New("dial tcp 127.0.0.1:6443: connect: connection refused"), 2, ""},
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New("no")), 1, "warning: could not delete node-debug pod ops/netdiag-node-node-1-abcde"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset()
			runningOnCreate(client)
			left := tt.failures
			client.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				if left > 0 {
					left--
					return true, nil, tt.err
				}
				return false, nil, nil
			})
			var errOut bytes.Buffer
			s, err := StartNodePod(context.Background(), Deps{Client: client, Executor: &keepaliveExec{}, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, nodeSpec())
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			s.Close()
			if tt.warn == "" {
				podGone(t, client, "netdiag-node-node-1-abcde")
				if errOut.Len() != 0 || time.Since(begin) < 2*time.Second {
					t.Errorf("after %s: stderr %q", time.Since(begin), errOut.String())
				}
			} else if !strings.HasPrefix(errOut.String(), tt.warn) || time.Since(begin) > time.Second {
				t.Errorf("after %s: stderr %q, want %q", time.Since(begin), errOut.String(), tt.warn)
			}
		})
	}
}
