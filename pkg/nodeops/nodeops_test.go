package nodeops

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// session records the helper commands a fix runs and answers with actions.
type session struct {
	cmds    [][]string
	actions []protocol.Action
	err     error
}

func (s *session) Exec(_ context.Context, args []string, _ []byte) (*kube.HelperReport, error) {
	s.cmds = append(s.cmds, args)
	return &kube.HelperReport{Actions: s.actions}, s.err
}

func finding(check string, sev protocol.Severity, data any) protocol.Finding {
	return protocol.Finding{Type: protocol.TypeFinding, Check: check, Severity: sev, Subject: "s", Data: protocol.EncodeData(data)}
}

func report(fs ...protocol.Finding) *kube.HelperReport { return &kube.HelperReport{Findings: fs} }

var (
	no         = false
	bridgeDown = finding(protocol.CheckBridge, protocol.SeverityFail, protocol.BridgeData{Bridge: "cbr0", AdminUp: &no})
	max        = uint64(1000)
	hot        = finding(protocol.CheckConntrack, protocol.SeverityWarn, protocol.ConntrackData{Max: &max, RecommendedMax: 4096})
)

func TestPlanNodeFixes(t *testing.T) {
	carrierless := finding(protocol.CheckBridge, protocol.SeverityWarn, protocol.BridgeData{Bridge: "cbr0"})
	atMax := finding(protocol.CheckConntrack, protocol.SeverityWarn, protocol.ConntrackData{Max: &max, RecommendedMax: 1000})
	for _, tt := range []struct {
		name              string
		rep               *kube.HelperReport
		bridge, conntrack bool
		want              protocol.FixRequest
	}{
		{"both", report(bridgeDown, hot), true, true, protocol.FixRequest{BridgeUp: "cbr0", ConntrackMax: 4096, PersistDir: ConntrackPersistDir}},
		{"conntrack only", report(bridgeDown, hot), false, true, protocol.FixRequest{ConntrackMax: 4096, PersistDir: ConntrackPersistDir}},
		{"a bridge up without carrier is not fixed", report(carrierless), true, true, protocol.FixRequest{}},
		{"max already recommended", report(atMax), true, true, protocol.FixRequest{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := PlanNodeFixes(tt.bridge, tt.conntrack)(tt.rep)
			if err != nil {
				t.Fatal(err)
			}
			var got protocol.FixRequest
			for _, s := range steps {
				s.Apply(&got)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// Data that is not the check's struct is an error, not a silent no.
	bad := protocol.Finding{Check: protocol.CheckBridge, Severity: protocol.SeverityFail, Subject: "cbr0", Data: []byte(`{"adminUp":"no"}`)}
	if _, err := PlanNodeFixes(true, true)(report(bad)); err == nil || !strings.Contains(err.Error(), "does not match this plugin's protocol") {
		t.Errorf("mismatched data: %v", err)
	}
}

func TestPlanKillsRefusals(t *testing.T) {
	unreachable := finding(protocol.CheckStale, protocol.SeverityWarn, protocol.StaleData{RuntimeReachable: &no, RuntimeError: "dial unix: no such file"})
	noStart := finding(protocol.CheckStale, protocol.SeverityFail, protocol.StaleData{StaleProcess: protocol.StaleProcess{PID: 4242}})
	ok := finding(protocol.CheckStale, protocol.SeverityOK, protocol.StaleData{Processes: &protocol.StaleProcesses{Count: 3}})
	for _, tt := range []struct {
		name string
		rep  *kube.HelperReport
		want string
	}{
		{"runtime unreachable", report(unreachable), StaleRuntimeUnreachable},
		{"no start time", report(noStart), "did not report when process 4242 started"},
	} {
		steps, err := PlanKills(tt.rep)
		if err != nil || len(steps) != 1 || !strings.Contains(steps[0].Refuse, tt.want) {
			t.Errorf("%s: %+v, %v", tt.name, steps, err)
		}
	}
	if steps, err := PlanKills(report(ok)); err != nil || len(steps) != 0 {
		t.Errorf("nothing stale: %+v, %v", steps, err)
	}
}

func TestFixerRun(t *testing.T) {
	check := protocol.DefaultCheckRequest()
	check.Checks = []string{"bridge"}
	check.Pods = []protocol.PodInfo{}
	done := []protocol.Action{{Action: "bridge-up", Target: "cbr0", Result: protocol.ActionDone}}

	t.Run("approved", func(t *testing.T) {
		s := &session{actions: done}
		var shown []string
		f := &Fixer{Plan: PlanNodeFixes(true, true), Show: func(_ string, what, _, cmd []string) {
			shown = what
			if cmd != nil {
				t.Errorf("a command shown outside a dry run: %q", cmd)
			}
		}}
		actions, again, err := f.run(context.Background(), "n1", s, report(bridgeDown), check)
		if err != nil || !again || len(actions) != 1 || len(s.cmds) != 1 {
			t.Fatalf("actions %+v again %v err %v cmds %q", actions, again, err, s.cmds)
		}
		if d := cmp.Diff([]string{"bring bridge cbr0 up"}, shown); d != "" {
			t.Error(d)
		}
		got, err := protocol.ParseFixRequest(s.cmds[0][1:], strings.NewReader("[]"), nil)
		if err != nil || got.BridgeUp != "cbr0" || strings.Join(got.Check.Checks, ",") != "bridge" || s.cmds[0][0] != "fix" {
			t.Errorf("fix command %q read as %+v (%v)", s.cmds[0], got, err)
		}
	})
	t.Run("declined", func(t *testing.T) {
		s := &session{}
		var said string
		f := &Fixer{Plan: PlanNodeFixes(true, true), Approve: func(context.Context, string, []string) (bool, error) { return false, nil },
			Say: func(node, msg string) { said = node + " " + msg }}
		actions, again, err := f.run(context.Background(), "n1", s, report(bridgeDown), check)
		if err != nil || again || len(s.cmds) != 0 || len(actions) != 1 || actions[0].Result != protocol.ActionSkipped || said != "n1 left unchanged" {
			t.Errorf("actions %+v again %v err %v cmds %q said %q", actions, again, err, s.cmds, said)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		s := &session{}
		var cmd []string
		f := &Fixer{Plan: PlanNodeFixes(true, true), DryRun: true, Show: func(_ string, _, _, c []string) { cmd = c }}
		if _, _, err := f.run(context.Background(), "n1", s, report(bridgeDown, hot), check); err != nil || len(s.cmds) != 0 {
			t.Fatalf("err %v cmds %q", err, s.cmds)
		}
		if len(cmd) < 2 || cmd[0] != kube.HelperPath || cmd[1] != "fix" {
			t.Fatalf("dry run shows %q", cmd)
		}
		got, err := protocol.ParseFixRequest(cmd[2:], strings.NewReader("[]"), nil)
		if err != nil || got.BridgeUp != "cbr0" || got.ConntrackMax != 4096 {
			t.Errorf("dry-run command %q read as %+v (%v)", cmd, got, err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		s := &session{}
		unreachable := finding(protocol.CheckStale, protocol.SeverityWarn, protocol.StaleData{RuntimeReachable: &no})
		f := &Fixer{Plan: PlanKills}
		actions, _, err := f.run(context.Background(), "n1", s, report(unreachable), check)
		if err == nil || len(s.cmds) != 0 || len(actions) != 1 || actions[0].Result != protocol.ActionRefused {
			t.Errorf("actions %+v err %v cmds %q", actions, err, s.cmds)
		}
	})
	t.Run("failed action", func(t *testing.T) {
		s := &session{actions: []protocol.Action{{Action: "bridge-up", Target: "cbr0", Result: protocol.ActionFailed, Message: "permission denied"}}}
		f := &Fixer{Plan: PlanNodeFixes(true, true)}
		_, again, err := f.run(context.Background(), "n1", s, report(bridgeDown), check)
		if err == nil || !again || !strings.Contains(err.Error(), "bridge-up cbr0 failed: permission denied") {
			t.Errorf("again %v err %v", again, err)
		}
	})
	t.Run("exec error", func(t *testing.T) {
		s := &session{err: errors.New("stream broke")}
		f := &Fixer{Plan: PlanNodeFixes(true, true)}
		if _, again, err := f.run(context.Background(), "n1", s, report(bridgeDown), check); err == nil || again || !strings.Contains(err.Error(), "fixing: stream broke") {
			t.Errorf("again %v err %v", again, err)
		}
	})
}

func TestResolvePod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u-1"},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		Status:     corev1.PodStatus{PodIP: "10.244.0.7", ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://abc"}}},
	}
	hostNet := pod.DeepCopy()
	hostNet.Name, hostNet.Spec.HostNetwork = "hn", true
	unscheduled := pod.DeepCopy()
	unscheduled.Name, unscheduled.Spec.NodeName = "pending", ""
	client := fake.NewSimpleClientset(pod, hostNet, unscheduled, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})

	s, err := ResolvePod(context.Background(), client, "shop", "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.DefaultCheckRequest()
	want.PodUID, want.PodIP, want.KnownContainers, want.Port = "u-1", "10.244.0.7", []string{"containerd://abc"}, 8080
	if d := cmp.Diff(want, s.Check); d != "" || s.Node != "n1" {
		t.Errorf("node %s, request (-want +got):\n%s", s.Node, d)
	}
	if pods, ok := s.OnlyPod("n1"); !ok || len(pods) != 1 || pods[0].Label() != "shop/web" {
		t.Errorf("OnlyPod = %+v", pods)
	}
	if s, _ := ResolvePod(context.Background(), client, "shop", "web", 6379); s.Check.Port != 6379 {
		t.Errorf("--port: %d", s.Check.Port)
	}
	for name, want := range map[string]string{
		"hn":      "uses the node's network (hostNetwork): check its node instead: kubectl netdiag node check n1",
		"pending": "is not scheduled on a node yet",
		"nope":    `pod "nope" not found in namespace "shop"`,
	} {
		if _, err := ResolvePod(context.Background(), client, "shop", name, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	if _, err := NodeNames(context.Background(), client, []string{"node/n2"}, ""); err == nil || !strings.Contains(err.Error(), `node "n2" not found`) {
		t.Errorf("missing node: %v", err)
	}
	if got, err := NodeNames(context.Background(), client, []string{"n1", "node/n1"}, ""); err != nil || strings.Join(got, ",") != "n1" {
		t.Errorf("named nodes: %v, %v", got, err)
	}
	if _, err := NodeNames(context.Background(), client, nil, "pool=x"); err == nil || err.Error() != "no node matches -l pool=x" {
		t.Errorf("selector: %v", err)
	}
}

func TestNodePodState(t *testing.T) {
	running := func(ready bool) corev1.PodStatus {
		return corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: kube.NodeContainerName, Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	}
	for _, tt := range []struct {
		status corev1.PodStatus
		live   bool
		why    string
	}{
		{running(true), true, "running its helper"},
		{running(false), false, "idle: no plugin uses it any more (it ends by itself within a minute)"},
		{corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded"}, false, "ended (Failed: DeadlineExceeded)"},
		{corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: kube.NodeContainerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}}}, false, "its helper is not running (ErrImagePull)"},
		{corev1.PodStatus{}, false, `its helper is not running (phase "Unknown")`},
	} {
		live, why := NodePodState(&corev1.Pod{Status: tt.status})
		if live != tt.live || why != tt.why {
			t.Errorf("%+v: %v %q, want %v %q", tt.status.Phase, live, why, tt.live, tt.why)
		}
	}
}

func TestRetryCheckAfterABrokenStream(t *testing.T) {
	running := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "np"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: kube.NodeContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	broke := &kube.StreamError{Err: errors.New("websocket: close 1006")}
	deps := kube.Deps{Client: fake.NewSimpleClientset(running)}
	ran := 0
	if err := retryCheck(context.Background(), deps, kube.Pod{Namespace: "ops", Name: "np"}, time.Second, broke, func() error { ran++; return nil }); err != nil || ran != 1 {
		t.Errorf("retry: %v, ran %d", err, ran)
	}
	err := retryCheck(context.Background(), kube.Deps{Client: fake.NewSimpleClientset()}, kube.Pod{Namespace: "ops", Name: "np"}, 10*time.Second, broke, func() error { ran++; return nil })
	if err == nil || !strings.Contains(err.Error(), "websocket: close 1006; the node pod did not answer again within 10s: node-debug pod ops/np was deleted") || ran != 1 {
		t.Errorf("pod gone: %v, ran %d", err, ran)
	}
}
