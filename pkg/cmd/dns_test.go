package cmd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/dnsdiag"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func TestDNSValidate(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		mutate func(*DNSOptions)
		want   string
	}{
		{args: nil, want: "dns needs a pod, e.g. kubectl netdiag dns pod/web-0 [NAME...]"},
		{args: []string{"deploy/web"}, want: `"deploy/web" is a deployment, not a pod`},
		{args: []string{"web", "a b"}, want: `"a b" is not a DNS name (no spaces, slashes, @ or ports): give a name such as example.com; the pod is the first argument`},
		{args: []string{"web", "example.com:53"}, want: `"example.com:53" is not a DNS name`},
		{args: []string{"web", "a..b"}, want: `"a..b" has an empty label (two dots in a row)`},
		{args: []string{"web", "."}, want: `"." is not a DNS name to look up`},
		{args: []string{"web", strings.Repeat("a", 64) + ".com"}, want: "has a label longer than 63 characters"},
		{args: []string{"web"}, mutate: func(o *DNSOptions) { o.Type = "MX" }, want: `--type must be A or AAAA, got "MX"`},
		{args: []string{"web"}, mutate: func(o *DNSOptions) { o.Load = -1 }, want: "--load must be between 0 and 10000, got -1"},
		{args: []string{"web"}, mutate: func(o *DNSOptions) { o.QueryTimeout = 10 * time.Second }, want: "--query-timeout must be positive and at most 5s, got 10s"},
		{args: []string{"web"}, mutate: func(o *DNSOptions) { o.Output = "wide" }, want: `-o must be one of table, json, yaml, got "wide"`},
		{args: []string{"web"}, mutate: func(o *DNSOptions) { o.Timeout = 0 }, want: "--timeout must be positive, got 0s"},
		{args: []string{"web", "example.com", "kubernetes.default."}},
	} {
		streams, _, _, _ := genericiooptions.NewTestIOStreams()
		o := NewDNSOptions(genericclioptions.NewConfigFlags(true), streams)
		o.Namespace = "shop"
		o.Client = fake.NewClientset()
		o.Executor = &replayExec{}
		if tt.mutate != nil {
			tt.mutate(o)
		}
		err := o.Complete(tt.args)
		if err == nil {
			err = o.Validate()
		}
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: %v, want %q", tt.args, err, tt.want)
		}
	}
}

func sampleDNSResult(failing string) *dnsdiag.Result {
	res := &dnsdiag.Result{
		Pod:        dnsdiag.PodDNS{Namespace: "shop", Name: "web", Node: "n1", DNSPolicy: "ClusterFirst"},
		ResolvConf: protocol.ResolvConf{Nameservers: []string{"10.96.0.10"}, Search: []string{"shop.svc.cluster.local"}, Ndots: 5},
		Hops: []protocol.DNSProbe{
			{Hop: "clusterip", Server: "10.96.0.10:53", Proto: "udp", Name: "kubernetes.default.svc.cluster.local.", Query: "kubernetes.default.svc.cluster.local.", Timeout: true, Error: "timeout", LatencyMicroseconds: 1000000},
			{Hop: "endpoint", Server: "10.244.0.2:53", Proto: "udp", Name: "kubernetes.default.svc.cluster.local.", Query: "kubernetes.default.svc.cluster.local.", Rcode: "NOERROR", LatencyMicroseconds: 650},
			{Hop: "endpoint", Server: "10.244.0.2:53", Proto: "tcp", Name: "evil\x1b[31m.", Query: "evil", Rcode: "NXDOMAIN", LatencyMicroseconds: 12500},
		},
		Queries: 3, DurationSeconds: 1.24,
	}
	res.Verdict = dnsdiag.Verdict{FailingHop: failing, Reason: "the kube-dns ClusterIP 10.96.0.10 does not answer",
		Findings: []dnsdiag.Finding{{Hop: "service", Severity: protocol.SeverityFail, Subject: "clusterip", Message: "the kube-dns ClusterIP does not answer", Remedy: "look at kube-proxy"},
			{Hop: "config", Severity: protocol.SeverityOK, Subject: "nameserver", Message: "nameserver 10.96.0.10"}}}
	return res
}

func TestRenderDNS(t *testing.T) {
	var b strings.Builder
	if err := RenderDNS(&b, "table", sampleDNSResult(dnsdiag.FailService), false); err != nil {
		t.Fatal(err)
	}
	want := `POD shop/web on node n1, dnsPolicy ClusterFirst; resolv.conf: nameserver 10.96.0.10, search shop.svc.cluster.local, ndots:5

HOP        SERVER         PROTO  NAME                                   RCODE     LATENCY
clusterip  10.96.0.10:53  udp    kubernetes.default.svc.cluster.local.  timeout   1000ms
endpoint   10.244.0.2:53  udp    kubernetes.default.svc.cluster.local.  NOERROR   650µs
endpoint   10.244.0.2:53  tcp    evil\x1b[31m.                          NXDOMAIN  12ms

HOP      SEVERITY  SUBJECT     MESSAGE
service  fail      clusterip   the kube-dns ClusterIP does not answer
         remedy: look at kube-proxy
config   ok        nameserver  nameserver 10.96.0.10

failing hop: service (the Service translation on the node (kube-proxy rules)): the kube-dns ClusterIP 10.96.0.10 does not answer
3 queries in 1.2s
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
	b.Reset()
	if err := RenderDNS(&b, "json", sampleDNSResult(dnsdiag.FailService), false); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Hops       []protocol.DNSProbe `json:"hops"`
		FailingHop string              `json:"failingHop"`
	}
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil || got.FailingHop != "service" || len(got.Hops) != 3 {
		t.Errorf("json: %v %+v\n%s", err, got, b.String())
	}
	if code := ExitCode(DNSOutcome(sampleDNSResult(dnsdiag.FailService))); code != 3 {
		t.Errorf("exit code %d with a failing hop, want 3", code)
	}
	healthy := sampleDNSResult("")
	healthy.Findings = healthy.Findings[1:]
	if err := DNSOutcome(healthy); err != nil {
		t.Errorf("healthy: %v", err)
	}
}

// TestDNSRunFlow drives the command against a fake cluster whose helper
// finds the ClusterIP silent: exit code 3, the hop named.
func TestDNSRunFlow(t *testing.T) {
	c := newFakeCluster("node-1")
	ex := &replayExec{outputs: func(cmd []string, n int) (string, error) {
		req, err := protocol.ParseDNSRequest(cmd[2:], nil)
		if err != nil {
			return "", err
		}
		out := []string{helloLine}
		if req.ResolvConf != "" {
			out = append(out, `{"type":"resolvconf","path":"/etc/resolv.conf","nameservers":["10.96.0.10"],"search":["shop.svc.cluster.local"],"ndots":5}`)
		}
		for _, s := range req.Servers {
			for _, p := range req.Protocols {
				for _, nm := range req.Names {
					rcode := `"rcode":"NOERROR"`
					if s.Hop == "resolv.conf" || s.Hop == "clusterip" {
						rcode = `"timeout":true,"error":"timeout"`
					}
					out = append(out, `{"type":"dnsprobe","hop":"`+s.Hop+`","server":"`+s.HostPort()+`","proto":"`+p+`","name":"`+nm+`","query":"`+nm+`","qtype":"A",`+rcode+`}`)
				}
			}
		}
		return lines(append(out, doneLine)...), nil
	}}
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewDNSOptions(genericclioptions.NewConfigFlags(true), streams)
	o.Namespace, o.Client, o.Executor, o.NoKubelet, o.NoNode = "shop", c.client, ex, true, true
	o.Image = "img:v1"
	o.IsTerminal = func(any) bool { return false }
	// The pod's netdiag container and the cluster DNS.
	seedDNS(t, c)
	if err := o.Complete([]string{"pod/web"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	err := o.Run(context.Background())
	if code := ExitCode(err); code != 3 || !strings.Contains(err.Error(), "fails at hop service: the Service translation on the node (kube-proxy rules)") {
		t.Errorf("exit %d: %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "failing hop: service") {
		t.Errorf("output:\n%s", out.String())
	}
}

// seedDNS gives the fake cluster's pod shop/web a running netdiag
// container and the cluster a kube-dns Service with one ready endpoint.
func seedDNS(t *testing.T, c *fakeCluster) {
	t.Helper()
	ctx := context.Background()
	c.client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		r.Status.Allowed = true
		return true, r, nil
	})
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := c.client.CoreV1().Pods("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ec := kube.NewEphemeralContainer(kube.EphemeralSpec{Image: "img:v1", PullPolicy: corev1.PullIfNotPresent, TargetContainer: "web"}, "abcde")
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: ec.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	if _, err := c.client.CoreV1().Pods("shop").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-1", Namespace: "kube-system", Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns"}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.2"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
