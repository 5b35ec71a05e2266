package remotecapture

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

const image = "localhost/netdiag-helper:test"

func runningPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", ResourceVersion: "1"},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app"}, {Name: "sidecar"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// cluster is a fake API server: patches of pods/ephemeralcontainers are
// recorded and applied; a watch reports the new container Running.
type cluster struct {
	client  *fake.Clientset
	mu      sync.Mutex
	patches []corev1.EphemeralContainer
	// neverRuns, when set, is the state the watch reports for every
	// netdiag container instead of Running.
	neverRuns *corev1.ContainerStateWaiting
}

func newCluster(t *testing.T, pod *corev1.Pod, patchErr error) *cluster {
	return newClusterIn(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, nil, pod, patchErr)
}

// newClusterIn is newCluster with a namespace object (its labels carry the
// Pod Security level) and SelfSubjectAccessReview answers: every access is
// allowed except the ones in denied ("verb resource/subresource").
func newClusterIn(t *testing.T, ns *corev1.Namespace, denied []string, pod *corev1.Pod, patchErr error) *cluster {
	c := &cluster{client: fake.NewClientset(ns, pod)}
	c.client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		ra := review.Spec.ResourceAttributes
		key := ra.Verb + " " + ra.Resource + "/" + ra.Subresource
		review.Status.Allowed = true
		for _, d := range denied {
			if d == key {
				review.Status.Allowed = false
			}
		}
		return true, review, nil
	})
	c.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		if pa.GetSubresource() != "ephemeralcontainers" {
			t.Errorf("patch of subresource %q, want ephemeralcontainers", pa.GetSubresource())
		}
		if patchErr != nil {
			return true, nil, patchErr
		}
		obj, err := c.client.Tracker().Get(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, pa.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		js, _ := json.Marshal(obj)
		patched, err := strategicpatch.StrategicMergePatch(js, pa.GetPatch(), &corev1.Pod{})
		if err != nil {
			t.Fatalf("applying patch: %v", err)
		}
		var p corev1.Pod
		if err := json.Unmarshal(patched, &p); err != nil {
			t.Fatal(err)
		}
		added := p.Spec.EphemeralContainers[len(p.Spec.EphemeralContainers)-1]
		c.mu.Lock()
		c.patches = append(c.patches, added)
		c.mu.Unlock()
		return true, &p, nil
	})
	c.client.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w := watch.NewFakeWithChanSize(2, false)
		c.mu.Lock()
		defer c.mu.Unlock()
		p := pod.DeepCopy()
		for _, ec := range c.patches {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, ec)
			p.Status.EphemeralContainerStatuses = append(p.Status.EphemeralContainerStatuses, corev1.ContainerStatus{
				Name: ec.Name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}})
		}
		w.Modify(p.DeepCopy())
		for i := range p.Status.EphemeralContainerStatuses {
			p.Status.EphemeralContainerStatuses[i].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
			if c.neverRuns != nil {
				p.Status.EphemeralContainerStatuses[i].State = corev1.ContainerState{Waiting: c.neverRuns}
			}
		}
		w.Modify(p)
		return true, w, nil
	})
	return c
}

// replay is a fake Executor that replays recorded helper output.
type replay struct {
	stdout    []byte
	stderr    string
	err       error
	waitStdin bool // block until stdin ends, like a capture stopped by Ctrl-C
	// firstHalfEarly writes the first half of stdout before waiting for
	// stdin to end, as a capture streams packets until it is stopped.
	firstHalfEarly bool

	// hello replaces the helper's hello line.
	hello string
	// notRunning makes every exec fail, as the kubelet refuses an exec
	// into a container that does not run.
	notRunning bool

	calls     int
	container string
	cmd       []string
	stdinSeen int
}

func (r *replay) Stream(ctx context.Context, pod kube.Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	r.calls++
	r.container, r.cmd = container, cmd
	if r.notRunning {
		return fmt.Errorf("unable to upgrade connection: container not found (%q)", container)
	}
	hello := `{"type":"hello","protocol":1,"helper":"v0.1.0"}`
	if r.hello != "" {
		hello = r.hello
	}
	io.WriteString(stderr, hello+"\n")
	io.WriteString(stderr, `{"type":"ready","interface":"eth0","linkType":"EN10MB","snaplen":262144,"format":"pcap"}`+"\n")
	// Write in two chunks: the output is streamed, not buffered.
	half := len(r.stdout) / 2
	if r.firstHalfEarly {
		stdout.Write(r.stdout[:half])
	}
	if r.waitStdin {
		n, _ := io.Copy(io.Discard, stdin)
		r.stdinSeen = int(n)
	}
	if !r.firstHalfEarly {
		stdout.Write(r.stdout[:half])
	}
	stdout.Write(r.stdout[half:])
	io.WriteString(stderr, r.stderr)
	return r.err
}

type memFile struct {
	bytes.Buffer
	closed bool
}

func (m *memFile) Close() error { m.closed = true; return nil }

func config(out *memFile) Config {
	return Config{
		Namespace: "shop", Pod: "web-0", Interface: "eth0", Filter: "tcp port 443", Snaplen: 262144,
		Count: 10, Format: "pcap", Image: image, PullPolicy: corev1.PullIfNotPresent,
		Timeout: 5 * time.Second, Heartbeat: 15 * time.Second, HeartbeatEvery: 10 * time.Millisecond,
		Open:       func() (io.WriteCloser, error) { return out, nil },
		OutputName: "web.pcap",
	}
}

// pcapBytes is a helper's pcap: the file header and ten 60-byte packets.
var pcapBytes = pcapStream(10, 0)

// pcapStream is a classic pcap stream of n 60-byte packets, the first at
// second first.
func pcapStream(n, first int) []byte {
	b := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0}
	for i := 0; i < n; i++ {
		rec := make([]byte, 16, 16+60)
		binary.LittleEndian.PutUint32(rec[0:], uint32(1700000000+first+i))
		binary.LittleEndian.PutUint32(rec[8:], 60)
		binary.LittleEndian.PutUint32(rec[12:], 60)
		rec = append(rec, bytes.Repeat([]byte{byte(i)}, 60)...)
		b = append(b, rec...)
	}
	return b
}

const statsLine = `{"type":"stats","packets":10,"bytes":1234,"kernelDrops":0,"reason":"count","interface":"eth0"}` + "\n"

func TestCaptureInjectsOnceAndStreams(t *testing.T) {
	c := newCluster(t, runningPod(), nil)
	ex := &replay{stdout: pcapBytes, stderr: statsLine}
	var errOut bytes.Buffer
	out := &memFile{}
	res, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, config(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.patches) != 1 {
		t.Fatalf("%d patches, want 1", len(c.patches))
	}
	want := kube.NewEphemeralContainer(kube.EphemeralSpec{Image: image, PullPolicy: corev1.PullIfNotPresent, TargetContainer: "app"}, "abcde")
	if d := cmp.Diff(want, c.patches[0]); d != "" {
		t.Errorf("patched container (-want +got):\n%s", d)
	}
	if ex.container != "netdiag-abcde" {
		t.Errorf("exec in %q, want netdiag-abcde", ex.container)
	}
	// The helper parses the command back into what was asked.
	if len(ex.cmd) < 2 || ex.cmd[0] != "/netdiag-helper" || ex.cmd[1] != "capture" {
		t.Fatalf("helper command %q", ex.cmd)
	}
	got, err := protocol.ParseCaptureRequest(ex.cmd[2:])
	if err != nil {
		t.Fatal(err)
	}
	wantReq := protocol.CaptureRequest{Interface: "eth0", Filter: "tcp port 443", Snaplen: 262144, Count: 10, Format: "pcap", Heartbeat: 15 * time.Second, ID: "cap-abcde"}
	if d := cmp.Diff(wantReq, got); d != "" {
		t.Errorf("helper request (-want +got):\n%s", d)
	}
	if !bytes.Equal(out.Bytes(), pcapBytes) || !out.closed {
		t.Errorf("output: %d bytes, closed %v; want the %d pcap bytes, closed", out.Len(), out.closed, len(pcapBytes))
	}
	if got, want := errOut.String(), "capturing on pod/web-0 eth0, Ctrl-C to stop\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if got, want := res.Summary("web.pcap"), "captured 10 packets (1.2 kB) on pod/web-0 eth0, 0 dropped by the kernel → web.pcap; stopped: --count reached"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}

	// A second capture reuses the running container: no patch at all.
	pod, _ := c.client.CoreV1().Pods("shop").Get(context.Background(), "web-0", metav1.GetOptions{})
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, c.patches[0])
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag-abcde", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	c2 := newCluster(t, pod, nil)
	ex2 := &replay{stdout: pcapBytes, stderr: statsLine}
	res2, err := Run(context.Background(), Deps{Client: c2.client, Executor: ex2, NameSuffix: func() string { return "zzzzz" }, ErrOut: io.Discard}, config(&memFile{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.patches) != 0 || !res2.Reused || ex2.container != "netdiag-abcde" {
		t.Errorf("second capture: %d patches, reused %v, exec in %q; want 0, true, netdiag-abcde", len(c2.patches), res2.Reused, ex2.container)
	}
}

func TestCaptureStopsCleanlyOnCancel(t *testing.T) {
	c := newCluster(t, runningPod(), nil)
	ex := &replay{stdout: pcapBytes, stderr: `{"type":"stats","packets":3,"bytes":300,"kernelDrops":2,"reason":"stdin-eof"}` + "\n", waitStdin: true}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	var errOut bytes.Buffer
	out := &memFile{}
	res, err := Run(ctx, Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, config(out))
	if err != nil {
		t.Fatal(err)
	}
	if ex.stdinSeen == 0 {
		t.Errorf("the helper got no heartbeat")
	}
	if !bytes.Equal(out.Bytes(), pcapBytes) {
		t.Errorf("output has %d bytes, want %d", out.Len(), len(pcapBytes))
	}
	if !strings.Contains(errOut.String(), "stopping the capture on pod/web-0") {
		t.Errorf("stderr = %q", errOut.String())
	}
	if got, want := res.Summary("-"), "captured 3 packets (300 B) on pod/web-0 eth0, 2 dropped by the kernel → - (narrow the filter with -f or lower -s to drop less); stopped: Ctrl-C"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

// brokenPipe is an output whose reader is gone, like `-w - | head -c 0`.
type brokenPipe struct{ writes int }

func (b *brokenPipe) Write(p []byte) (int, error) { b.writes++; return 0, syscall.EPIPE }
func (b *brokenPipe) Close() error                { return nil }

// TestCaptureStopsWhenTheReaderLeaves: a closed pipe or viewer stops the
// capture the way Ctrl-C does (stdin closed, the helper finishes and reports
// its stats), not with a broken exec stream.
func TestCaptureStopsWhenTheReaderLeaves(t *testing.T) {
	c := newCluster(t, runningPod(), nil)
	ex := &replay{stdout: pcapBytes, stderr: `{"type":"stats","packets":3,"bytes":300,"kernelDrops":0,"reason":"stdin-eof"}` + "\n", waitStdin: true, firstHalfEarly: true}
	var errOut bytes.Buffer
	out := &brokenPipe{}
	cfg := config(nil)
	cfg.Open = func() (io.WriteCloser, error) { return out, nil }
	cfg.OutputName = "stdout"
	done := make(chan struct{})
	var res Result
	var err error
	go func() {
		defer close(done)
		res, err = Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, cfg)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the capture did not stop after its reader went away")
	}
	if err != nil {
		t.Fatal(err)
	}
	if out.writes != 1 {
		t.Errorf("%d writes to the closed output, want 1 (the rest is drained)", out.writes)
	}
	if !strings.Contains(errOut.String(), "the reader of stdout went away (broken pipe); stopping the capture on pod/web-0") {
		t.Errorf("stderr = %q", errOut.String())
	}
	if got, want := res.Summary("stdout"), "captured 3 packets (300 B) on pod/web-0 eth0, 0 dropped by the kernel → stdout, which its reader closed after 0 B; stopped: the reader went away"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

func TestCaptureErrors(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	pending := runningPod()
	pending.Status.Phase = corev1.PodPending
	hostNet := runningPod()
	hostNet.Spec.HostNetwork = true
	tests := []struct {
		name     string
		pod      *corev1.Pod
		podName  string
		patchErr error
		ex       *replay
		want     string
		patches  int
		opened   bool
	}{
		{name: "missing pod", pod: runningPod(), podName: "nope", want: `pod "nope" not found in namespace "shop"`},
		{name: "pending", pod: pending, want: `pod "web-0" in namespace "shop" is Pending, not Running: only a running pod can be captured`},
		{name: "host network", pod: hostNet, want: `pod "web-0" in namespace "shop" uses hostNetwork: a capture in it would see the node's interfaces, not the pod's; capture on its node instead: kubectl netdiag capture node/node-1`},
		{name: "forbidden", pod: runningPod(), patchErr: apierrors.NewForbidden(gr, "web-0", errors.New("denied")), opened: true,
			want: "you need `patch` on `pods/ephemeralcontainers` in namespace \"shop\" to add the netdiag container (check with: kubectl auth can-i patch pods --subresource=ephemeralcontainers -n shop) (error from server: pods \"web-0\" is forbidden: denied)"},
		{name: "disabled", pod: runningPod(), patchErr: apierrors.NewNotFound(gr, ""), opened: true,
			want: `ephemeral containers are disabled on this cluster (error from server: pods "" not found); ` + onNodeWhy},
		{name: "helper error", pod: runningPod(), patches: 1, opened: true,
			ex:   &replay{stderr: `{"type":"error","message":"can't parse filter expression: syntax error"}` + "\n" + `{"type":"stats","packets":0,"bytes":0,"kernelDrops":0,"reason":"error"}` + "\n", err: errors.New("command terminated with exit code 1")},
			want: "capture in pod/web-0 failed: can't parse filter expression: syntax error"},
		{name: "other protocol", pod: runningPod(), patches: 1, opened: true,
			ex:   &replay{hello: `{"type":"hello","protocol":2,"helper":"v9.0.0"}`, stdout: pcapBytes, stderr: statsLine},
			want: "the helper image (v9.0.0) speaks protocol 2, this plugin speaks protocol 1: use the helper image of this plugin's version (--image, or KUBECTL_NETDIAG_IMAGE)"},
		{name: "stream broke", pod: runningPod(), patches: 1, opened: true,
			ex:   &replay{stdout: pcapBytes, err: errors.New("connection reset")},
			want: "the capture stream from pod/web-0 broke before the helper reported its stats (connection reset); web.pcap may be incomplete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, tt.pod, tt.patchErr)
			ex := tt.ex
			if ex == nil {
				ex = &replay{stderr: statsLine}
			}
			opened := false
			cfg := config(&memFile{})
			open := cfg.Open
			cfg.Open = func() (io.WriteCloser, error) { opened = true; return open() }
			if tt.podName != "" {
				cfg.Pod = tt.podName
			}
			_, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, cfg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
			if len(c.patches) != tt.patches {
				t.Errorf("%d patches, want %d", len(c.patches), tt.patches)
			}
			if opened != tt.opened {
				t.Errorf("output opened: %v, want %v", opened, tt.opened)
			}
		})
	}
}

// TestCapturePreflight: missing RBAC or a Pod Security level that refuses
// the capabilities stops the capture before the patch and before the output
// file is opened.
func TestCapturePreflight(t *testing.T) {
	for _, tt := range []struct {
		name   string
		labels map[string]string
		denied []string
		reuse  bool
		want   string
	}{
		{name: "no patch", denied: []string{"patch pods/ephemeralcontainers"},
			want: "you need `patch` on `pods/ephemeralcontainers` in namespace \"shop\" to capture in its pods (check with: kubectl auth can-i patch pods --subresource=ephemeralcontainers -n shop)"},
		{name: "no exec nor patch", denied: []string{"patch pods/ephemeralcontainers", "create pods/exec"},
			want: "you need `create` on `pods/exec` and `patch` on `pods/ephemeralcontainers` in namespace \"shop\" to capture in its pods (check with: kubectl auth can-i create pods --subresource=exec -n shop; kubectl auth can-i patch pods --subresource=ephemeralcontainers -n shop)"},
		{name: "baseline", labels: map[string]string{kube.PodSecurityEnforceLabel: "baseline"},
			want: `namespace "shop" enforces the "baseline" Pod Security level (label pod-security.kubernetes.io/enforce), which refuses the netdiag container: it adds the capabilities NET_RAW and NET_ADMIN and runs as user 0 to capture; ask for the namespace to enforce "privileged" while you debug; ` + onNodeWhy +
				`; the node-debug pod is privileged, so it cannot run in namespace "shop" either: pass --node-namespace with a namespace that admits privileged pods (e.g. --node-namespace kube-system, where Pod Security is usually not enforced)`},
		{name: "reuse needs no patch", denied: []string{"patch pods/ephemeralcontainers"}, reuse: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := runningPod()
			if tt.reuse {
				pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kube.NewEphemeralContainer(kube.EphemeralSpec{Image: image, PullPolicy: corev1.PullIfNotPresent, TargetContainer: "app"}, "old00")}
				pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag-old00", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: tt.labels}}
			c := newClusterIn(t, ns, tt.denied, pod, nil)
			opened := false
			cfg := config(&memFile{})
			open := cfg.Open
			cfg.Open = func() (io.WriteCloser, error) { opened = true; return open() }
			_, err := Run(context.Background(), Deps{Client: c.client, Executor: &replay{stderr: statsLine}, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("reusing a running container: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
			if len(c.patches) != 0 || opened {
				t.Errorf("%d patches, output opened %v: want nothing done", len(c.patches), opened)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 567000: "567.0 kB", 12_345_678: "12.3 MB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// nodeCluster is a fake API server with one node; the node-debug pod the
// capture creates is reported Running by the watch.
func nodeCluster(t *testing.T) *fake.Clientset {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	client := fake.NewClientset(node, ns)
	client.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		l, err := client.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "shop")
		if err != nil {
			return true, nil, err
		}
		w := watch.NewFakeWithChanSize(1, false)
		for _, p := range l.(*corev1.PodList).Items {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: kube.NodeContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			w.Modify(p.DeepCopy())
		}
		return true, w, nil
	})
	return client
}

func TestCaptureNode(t *testing.T) {
	for _, tt := range []struct {
		name string
		ex   *replay
		want string // error; "" for success
	}{
		{name: "captures", ex: &replay{stdout: pcapBytes, stderr: statsLine}},
		{name: "stream broke", ex: &replay{stdout: pcapBytes, err: errors.New("connection reset")},
			want: "the capture stream from node/node-1 broke before the helper reported its stats (connection reset); web.pcap may be incomplete"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := nodeCluster(t)
			out := &memFile{}
			cfg := config(out)
			cfg.Pod, cfg.Node, cfg.Interface = "", "node-1", "cbr0"
			var errOut bytes.Buffer
			res, err := Run(context.Background(), Deps{Client: client, Executor: tt.ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, cfg)
			if tt.want != "" {
				if err == nil || err.Error() != tt.want {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.want)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.ex.container != kube.NodeContainerName {
				t.Errorf("exec in container %q, want the node pod's %q", tt.ex.container, kube.NodeContainerName)
			}
			if req, err := protocol.ParseCaptureRequest(tt.ex.cmd[2:]); err != nil || req.Interface != "cbr0" {
				t.Errorf("helper command %v does not capture on cbr0", tt.ex.cmd)
			}
			pods, _ := client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
			if len(pods.Items) != 0 {
				t.Errorf("node-debug pod %s left after the capture", pods.Items[0].Name)
			}
			if tt.want == "" {
				if !bytes.Equal(out.Bytes(), pcapBytes) || !out.closed {
					t.Errorf("output: %d bytes, closed %v", out.Len(), out.closed)
				}
				if got := res.Summary("web.pcap"); !strings.HasPrefix(got, "captured 10 packets") || !strings.Contains(got, "on node/node-1 ") {
					t.Errorf("summary %q", got)
				}
			}
		})
	}

	t.Run("missing node", func(t *testing.T) {
		cfg := config(&memFile{})
		cfg.Pod, cfg.Node = "", "nope"
		_, err := Run(context.Background(), Deps{Client: fake.NewClientset(), Executor: &replay{}, ErrOut: io.Discard}, cfg)
		if want := `node "nope" not found (list them with: kubectl get nodes)`; err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
	})
}

// TestCaptureStopReasons: the summary says why the capture stopped, and a
// capture cut short by anything but a limit, the user or a reader that left
// is an error (with the summary still available).
func TestCaptureStopReasons(t *testing.T) {
	stats := func(reason string, preFilter int) string {
		return `{"type":"stats","packets":4,"bytes":400,"kernelDrops":0,"reason":"` + reason + `","interface":"eth0","preFilterDropped":` + strconv.Itoa(preFilter) + `}` + "\n"
	}
	const head = "captured 4 packets (400 B) on pod/web-0 eth0, 0 dropped by the kernel → web.pcap"
	for _, tt := range []struct {
		name      string
		ex        *replay
		cancel    bool
		summary   string
		cutShort  string // the error, when cut short
		preFilter int
	}{
		{name: "count", ex: &replay{stderr: stats("count", 0)}, summary: head + "; stopped: --count reached"},
		{name: "duration", ex: &replay{stderr: stats("duration", 0)}, summary: head + "; stopped: --duration reached"},
		{name: "max-bytes", ex: &replay{stderr: stats("max-bytes", 0)}, summary: head + "; stopped: --max-bytes reached"},
		{name: "pre-filter drops", ex: &replay{stderr: stats("count", 7)},
			summary: head + ", 7 packets from before the filter was attached discarded; stopped: --count reached"},
		{name: "signal in the pod", ex: &replay{stderr: stats("signal", 0)}, summary: head + "; stopped: the helper was stopped by a signal in the pod"},
		{name: "ctrl-c", ex: &replay{stderr: stats("stdin-eof", 0), waitStdin: true}, cancel: true, summary: head + "; stopped: Ctrl-C"},
		{name: "heartbeat", ex: &replay{stdout: pcapBytes, stderr: stats("heartbeat", 0)},
			summary:  head + "; stopped: the helper heard no heartbeat from this plugin for the --heartbeat time (the connection to the pod stalled)",
			cutShort: "the capture on pod/web-0 was cut short: the helper heard no heartbeat from this plugin for the --heartbeat time (the connection to the pod stalled); web.pcap holds what was captured until then"},
		{name: "stdout closed", ex: &replay{stdout: pcapBytes, stderr: stats("stdout-closed", 0)},
			summary:  head + "; stopped: the helper's output was closed (the exec stream to this plugin broke)",
			cutShort: "the capture on pod/web-0 was cut short: the helper's output was closed (the exec stream to this plugin broke); web.pcap holds what was captured until then"},
		{name: "stdin ended unasked", ex: &replay{stdout: pcapBytes, stderr: stats("stdin-eof", 0)},
			summary:  head + "; stopped: the helper's input ended unexpectedly (the exec stream from the pod broke)",
			cutShort: "the capture on pod/web-0 was cut short: the helper's input ended unexpectedly (the exec stream from the pod broke); web.pcap holds what was captured until then"},
		{name: "unknown reason", ex: &replay{stdout: pcapBytes, stderr: stats("cosmic-ray", 0)},
			summary:  head + `; stopped: unknown reason "cosmic-ray" (pass --image with the helper of this plugin's version)`,
			cutShort: `the capture on pod/web-0 was cut short: unknown reason "cosmic-ray" (pass --image with the helper of this plugin's version); web.pcap holds what was captured until then`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, runningPod(), nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			out := &memFile{}
			res, err := Run(ctx, Deps{Client: c.client, Executor: tt.ex, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, config(out))
			var cut *CutShortError
			switch {
			case tt.cutShort == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.cutShort != "" && (!errors.As(err, &cut) || err.Error() != tt.cutShort):
				t.Fatalf("error:\n got %v\nwant the cut-short error %s", err, tt.cutShort)
			}
			if !res.Reported {
				t.Fatalf("result not reported")
			}
			if got := res.Summary("web.pcap"); got != tt.summary {
				t.Errorf("summary:\n got %q\nwant %q", got, tt.summary)
			}
			if !bytes.Equal(out.Bytes(), tt.ex.stdout) || !out.closed {
				t.Errorf("output: %d bytes, closed %v; want %d bytes, closed", out.Len(), out.closed, len(tt.ex.stdout))
			}
		})
	}
}

// TestCaptureWaitsForAReusedContainer: a netdiag container left Waiting by
// an earlier run is reused, and waited for like a new one.
func TestCaptureWaitsForAReusedContainer(t *testing.T) {
	pod := runningPod()
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kube.NewEphemeralContainer(kube.EphemeralSpec{Image: image, PullPolicy: corev1.PullIfNotPresent, TargetContainer: "app"}, "old00")}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag-old00", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
	c := newCluster(t, pod, nil)
	ex := &replay{stdout: pcapBytes, stderr: statsLine}
	res, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, config(&memFile{}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reused || len(c.patches) != 0 || ex.container != "netdiag-old00" {
		t.Fatalf("reused %v, %d patches, exec in %q; want the waiting netdiag-old00 reused", res.Reused, len(c.patches), ex.container)
	}
	watched := false
	for _, a := range c.client.Actions() {
		watched = watched || a.GetVerb() == "watch"
	}
	if !watched {
		t.Errorf("the reused container was not waited for (no watch on the pod)")
	}

	// One that never starts fails the capture, saying what stays behind.
	c = newCluster(t, pod, nil)
	c.neverRuns = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	cfg := config(&memFile{})
	cfg.Timeout = 200 * time.Millisecond
	ex = &replay{stdout: pcapBytes, stderr: statsLine, notRunning: true}
	out := &memFile{}
	cfg.Open = func() (io.WriteCloser, error) { return out, nil }
	_, err = Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, cfg)
	want := "; the netdiag container netdiag-old00 stays in pod shop/web-0 (Kubernetes cannot remove ephemeral containers); it never started and uses no resources; a retry reuses it"
	if err == nil || !strings.HasPrefix(err.Error(), "timed out after 200ms waiting for the netdiag container netdiag-old00") || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %v, want a timeout ending with %q", err, want)
	}
	if out.Len() != 0 || !out.closed {
		t.Errorf("output %d bytes, closed %v: nothing may come from a container that never started", out.Len(), out.closed)
	}
}

// TestCaptureSaysWhatStaysBehind: an added container that cannot start (its
// image cannot be pulled) stays in the pod; the error says so and why.
func TestCaptureSaysWhatStaysBehind(t *testing.T) {
	c := newCluster(t, runningPod(), nil)
	c.neverRuns = &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "image not present"}
	out := &memFile{}
	_, err := Run(context.Background(), Deps{Client: c.client, Executor: &replay{notRunning: true}, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, config(out))
	want := "; the netdiag container netdiag-abcde stays in pod shop/web-0 (Kubernetes cannot remove ephemeral containers); it never started and uses no resources; a retry reuses it"
	if err == nil || !strings.HasPrefix(err.Error(), "the helper image "+image+" is not on node node-1") || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %v, want the pull advice ending with %q", err, want)
	}
	if len(c.patches) != 1 || !out.closed || out.Len() != 0 {
		t.Errorf("%d patches, output closed %v with %d bytes; want 1, closed, empty", len(c.patches), out.closed, out.Len())
	}
}
