package remotecapture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// nodeHelper is a fake Executor for a node pod: `check` answers with the
// veth finding it holds, `capture` plays a capture.
type nodeHelper struct {
	mu      sync.Mutex
	finding string // the check's finding line; "" writes none
	capture replay
	execs   []exec
}

type exec struct {
	pod       kube.Pod
	container string
	cmd       []string
	stdin     string
}

const helloLine = `{"type":"hello","protocol":1,"helper":"v0.1.0"}` + "\n"

func (h *nodeHelper) Stream(ctx context.Context, pod kube.Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := exec{pod: pod, container: container, cmd: cmd}
	if len(cmd) > 1 && cmd[1] == "check" && stdin != nil {
		b, _ := io.ReadAll(stdin)
		e.stdin = string(b)
	}
	h.mu.Lock()
	h.execs = append(h.execs, e)
	h.mu.Unlock()
	switch cmd[1] {
	case "check":
		io.WriteString(stdout, helloLine+h.finding+`{"type":"done","findings":1}`+"\n")
		return nil
	case "capture":
		return h.capture.Stream(ctx, pod, container, cmd, stdin, stdout, stderr)
	}
	return errors.New("unexpected command " + strings.Join(cmd, " "))
}

func vethFinding(iface string) string {
	d := protocol.VethData{Pod: "shop/web-0", PodIP: "10.244.0.7", HostInterface: iface, Ifindex: 9, MTU: 1500, Method: "route"}
	if iface == "" {
		d = protocol.VethData{Pod: "shop/web-0", PodIP: "10.244.0.7", Tried: []string{"no /32 route to 10.244.0.7", "no neighbour entry"}}
	}
	f := protocol.Finding{Type: protocol.TypeFinding, Check: protocol.CheckVeth, Severity: protocol.SeverityOK, Subject: "shop/web-0", Message: "shop/web-0 is on host interface " + iface, Data: protocol.EncodeData(d)}
	if iface == "" {
		f.Severity, f.Message = protocol.SeverityFail, "shop/web-0: no host interface found"
	}
	b, _ := json.Marshal(f)
	return string(b) + "\n"
}

// onNodeCluster is a fake API server: the pod in namespace shop (which
// enforces restricted Pod Security), a namespace priv labelled privileged,
// node-1; node-debug pods it creates are reported Running.
func onNodeCluster() *fake.Clientset {
	pod := runningPod()
	pod.UID = "u-1"
	pod.Status.PodIP = "10.244.0.7"
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://abc"}}
	client := fake.NewClientset(pod,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{kube.PodSecurityEnforceLabel: "restricted"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "priv", Labels: map[string]string{kube.PodSecurityEnforceLabel: "privileged"}}})
	client.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		l, err := client.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		w := watch.NewFakeWithChanSize(4, false)
		for _, p := range l.(*corev1.PodList).Items {
			if p.Name == "web-0" {
				continue
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: kube.NodeContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			w.Modify(p.DeepCopy())
		}
		return true, w, nil
	})
	return client
}

func nodePods(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	l, err := client.CoreV1().Pods("priv").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Items {
		names = append(names, p.Name)
	}
	return names
}

// --on-node: the veth check runs first in the node pod, then the capture
// on the veth it found, in the same node pod; the pod is deleted after.
func TestOnNodeChecksThenCaptures(t *testing.T) {
	client := onNodeCluster()
	ex := &nodeHelper{finding: vethFinding("veth1a2b3c"), capture: replay{stdout: pcapBytes, stderr: strings.Replace(statsLine, `"eth0"`, `"veth1a2b3c"`, 1)}}
	out := &memFile{}
	cfg := config(out)
	cfg.OnNode, cfg.NodeNamespace = true, "priv"
	var errOut bytes.Buffer
	res, err := Run(context.Background(), Deps{Client: client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, cfg)
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, errOut.String())
	}
	if len(ex.execs) != 2 {
		t.Fatalf("%d execs, want the check then the capture: %+v", len(ex.execs), ex.execs)
	}
	check, capt := ex.execs[0], ex.execs[1]
	for _, e := range ex.execs {
		if e.pod.Namespace != "priv" || e.container != kube.NodeContainerName || e.pod != check.pod {
			t.Errorf("exec %v in %s container %s, want both in the same node pod of namespace priv", e.cmd, e.pod, e.container)
		}
	}
	req, err := protocol.ParseCheckRequest(check.cmd[2:], strings.NewReader(check.stdin), nil)
	if err != nil {
		t.Fatalf("check command %q: %v", check.cmd, err)
	}
	if strings.Join(req.Checks, ",") != "veth" || req.PodUID != "u-1" || req.PodIP != "10.244.0.7" || len(req.Pods) != 1 || req.Pods[0].Name != "web-0" {
		t.Errorf("check request %+v, want the veth check of shop/web-0", req)
	}
	creq, err := protocol.ParseCaptureRequest(capt.cmd[2:])
	if err != nil || creq.Interface != "veth1a2b3c" || creq.Filter != "tcp port 443" {
		t.Errorf("capture command %q (%v), want --interface=veth1a2b3c with the filter", capt.cmd, err)
	}
	if !bytes.Equal(out.Bytes(), pcapBytes) || !out.closed {
		t.Errorf("output: %d bytes, closed %v", out.Len(), out.closed)
	}
	sum := res.Summary("web.pcap")
	for _, want := range []string{"captured 10 packets", "on pod/web-0 veth1a2b3c (the pod's host-side veth on node/node-1: directions are reversed"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q lacks %q", sum, want)
		}
	}
	if left := nodePods(t, client); len(left) != 0 {
		t.Errorf("node pods left: %v", left)
	}
}

func TestOnNodeErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		nodeNS  string
		finding string
		want    string
		opened  bool
	}{
		{name: "pod's namespace is restricted", want: `namespace "shop" (the pod's, where --on-node runs its node-debug pod unless --node-namespace names another) enforces the "restricted" Pod Security level (label pod-security.kubernetes.io/enforce), which refuses the privileged node-debug pod: pass --node-namespace with a namespace that admits privileged pods, e.g. --node-namespace priv`},
		{name: "no veth", nodeNS: "priv", finding: vethFinding(""), opened: true,
			want: "--on-node: cannot find the host-side veth of pod shop/web-0: shop/web-0: no host interface found (tried: no /32 route to 10.244.0.7; no neighbour entry); capture in the pod instead (without --on-node), or on the node's bridge: kubectl netdiag capture node/NODE --interface cbr0 -f 'host POD-IP'"},
		{name: "no finding", nodeNS: "priv", opened: true,
			want: "--on-node: the helper's veth check said nothing about pod shop/web-0; pass --image with the helper of this plugin's version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := onNodeCluster()
			ex := &nodeHelper{finding: tt.finding}
			cfg := config(&memFile{})
			cfg.OnNode, cfg.NodeNamespace = true, tt.nodeNS
			opened := false
			open := cfg.Open
			cfg.Open = func() (io.WriteCloser, error) { opened = true; return open() }
			_, err := Run(context.Background(), Deps{Client: client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, cfg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
			if opened != tt.opened {
				t.Errorf("output opened %v, want %v", opened, tt.opened)
			}
			for _, e := range ex.execs {
				if e.cmd[1] == "capture" {
					t.Errorf("a capture ran: %v", e.cmd)
				}
			}
			if left := nodePods(t, client); len(left) != 0 {
				t.Errorf("node pods left: %v", left)
			}
		})
	}
}

// When the cluster refuses the netdiag container (an admission webhook
// here), the error names --on-node and why it works.
func TestInjectionRefusedNamesOnNode(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for name, tt := range map[string]struct {
		err     error
		onNode  bool
		context string
	}{
		"webhook":  {err: apierrors.NewForbidden(gr, "web-0", errors.New(`admission webhook "no-debug.example.com" denied the request: debugging is off here`)), onNode: true, context: "no-debug.example.com"},
		"policy":   {err: apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-0", nil), onNode: false},
		"disabled": {err: apierrors.NewNotFound(gr, ""), onNode: true, context: "ephemeral containers are disabled"},
		"rbac":     {err: apierrors.NewForbidden(gr, "web-0", errors.New(`User "dev" cannot patch resource "pods/ephemeralcontainers"`)), onNode: false},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, runningPod(), tt.err)
			_, err := Run(context.Background(), Deps{Client: c.client, Executor: &replay{stderr: statsLine}, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, config(&memFile{}))
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Contains(err.Error(), onNodeWhy); got != tt.onNode {
				t.Errorf("error names --on-node: %v, want %v:\n%v", got, tt.onNode, err)
			}
			if !strings.Contains(err.Error(), tt.context) {
				t.Errorf("error %q lacks %q", err, tt.context)
			}
		})
	}
}

// Progress lines reach Config.Progress, counted from the segments before.
func TestProgressCallback(t *testing.T) {
	c := newCluster(t, runningPod(), nil)
	ex := &replay{stdout: pcapBytes, stderr: `{"type":"progress","packets":7,"bytes":420,"kernelDrops":2,"durationSeconds":1.0}` + "\n" + statsLine}
	cfg := config(&memFile{})
	var got []protocol.Progress
	cfg.Progress = func(p protocol.Progress) { got = append(got, p) }
	if _, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, cfg); err != nil {
		t.Fatal(err)
	}
	if req, err := protocol.ParseCaptureRequest(ex.cmd[2:]); err != nil || req.Progress != DefaultProgressEvery {
		t.Errorf("helper command %q does not ask for progress every %s", ex.cmd, DefaultProgressEvery)
	}
	if len(got) != 1 || got[0].Packets != 7 || got[0].Bytes != 420 || got[0].KernelDrops != 2 {
		t.Errorf("progress %+v, want one with 7 packets, 420 bytes, 2 drops", got)
	}

	// Without a listener the helper is not asked.
	ex = &replay{stdout: pcapBytes, stderr: statsLine}
	c = newCluster(t, runningPod(), nil)
	if _, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: io.Discard}, config(&memFile{})); err != nil {
		t.Fatal(err)
	}
	for _, a := range ex.cmd {
		if strings.HasPrefix(a, "--progress") {
			t.Errorf("helper asked for progress without a listener: %q", ex.cmd)
		}
	}
	// A resumed segment counts on from the ones before.
	var p protocol.Progress
	cfg.Progress = func(q protocol.Progress) { p = q }
	withProgressBase(cfg, protocol.Stats{Packets: 10, Bytes: 1000, KernelDrops: 1}, time.Now()).Progress(protocol.Progress{Packets: 1, Bytes: 60})
	if p.Packets != 11 || p.Bytes != 1060 || p.KernelDrops != 1 {
		t.Errorf("resumed progress %+v, want 11 packets, 1060 bytes, 1 drop", p)
	}
}
