package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"time"

	"github.com/google/go-cmp/cmp"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
)

// Recorded helper output (netdiag-helper check on the local cluster, cut
// down).
const (
	helloLine    = `{"type":"hello","protocol":1,"helper":"v0.1.0"}`
	bridgeOK     = `{"type":"finding","check":"bridge","severity":"ok","subject":"cbr0","message":"bridge cbr0 is up with [10.244.0.1/24] and 2 ports (2 up)","data":{"adminUp":true,"bridge":"cbr0"}}`
	bridgeDown   = `{"type":"finding","check":"bridge","severity":"fail","subject":"cbr0","message":"bridge cbr0 is down: pods on it cannot reach the node, each other or the network","remedy":"ip link set cbr0 up (or: kubectl netdiag node check --fix)","data":{"adminUp":false,"bridge":"cbr0","mtu":1400}}`
	conntrackOK  = `{"type":"finding","check":"conntrack","severity":"ok","subject":"node","message":"conntrack table 0% full (120 of 262144)","data":{"count":120,"max":262144,"recommendedMax":786432}}`
	conntrackHot = `{"type":"finding","check":"conntrack","severity":"warn","subject":"node","message":"conntrack table 91% full (238901 of 262144)","remedy":"raise net.netfilter.nf_conntrack_max to 786432 (MemTotal/32) or spread the workload","data":{"count":238901,"max":262144,"recommendedMax":786432}}`
	staleFail    = `{"type":"finding","check":"stale","severity":"fail","subject":"shop/web","message":"stale process 4242 (nc -l -p 8081) of container 0123456789ab holds tcp port 8081; neither the API nor the runtime knows that container","remedy":"end it","data":{"pid":4242,"port":8081,"protocol":"tcp","containerID":"0123456789abcdef","podUID":"1111-2222","pod":"shop/web","cmdline":"nc -l -p 8081","startTicks":123456,"started":"2026-11-30T08:00:00Z"}}`
	doneLine     = `{"type":"done","findings":2}`
)

func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// call is one exec the fake executor saw.
type call struct {
	Pod   kube.Pod
	Cmd   []string
	Stdin string
}

// replayExec answers each exec with the next recorded output.
type replayExec struct {
	mu      sync.Mutex
	calls   []call
	outputs func(cmd []string, n int) (string, error)
	delay   time.Duration
	running atomic.Int32
	peak    atomic.Int32
}

func (e *replayExec) Stream(ctx context.Context, pod kube.Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	n := e.running.Add(1)
	defer e.running.Add(-1)
	for {
		p := e.peak.Load()
		if n <= p || e.peak.CompareAndSwap(p, n) {
			break
		}
	}
	var in []byte
	if stdin != nil {
		in, _ = io.ReadAll(stdin)
	}
	e.mu.Lock()
	e.calls = append(e.calls, call{Pod: pod, Cmd: cmd, Stdin: string(in)})
	idx := len(e.calls) - 1
	e.mu.Unlock()
	time.Sleep(e.delay)
	out, err := e.outputs(cmd, idx)
	_, _ = io.WriteString(stdout, out)
	return err
}

// fakeCluster is a fake API with nodes and pods; created node pods turn
// Running at once, and every deletion is recorded.
type fakeCluster struct {
	client  *fake.Clientset
	mu      sync.Mutex
	created []*corev1.Pod
	deleted []string
}

func newFakeCluster(nodes ...string) *fakeCluster {
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"pool": "a"}}})
	}
	objs = append(objs, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "1111-2222"},
		Spec:       corev1.PodSpec{NodeName: nodes[0], Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.7",
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", ContainerID: "containerd://abc"}}},
	}, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"},
		Spec:       corev1.PodSpec{NodeName: nodes[0], HostNetwork: true},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "192.168.1.10"},
	})
	c := &fakeCluster{client: fake.NewClientset(objs...)}
	c.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		pod.Status.Phase = corev1.PodRunning
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		c.mu.Lock()
		c.created = append(c.created, pod.DeepCopy())
		c.mu.Unlock()
		return false, nil, nil
	})
	c.client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.mu.Lock()
		c.deleted = append(c.deleted, a.(k8stesting.DeleteAction).GetName())
		c.mu.Unlock()
		return false, nil, nil
	})
	return c
}

func testCheckOptions(c *fakeCluster, ex *replayExec, terminal bool) (CheckOptions, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	o := newCheckOptions(genericclioptions.NewConfigFlags(true), streams)
	o.Namespace = "ops"
	o.Client = c.client
	o.Executor = ex
	o.SkipPreflight = true
	o.Image = "img:v1"
	o.IsTerminal = func(any) bool { return terminal }
	return o, in, out, errOut
}

func nodeCheck(c *fakeCluster, ex *replayExec, terminal bool, args []string, mutate func(*NodeCheckOptions)) (error, *NodeCheckOptions, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	co, in, out, errOut := testCheckOptions(c, ex, terminal)
	o := &NodeCheckOptions{CheckOptions: co, Top: 10}
	if mutate != nil {
		mutate(o)
	}
	if err := o.Complete(args); err != nil {
		return err, o, in, out, errOut
	}
	if err := o.Validate(); err != nil {
		return err, o, in, out, errOut
	}
	return o.Run(context.Background()), o, in, out, errOut
}

func TestNodeCheckFlow(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func([]string, int) (string, error) {
		return lines(helloLine, bridgeDown, conntrackOK, doneLine), nil
	}}
	err, _, _, out, _ := nodeCheck(c, ex, false, []string{"node/node-1"}, func(o *NodeCheckOptions) { o.Checks = []string{"bridge", "conntrack"} })
	if ExitCode(err) != 3 {
		t.Fatalf("exit code %d (%v), want 3", ExitCode(err), err)
	}
	if err.Error() != "1 check failed on 1 node" {
		t.Errorf("error %q", err)
	}
	if len(c.created) != 1 {
		t.Fatalf("%d pods created", len(c.created))
	}
	p := c.created[0]
	if p.Namespace != "ops" || p.Spec.NodeName != "node-1" || !p.Spec.HostNetwork || !p.Spec.Containers[0].VolumeMounts[0].ReadOnly {
		t.Errorf("node pod: ns %s node %s hostNetwork %v", p.Namespace, p.Spec.NodeName, p.Spec.HostNetwork)
	}
	if len(c.deleted) != 1 || c.deleted[0] != p.Name {
		t.Errorf("deleted %v, want [%s]", c.deleted, p.Name)
	}
	want := protocol.DefaultCheckRequest()
	want.Checks = []string{"bridge", "conntrack"}
	want.Pods = parseCheck(t, ex.calls[0]).Pods
	if d := cmp.Diff(want, parseCheck(t, ex.calls[0])); d != "" {
		t.Errorf("check request (-want +got):\n%s", d)
	}
	var pods []map[string]any
	if err := json.Unmarshal([]byte(ex.calls[0].Stdin), &pods); err != nil || len(pods) != 1 || pods[0]["name"] != "web" || pods[0]["uid"] != "1111-2222" || pods[0]["ip"] != "10.244.0.7" {
		t.Errorf("pods on stdin (hostNetwork pods left out): %s (%v)", ex.calls[0].Stdin, err)
	}
	if !strings.Contains(out.String(), "bridge     fail      cbr0     bridge cbr0 is down") {
		t.Errorf("table:\n%s", out)
	}
}

func TestNodeCheckExecFailsPodDeleted(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func([]string, int) (string, error) {
		return lines(helloLine, bridgeOK), errors.New("stream reset")
	}}
	err, _, _, _, _ := nodeCheck(c, ex, false, []string{"node-1"}, nil)
	if ExitCode(err) != 1 || !strings.Contains(err.Error(), "running the helper: stream reset") {
		t.Fatalf("err %v (exit %d)", err, ExitCode(err))
	}
	if len(c.created) != 1 || len(c.deleted) != 1 {
		t.Errorf("created %d, deleted %v", len(c.created), c.deleted)
	}
}

func TestNodeCheckCutShort(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func([]string, int) (string, error) { return lines(helloLine, bridgeOK), nil }}
	err, _, _, _, _ := nodeCheck(c, ex, false, []string{"node-1"}, nil)
	if ExitCode(err) != 1 || err.Error() != "node-1: the helper's report was cut short (no done line)" {
		t.Fatalf("err %v", err)
	}
	if len(c.deleted) != 1 {
		t.Errorf("deleted %v", c.deleted)
	}
}

func TestNodeCheckOKExitZero(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func([]string, int) (string, error) { return lines(helloLine, bridgeOK, conntrackOK, doneLine), nil }}
	err, _, _, _, _ := nodeCheck(c, ex, false, []string{"node-1"}, nil)
	if err != nil {
		t.Fatalf("err %v", err)
	}
}

func TestNodeCheckConcurrencyBound(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	c := newFakeCluster(nodes...)
	ex := &replayExec{delay: 50 * time.Millisecond, outputs: func([]string, int) (string, error) { return lines(helloLine, bridgeOK, doneLine), nil }}
	err, _, _, out, _ := nodeCheck(c, ex, false, nil, func(o *NodeCheckOptions) { o.All = true; o.MaxConcurrency = 3 })
	if err != nil {
		t.Fatal(err)
	}
	if p := ex.peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3", p)
	}
	if len(c.created) != 7 || len(c.deleted) != 7 {
		t.Errorf("created %d deleted %d", len(c.created), len(c.deleted))
	}
	// Results come in node order whatever finished first.
	if strings.Index(out.String(), "NODE n1") > strings.Index(out.String(), "NODE n7") {
		t.Errorf("nodes out of order:\n%s", out)
	}
}

func TestFixConfirmation(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		yes, dry bool
		answer   string
		want     string
		fixRuns  bool
	}{
		{"no terminal, no --yes", false, false, false, "", "--fix needs --yes or an interactive terminal", false},
		{"--yes", false, true, false, "", "", true},
		{"terminal, yes", true, false, false, "y\n", "", true},
		{"terminal, no", true, false, false, "n\n", "", false},
		{"--dry-run", false, false, true, "", "1 check failed on 1 node", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster("node-1")
			fixed := false
			ex := &replayExec{outputs: func(cmd []string, n int) (string, error) {
				if cmd[1] == "fix" {
					fixed = true
					return lines(helloLine, `{"type":"action","action":"bridge-up","target":"cbr0","result":"done","message":"bridge cbr0 brought up"}`, `{"type":"done","findings":1}`), nil
				}
				if fixed {
					return lines(helloLine, bridgeOK, doneLine), nil
				}
				return lines(helloLine, bridgeDown, doneLine), nil
			}}
			err, o, in, _, errOut := nodeCheck(c, ex, tt.terminal, []string{"node-1"}, func(o *NodeCheckOptions) {
				o.Fix, o.Yes, o.DryRun = true, tt.yes, tt.dry
				o.In = strings.NewReader(tt.answer)
			})
			_ = in
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.name == "terminal, no" {
				tt.want = "1 check failed on 1 node"
			}
			if got != tt.want {
				t.Errorf("err %q, want %q", got, tt.want)
			}
			if fixed != tt.fixRuns {
				t.Errorf("fix ran: %v, want %v", fixed, tt.fixRuns)
			}
			if tt.want == "--fix needs --yes or an interactive terminal" && len(c.created) != 0 {
				t.Errorf("a pod was created before refusing")
			}
			if tt.dry {
				if !strings.Contains(errOut.String(), "dry run: on node node-1, would bring bridge cbr0 up:\n  /netdiag-helper fix --bridge-up=cbr0 ") {
					t.Errorf("dry run output: %q", errOut)
				}
				if len(c.created) != 1 || !c.created[0].Spec.Containers[0].VolumeMounts[0].ReadOnly {
					t.Errorf("dry run must use a read-only host mount")
				}
			}
			if tt.fixRuns {
				ms := c.created[0].Spec.Containers[0].VolumeMounts
				if !ms[0].ReadOnly || len(ms) != 2 || ms[1].MountPath != "/host"+nodeops.ConntrackPersistDir || ms[1].ReadOnly {
					t.Errorf("--fix needs / read-only and only %s writable: %+v", nodeops.ConntrackPersistDir, ms)
				}
				var fixCmd []string
				for _, cl := range ex.calls {
					if cl.Cmd[1] == "fix" {
						fixCmd = cl.Cmd
					}
				}
				if fix := parseFix(t, fixCmd); fix.BridgeUp != "cbr0" || fix.ConntrackMax != 0 || len(fix.Kill) != 0 || fix.Check.Top != 10 || fix.Check.Pods == nil {
					t.Errorf("fix exec: %q", fixCmd)
				}
			}
			if tt.terminal && !strings.Contains(errOut.String(), "On node node-1: bring bridge cbr0 up? [y/N] ") {
				t.Errorf("prompt: %q", errOut)
			}
			_ = o
		})
	}
}

func TestStaleKillFlow(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func(cmd []string, n int) (string, error) {
		if cmd[1] == "fix" {
			return lines(helloLine, `{"type":"action","action":"kill","target":"4242","result":"done","message":"ended","data":{"pid":4242,"signal":"SIGTERM"}}`, `{"type":"done","findings":1}`), nil
		}
		if n == 0 {
			return lines(helloLine, staleFail, doneLine), nil
		}
		return lines(helloLine, `{"type":"finding","check":"stale","severity":"ok","subject":"shop/web","message":"no stale processes"}`, doneLine), nil
	}}
	co, _, out, _ := testCheckOptions(c, ex, false)
	co.Yes = true
	co.Namespace = "shop"
	o := &PodCheckOptions{CheckOptions: co, Command: "stale", FixedChecks: []string{"stale"}, Kill: true, Port: 8081}
	if err := o.Complete([]string{"pod/web"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Output = "json"
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	if c.created[0].Namespace != "shop" {
		t.Errorf("node pod in %s", c.created[0].Namespace)
	}
	check := parseCheck(t, ex.calls[0])
	want := protocol.DefaultCheckRequest()
	want.Checks, want.PodUID, want.PodIP, want.KnownContainers, want.Port, want.Pods = []string{"stale"}, "1111-2222", "10.244.0.7", []string{"containerd://abc"}, 8081, check.Pods
	if d := cmp.Diff(want, check); d != "" {
		t.Errorf("check request (-want +got):\n%s", d)
	}
	fix := parseFix(t, ex.calls[1].Cmd)
	if d := cmp.Diff([]protocol.KillTarget{{PID: 4242, StartTicks: 123456}}, fix.Kill); d != "" || fix.Check.PodUID != "1111-2222" || fix.BridgeUp != "" {
		t.Errorf("fix exec %q: kills (-want +got):\n%s", ex.calls[1].Cmd, d)
	}
	var r report.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Actions) != 1 || r.Actions[0].Node != "node-1" || r.Actions[0].Result != "done" {
		t.Errorf("json: %s (%v)", out, err)
	}
}

func TestPodCheckDefaultPort(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func([]string, int) (string, error) { return lines(helloLine, bridgeOK, doneLine), nil }}
	co, _, _, _ := testCheckOptions(c, ex, false)
	co.Namespace = "shop"
	o := &PodCheckOptions{CheckOptions: co, Command: "pod check"}
	if err := o.Complete([]string{"web"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := parseCheck(t, ex.calls[0]); got.Port != 8080 || len(got.Checks) != 0 {
		t.Errorf("exec: %q", ex.calls[0].Cmd)
	}
}

func TestCheckValidate(t *testing.T) {
	c := newFakeCluster("node-1")
	for _, tt := range []struct {
		args   []string
		mutate func(o *NodeCheckOptions)
		want   string
	}{
		{nil, nil, "name nodes, or use --all or -l SELECTOR (exactly one of them), e.g. kubectl netdiag node check NODE"},
		{[]string{"n"}, func(o *NodeCheckOptions) { o.All = true }, "name nodes, or use --all or -l SELECTOR (exactly one of them), e.g. kubectl netdiag node check NODE"},
		{[]string{"n"}, func(o *NodeCheckOptions) { o.Checks = []string{"nat"} }, `--checks: unknown check "nat" (known: bridge,veth,arp,mtu,conntrack,stale,dns)`},
		{[]string{"n"}, func(o *NodeCheckOptions) { o.Output = "xml" }, `-o must be one of table, json, yaml, got "xml"`},
		{[]string{"n"}, func(o *NodeCheckOptions) { o.MaxConcurrency = 0 }, "--max-concurrency must be at least 1, got 0"},
		{[]string{"n"}, func(o *NodeCheckOptions) { o.Yes = true }, "--yes only goes with a flag that changes the node (--fix, --kill)"},
	} {
		co, _, _, _ := testCheckOptions(c, &replayExec{}, false)
		o := &NodeCheckOptions{CheckOptions: co, Top: 10, Args: tt.args}
		if tt.mutate != nil {
			tt.mutate(o)
		}
		err := o.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Validate(%v):\n got %q\nwant %q", tt.args, got, tt.want)
		}
	}
	// The stale command names --kill.
	co, _, _, _ := testCheckOptions(c, &replayExec{}, false)
	o := &PodCheckOptions{CheckOptions: co, Kill: true}
	if err := o.Validate(); err == nil || err.Error() != "--kill needs --yes or an interactive terminal" {
		t.Errorf("stale --kill: %v", err)
	}
}

const conntrackTop = `{"type":"finding","check":"conntrack","severity":"ok","subject":"node","message":"conntrack table 0% full (120 of 262144)","data":{"count":120,"max":262144,"topIPsScope":"pods","topIPs":[{"ip":"10.244.0.7","entries":42,"pod":"shop/web"}]}}`

// A flag that asks for data shows it: node check --top lists the top IPs
// in the table, and a node check without it does not; the table ends with
// the node's summary line.
func TestNodeCheckTopInTable(t *testing.T) {
	for _, show := range []bool{false, true} {
		c := newFakeCluster("node-1")
		ex := &replayExec{outputs: func([]string, int) (string, error) { return lines(helloLine, bridgeOK, conntrackTop, doneLine), nil }}
		err, _, _, out, _ := nodeCheck(c, ex, false, []string{"node-1"}, func(o *NodeCheckOptions) { o.ShowTopIPs = show; o.Top = 5 })
		if err != nil {
			t.Fatal(err)
		}
		sub := "           IP          POD       ENTRIES\n           10.244.0.7  shop/web  42\n"
		if got := strings.Contains(out.String(), sub); got != show {
			t.Errorf("--top given %v, sub-table shown %v:\n%s", show, got, out)
		}
		if !strings.HasSuffix(out.String(), "\n\nnode-1: 2 checks, all ok\n") {
			t.Errorf("no summary line:\n%s", out)
		}
	}
}

// `conntrack` is about the top IPs: its table lists them.
func TestConntrackTopInTable(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func([]string, int) (string, error) { return lines(helloLine, conntrackTop, doneLine), nil }}
	co, _, out, _ := testCheckOptions(c, ex, false)
	o := &ConntrackOptions{CheckOptions: co, Top: 3}
	if err := o.Complete([]string{"node/node-1"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := parseCheck(t, ex.calls[0]); strings.Join(got.Checks, ",") != "conntrack" || got.Top != 3 || got.Pods == nil {
		t.Errorf("exec: %q", ex.calls[0].Cmd)
	}
	want := `NODE node-1
CHECK      SEVERITY  SUBJECT  MESSAGE
conntrack  ok        node     conntrack table 0% full (120 of 262144)
           IP          POD       ENTRIES
           10.244.0.7  shop/web  42

node-1: 1 check, all ok
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out, want)
	}
}

// The kill confirmation shows each process (command line, container, pod,
// port, start time) before it asks, with control characters escaped; a
// "no" signals nothing.
func TestStaleKillConfirmationShowsProcesses(t *testing.T) {
	evil := strings.Replace(staleFail, `"cmdline":"nc -l -p 8081"`, `"cmdline":"nc \u001b[31m-l -p 8081"`, 1)
	evil = strings.Replace(evil, `"pod":"shop/web"`, `"pod":"shop/web\u001b]0;x\u0007"`, 1)
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func(cmd []string, n int) (string, error) {
		if cmd[1] == "fix" {
			t.Errorf("fix ran after a no: %v", cmd)
		}
		return lines(helloLine, evil, doneLine), nil
	}}
	co, in, _, errOut := testCheckOptions(c, ex, true)
	co.Namespace = "shop"
	in.WriteString("n\n")
	o := &PodCheckOptions{CheckOptions: co, Command: "stale", FixedChecks: []string{"stale"}, Kill: true, Port: 8081}
	if err := o.Complete([]string{"pod/web"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	_ = o.Run(context.Background())
	got := errOut.String()
	if strings.ContainsRune(got, 0x1b) || strings.ContainsRune(got, 0x07) {
		t.Fatalf("a control character reached the terminal: %q", got)
	}
	want := `On node node-1:
  PID 4242: "nc \x1b[31m-l -p 8081"
      container 0123456789abcdef of pod shop/web\x1b]0;x\a (uid 1111-2222)
      holds port tcp/8081; started 2026-11-30T08:00:00Z (tick 123456 after boot)
On node node-1: end stale process 4242 (SIGTERM, then SIGKILL)? [y/N] `
	if !strings.Contains(got, want) {
		t.Errorf("confirmation:\n%s\nwant:\n%s", got, want)
	}
	for _, cl := range ex.calls {
		if cl.Cmd[1] == "fix" {
			t.Errorf("fix ran: %v", cl.Cmd)
		}
	}
}

// Without the runtime nothing is called stale: --kill refuses, runs no
// fix, and says how to give the runtime.
func TestStaleKillRefusedWithoutRuntime(t *testing.T) {
	unreachable := `{"type":"finding","check":"stale","severity":"warn","subject":"shop/web","message":"runtime not reachable: cannot tell stale from restarted (no socket); 2 processes run in pod UID 1111-2222","data":{"podUID":"1111-2222","runtimeReachable":false,"runtimeError":"no socket","processes":[{"pid":4242,"cmdline":"nc"}]}}`
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func(cmd []string, n int) (string, error) {
		return lines(helloLine, unreachable, doneLine), nil
	}}
	co, _, out, errOut := testCheckOptions(c, ex, false)
	co.Yes = true
	co.Namespace = "shop"
	o := &PodCheckOptions{CheckOptions: co, Command: "stale", FixedChecks: []string{"stale"}, Kill: true}
	o.RuntimeEndpoint = "unix:///nonexistent.sock"
	if err := o.Complete([]string{"pod/web"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	err := o.Run(context.Background())
	if err == nil {
		t.Fatal("--kill without a runtime succeeded")
	}
	for _, cl := range ex.calls {
		if cl.Cmd[1] == "fix" {
			t.Errorf("fix ran: %v", cl.Cmd)
		}
	}
	if !strings.Contains(errOut.String(), "--kill refused on pod shop/web: runtime not reachable: cannot tell stale from restarted; pass --runtime-endpoint") {
		t.Errorf("stderr: %q", errOut)
	}
	if !strings.Contains(out.String(), "ACTION kill node-1: --kill refused") || !strings.Contains(out.String(), "(refused)") {
		t.Errorf("stdout: %s", out)
	}
}

// A --bridge value that looks like a fix flag reaches the helper as one
// --bridge=VALUE argument, after the fix's own arguments.
func TestNodeFixArgsKeepValues(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func(cmd []string, n int) (string, error) {
		if cmd[1] == "fix" {
			return lines(helloLine, `{"type":"action","action":"bridge-up","target":"cbr0","result":"done","message":"up"}`, `{"type":"done","findings":1}`), nil
		}
		return lines(helloLine, bridgeDown, doneLine), nil
	}}
	err, _, _, _, _ := nodeCheck(c, ex, false, []string{"node-1"}, func(o *NodeCheckOptions) {
		o.Fix, o.Yes, o.Bridge = true, true, "--persist-dir=/etc"
	})
	if err != nil && ExitCode(err) != report.ExitFailed {
		t.Fatal(err)
	}
	var fix []string
	for _, cl := range ex.calls {
		if cl.Cmd[1] == "fix" {
			fix = cl.Cmd
		}
	}
	got := strings.Join(fix, " ")
	if !strings.HasPrefix(got, "/netdiag-helper fix --bridge-up=cbr0 --bridge=--persist-dir=/etc ") {
		t.Errorf("fix exec: %s", got)
	}
}

// parseCheck is the helper's reading of a check exec: the contract, not
// the spelling of the command line.
func parseCheck(t *testing.T, c call) protocol.CheckRequest {
	t.Helper()
	if len(c.Cmd) < 2 || c.Cmd[0] != kube.HelperPath || c.Cmd[1] != "check" {
		t.Fatalf("not a helper check: %q", c.Cmd)
	}
	r, err := protocol.ParseCheckRequest(c.Cmd[2:], strings.NewReader(c.Stdin), nil)
	if err != nil {
		t.Fatalf("the helper refuses %q: %v", c.Cmd, err)
	}
	return r
}

// parseFix is the helper's reading of a fix exec.
func parseFix(t *testing.T, cmd []string) protocol.FixRequest {
	t.Helper()
	if len(cmd) < 2 || cmd[0] != kube.HelperPath || cmd[1] != "fix" {
		t.Fatalf("not a helper fix: %q", cmd)
	}
	r, err := protocol.ParseFixRequest(cmd[2:], strings.NewReader("[]"), nil)
	if err != nil {
		t.Fatalf("the helper refuses %q: %v", cmd, err)
	}
	return r
}
