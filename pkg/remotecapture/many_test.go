package remotecapture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	appsv1 "k8s.io/api/apps/v1"
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
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	netdiagtarget "github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

func shopPod(name, node string, phase corev1.PodPhase, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", ResourceVersion: "1", Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app"}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

// manyCluster is a fake API server for several pods: ephemeral container
// patches are applied, a watch reports them Running; refuse names pods
// whose patch is forbidden.
type manyCluster struct {
	client *fake.Clientset
	mu     sync.Mutex
	// patched counts patches per pod; settingUp is the number of pods
	// patched whose helper has not started yet, maxSettingUp its peak.
	patched      map[string]int
	settingUp    int
	maxSettingUp int
}

func newManyCluster(t *testing.T, refuse map[string]bool, objs ...runtime.Object) *manyCluster {
	objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	c := &manyCluster{client: fake.NewClientset(objs...), patched: map[string]int{}}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	c.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		if refuse[pa.GetName()] {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods/ephemeralcontainers"}, pa.GetName(), errors.New("denied by policy"))
		}
		obj, err := c.client.Tracker().Get(gvr, pa.GetNamespace(), pa.GetName())
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
		for _, ec := range p.Spec.EphemeralContainers {
			p.Status.EphemeralContainerStatuses = append(p.Status.EphemeralContainerStatuses, corev1.ContainerStatus{
				Name: ec.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
		}
		if err := c.client.Tracker().Update(gvr, &p, p.Namespace); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.patched[p.Name]++
		c.settingUp++
		c.maxSettingUp = max(c.maxSettingUp, c.settingUp)
		c.mu.Unlock()
		return true, &p, nil
	})
	c.client.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		name, _ := a.(k8stesting.WatchActionImpl).GetWatchRestrictions().Fields.RequiresExactMatch("metadata.name")
		w := watch.NewFakeWithChanSize(1, false)
		if obj, err := c.client.Tracker().Get(gvr, a.GetNamespace(), name); err == nil {
			w.Modify(obj)
		}
		return true, w, nil
	})
	return c
}

func (c *manyCluster) started() {
	c.mu.Lock()
	c.settingUp--
	c.mu.Unlock()
}

// podStream is a helper's pcapng stream: packets at the given offsets (ms)
// from t0, each 60 bytes whose first byte is seed+i.
func podStream(t *testing.T, seed byte, offsetsMS ...int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 262144, TimestampResolution: 9},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "netdiag-helper"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, ms := range offsetsMS {
		data := bytes.Repeat([]byte{seed + byte(i)}, 60)
		ts := manyT0.Add(time.Duration(ms) * time.Millisecond)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: 60, Length: 60}, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var manyT0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// podHelper is what the fake helper of one pod does.
type podHelper struct {
	stdout []byte
	stats  protocol.Stats
	// untilStopped: stream the packets, then wait until stdin ends (Ctrl-C),
	// like a capture without limits.
	untilStopped bool
}

// podExecutor plays a helper per pod.
type podExecutor struct {
	t       *testing.T
	c       *manyCluster
	helpers map[string]podHelper
	mu      sync.Mutex
	reqs    map[string]protocol.CaptureRequest
}

func (e *podExecutor) Stream(ctx context.Context, pod kube.Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e.c.started()
	req, err := protocol.ParseCaptureRequest(cmd[2:])
	if err != nil {
		e.t.Errorf("helper command %q: %v", cmd, err)
	}
	e.mu.Lock()
	if e.reqs == nil {
		e.reqs = map[string]protocol.CaptureRequest{}
	}
	e.reqs[pod.Name] = req
	e.mu.Unlock()
	h, ok := e.helpers[pod.Name]
	if !ok {
		e.t.Errorf("exec in pod %s, which has no helper", pod.Name)
		return errors.New("no helper")
	}
	io.WriteString(stderr, `{"type":"hello","protocol":1,"helper":"v0.1.0"}`+"\n")
	io.WriteString(stderr, `{"type":"ready","interface":"eth0","linkType":"EN10MB","snaplen":262144,"format":"pcapng"}`+"\n")
	stdout.Write(h.stdout)
	st := h.stats
	if h.untilStopped {
		_, _ = io.Copy(io.Discard, stdin)
		st.Reason = reasonStdinEOF
	}
	st.Interface = "eth0"
	line, _ := json.Marshal(struct {
		Type string `json:"type"`
		protocol.Stats
	}{"stats", st})
	stderr.Write(append(line, '\n'))
	return nil
}

func manyConfig(out *memFile, pods ...string) ManyConfig {
	cfg := config(out)
	cfg.Count, cfg.Filter, cfg.Format, cfg.OutputName = 0, "", "pcap", "web.pcapng"
	return ManyConfig{Config: cfg, Pods: pods, Window: 20 * time.Millisecond}
}

// readIfaces reads a merged output: interface names and descriptions, and
// each packet as NAME:SEED@MS.
func readMergedOutput(t *testing.T, b []byte) (names, descr, packets []string) {
	t.Helper()
	rd, err := pcapstream.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := rd.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := rd.Interfaces()[p.InterfaceID].Name
		packets = append(packets, fmt.Sprintf("%s:%d@%d", name, p.Data[0], p.Timestamp.Sub(manyT0).Milliseconds()))
	}
	for _, i := range rd.Interfaces() {
		names = append(names, i.Name)
		for _, o := range i.Options {
			if o.Code == 3 {
				descr = append(descr, string(o.Value))
			}
		}
	}
	return names, descr, packets
}

func TestRunManyMergesPodsOfSeveralNodes(t *testing.T) {
	c := newManyCluster(t, nil, shopPod("web-0", "node-1", corev1.PodRunning, nil), shopPod("web-1", "node-2", corev1.PodRunning, nil))
	ex := &podExecutor{t: t, c: c, helpers: map[string]podHelper{
		"web-0": {stdout: podStream(t, 10, 0, 20, 40), stats: protocol.Stats{Packets: 3, Bytes: 180, KernelDrops: 1, Reason: reasonCount}},
		"web-1": {stdout: podStream(t, 20, 10, 30), stats: protocol.Stats{Packets: 2, Bytes: 120, Reason: reasonCount}},
	}}
	out := &memFile{}
	var errOut bytes.Buffer
	n := 0
	deps := Deps{Client: c.client, Executor: ex, NameSuffix: func() string { n++; return fmt.Sprintf("s%04d", n) }, ErrOut: &errOut}
	cfg := manyConfig(out, "web-0", "web-1")
	// A window wider than any set-up: the order is the timestamps'.
	cfg.Window = time.Minute
	res, err := RunMany(context.Background(), deps, cfg)
	if err != nil {
		t.Fatalf("RunMany: %v\n%s", err, errOut.String())
	}
	if !out.closed {
		t.Error("output not closed")
	}
	for pod, r := range ex.reqs {
		if r.Format != "pcapng" {
			t.Errorf("pod %s: helper asked for %q, want pcapng", pod, r.Format)
		}
	}
	names, descr, packets := readMergedOutput(t, out.Bytes())
	if len(names) != 2 {
		t.Fatalf("interfaces %q", names)
	}
	for i, name := range names {
		node := map[string]string{"shop/web-0": "node-1", "shop/web-1": "node-2"}[name]
		if want := "eth0 of " + name + " on node " + node; node == "" || descr[i] != want {
			t.Errorf("interface %q: description %q, want %q", name, descr[i], want)
		}
	}
	want := "shop/web-0:10@0 shop/web-1:20@10 shop/web-0:11@20 shop/web-1:21@30 shop/web-0:12@40"
	if got := strings.Join(packets, " "); got != want {
		t.Errorf("packets\n got %s\nwant %s", got, want)
	}
	wantSummary := []string{
		"  pod/web-0 (node node-1) eth0: 3 packets (180 B), 1 dropped by the kernel; stopped: --count reached",
		"  pod/web-1 (node node-2) eth0: 2 packets (120 B), 0 dropped by the kernel; stopped: --count reached",
		"captured 5 packets (300 B) from 2 of 2 pods, 1 dropped by the kernel → web.pcapng",
	}
	if got := res.Summary("web.pcapng"); strings.Join(got, "\n") != strings.Join(wantSummary, "\n") {
		t.Errorf("summary:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSummary, "\n"))
	}
	if res.Merge.Packets != 5 || res.Written != int64(out.Len()) {
		t.Errorf("merge %+v, written %d of %d", res.Merge, res.Written, out.Len())
	}
}

// A pod that is not Running and one whose injection is refused are
// reported; the others are captured; the error says pods were missed (exit
// 1).
func TestRunManyPartialFailure(t *testing.T) {
	c := newManyCluster(t, map[string]bool{"web-3": true},
		shopPod("web-0", "node-1", corev1.PodRunning, nil),
		shopPod("web-2", "node-1", corev1.PodPending, nil),
		shopPod("web-3", "node-1", corev1.PodRunning, nil))
	ex := &podExecutor{t: t, c: c, helpers: map[string]podHelper{
		"web-0": {stdout: podStream(t, 10, 0, 20), stats: protocol.Stats{Packets: 2, Bytes: 120, Reason: reasonDuration}},
	}}
	out := &memFile{}
	var errOut bytes.Buffer
	res, err := RunMany(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, manyConfig(out, "web-0", "web-2", "web-3"))
	var missed *MissedError
	if !errors.As(err, &missed) || missed.Missed != 2 || missed.Total != 3 {
		t.Fatalf("RunMany: %v, want a MissedError of 2 of 3", err)
	}
	if want := "2 of 3 pods were not captured to the end (see above); web.pcapng holds the others"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !strings.Contains(errOut.String(), `not capturing: pod "web-2" in namespace "shop" is Pending, not Running: only a running pod can be captured`) {
		t.Errorf("stderr does not report the Pending pod:\n%s", errOut.String())
	}
	sum := strings.Join(res.Summary("web.pcapng"), "\n")
	for _, s := range []string{
		"  pod/web-0 (node node-1) eth0: 2 packets (120 B), 0 dropped by the kernel; stopped: --duration reached",
		`  pod/web-2: not captured: pod "web-2" in namespace "shop" is Pending, not Running`,
		"  pod/web-3 (node node-1): not captured: ",
		"captured 2 packets (120 B) from 1 of 3 pods, 0 dropped by the kernel → web.pcapng",
	} {
		if !strings.Contains(sum, s) {
			t.Errorf("summary lacks %q:\n%s", s, sum)
		}
	}
	names, _, packets := readMergedOutput(t, out.Bytes())
	if strings.Join(names, ",") != "shop/web-0" || len(packets) != 2 {
		t.Errorf("output: interfaces %q, packets %q", names, packets)
	}
	if c.patched["web-2"] != 0 {
		t.Error("the Pending pod was patched")
	}
}

// --strict: one pod that cannot be captured refuses the whole capture
// before anything is created or opened.
func TestRunManyStrict(t *testing.T) {
	c := newManyCluster(t, nil, shopPod("web-0", "node-1", corev1.PodRunning, nil), shopPod("web-2", "node-1", corev1.PodPending, nil))
	ex := &podExecutor{t: t, c: c}
	cfg := manyConfig(nil, "web-0", "web-2", "gone")
	opened := false
	cfg.Open = func() (io.WriteCloser, error) { opened = true; return &memFile{}, nil }
	cfg.Strict = true
	_, err := RunMany(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, cfg)
	want := `--strict: 2 of 3 pods cannot be captured, nothing was started: pod "web-2" in namespace "shop" is Pending, not Running: only a running pod can be captured; pod "gone" not found in namespace "shop"`
	if err == nil || err.Error() != want {
		t.Fatalf("RunMany --strict:\n got %v\nwant %s", err, want)
	}
	if opened || len(c.patched) != 0 || len(ex.reqs) != 0 {
		t.Errorf("--strict refusal created something: opened %v, patches %v, execs %v", opened, c.patched, ex.reqs)
	}
}

// Ctrl-C stops every pod cleanly; with --max-concurrency 1 every pod still
// captures (a pod leaves its set-up slot once its helper streams) and only
// one is set up at a time.
func TestRunManyCancelAndConcurrency(t *testing.T) {
	pods := []string{"web-0", "web-1", "web-2"}
	var objs []runtime.Object
	helpers := map[string]podHelper{}
	for i, p := range pods {
		objs = append(objs, shopPod(p, "node-1", corev1.PodRunning, nil))
		helpers[p] = podHelper{stdout: podStream(t, byte(10*(i+1)), i), stats: protocol.Stats{Packets: 1, Bytes: 60}, untilStopped: true}
	}
	c := newManyCluster(t, nil, objs...)
	ex := &podExecutor{t: t, c: c, helpers: helpers}
	out := &memFile{}
	cfg := manyConfig(out, pods...)
	cfg.MaxConcurrency = 1
	ctx, cancel := context.WithCancel(context.Background())
	var errOut lockedWriter
	errOut.w = &bytes.Buffer{}
	go func() {
		// Cancel once every pod streams.
		for {
			ex.mu.Lock()
			n := len(ex.reqs)
			ex.mu.Unlock()
			if n == len(pods) {
				time.Sleep(50 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	n := 0
	var nmu sync.Mutex
	suffix := func() string { nmu.Lock(); defer nmu.Unlock(); n++; return fmt.Sprintf("s%04d", n) }
	done := make(chan struct{})
	var res ManyResult
	var err error
	go func() {
		defer close(done)
		res, err = RunMany(ctx, Deps{Client: c.client, Executor: ex, NameSuffix: suffix, ErrOut: &errOut}, cfg)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("RunMany did not end after Ctrl-C")
	}
	if err != nil {
		t.Fatalf("RunMany after Ctrl-C: %v", err)
	}
	if c.maxSettingUp != 1 {
		t.Errorf("%d pods set up at once, want at most 1 (--max-concurrency 1)", c.maxSettingUp)
	}
	for _, p := range res.Pods {
		if why, _ := p.Result.StopReason(); !p.Captured() || why != "Ctrl-C" {
			t.Errorf("pod %s: captured %v, stopped %q, err %v", p.Pod, p.Captured(), why, p.Err)
		}
	}
	_, _, packets := readMergedOutput(t, out.Bytes())
	if want := "shop/web-0:10@0 shop/web-1:20@1 shop/web-2:30@2"; strings.Join(packets, " ") != want {
		t.Errorf("packets %q, want %s", packets, want)
	}
}

func TestSelectPods(t *testing.T) {
	web := map[string]string{"app": "web"}
	sel := &metav1.LabelSelector{MatchLabels: web}
	deleting := shopPod("web-d", "node-1", corev1.PodRunning, web)
	deleting.DeletionTimestamp = &metav1.Time{Time: manyT0}
	deleting.Finalizers = []string{"x"}
	c := newManyCluster(t, nil,
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Selector: sel}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "shop"}, Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}}},
		shopPod("web-b", "node-1", corev1.PodRunning, web),
		shopPod("web-a", "node-2", corev1.PodRunning, web),
		shopPod("web-p", "node-1", corev1.PodPending, web),
		deleting,
		shopPod("db-0", "node-1", corev1.PodRunning, map[string]string{"app": "db"}),
		shopPod("other", "node-1", corev1.PodRunning, map[string]string{"app": "other"}),
	)
	for _, tc := range []struct {
		args     []string
		selector string
		want     string
		skipped  string
		err      string
	}{
		{args: []string{"deploy/web"}, want: "web-a web-b",
			skipped: "pod/web-d of deployment/web is being deleted; pod/web-p of deployment/web is Pending, not Running"},
		{args: []string{"sts/db", "pod/web-b", "deploy/web"}, want: "db-0 web-b web-a"},
		{selector: "app in (web,other)", want: "other web-a web-b"},
		{args: []string{"pod/ghost"}, want: "ghost"},
		{args: []string{"ds/agent"}, err: `daemonset/agent has no Running pods in namespace "shop" (selector app=agent)`},
		{selector: "app=nothing", err: `-l app=nothing has no Running pods in namespace "shop" (selector app=nothing)`},
		{args: []string{"deploy/api"}, err: `deployment/api not found in namespace "shop"`},
	} {
		targets, err := netdiagtarget.ParseCaptureArgs(tc.args, tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SelectPods(context.Background(), c.client, "shop", targets)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("SelectPods(%v): %v, want %s", targets, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got.Pods, " ") != tc.want {
			t.Errorf("SelectPods(%v) = %v, %v; want %s", targets, got.Pods, err, tc.want)
		}
		if tc.skipped != "" && strings.Join(got.Skipped, "; ") != tc.skipped {
			t.Errorf("SelectPods(%v) skipped %q, want %q", targets, got.Skipped, tc.skipped)
		}
	}
}

// When the reader of the merged output goes away, every pod stops, quiet
// ones too, and the capture ends normally.
func TestRunManyStopsWhenTheReaderLeaves(t *testing.T) {
	c := newManyCluster(t, nil, shopPod("web-0", "node-1", corev1.PodRunning, nil), shopPod("web-1", "node-1", corev1.PodRunning, nil))
	ex := &podExecutor{t: t, c: c, helpers: map[string]podHelper{
		"web-0": {stdout: podStream(t, 10, 0), untilStopped: true},
		"web-1": {stdout: podStream(t, 20), untilStopped: true}, // quiet: no packet
	}}
	cfg := manyConfig(nil, "web-0", "web-1")
	cfg.Open = func() (io.WriteCloser, error) { return &brokenPipe{}, nil }
	cfg.OutputName = "stdout"
	var errOut lockedWriter
	errOut.w = &bytes.Buffer{}
	n := 0
	done := make(chan struct{})
	var res ManyResult
	var err error
	go func() {
		defer close(done)
		res, err = RunMany(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { n++; return fmt.Sprintf("s%04d", n) }, ErrOut: &errOut}, cfg)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the capture did not stop after its reader went away")
	}
	if err != nil {
		t.Fatalf("RunMany: %v\n%s", err, strings.Join(res.Summary("stdout"), "\n"))
	}
	if !res.ReaderGone {
		t.Error("ReaderGone not set")
	}
	// A pod still being set up when the reader left is not started, and
	// not missed either.
	stopped := 0
	for _, p := range res.Pods {
		why, _ := p.Result.StopReason()
		switch {
		case p.Captured() && why == "the reader went away":
			stopped++
		case p.ReaderLeft && !p.Started:
		default:
			t.Errorf("pod %s: stopped %q, captured %v, err %v", p.Pod, why, p.Captured(), p.Err)
		}
	}
	if stopped == 0 {
		t.Error("no pod was stopped by the reader going away")
	}
	if s := errOut.w.(*bytes.Buffer).String(); !strings.Contains(s, "the reader of stdout went away (broken pipe); stopping the capture on every pod") {
		t.Errorf("stderr:\n%s", s)
	}
}
