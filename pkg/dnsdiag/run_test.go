package dnsdiag

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

const testImage = "helper:v1"

// fakeDNSCluster is a cluster with a pod that already has a running
// netdiag container (reused: no patch), the kube-dns Service with one
// ready endpoint, a CoreDNS pod and its Corefile. Node pods run at once;
// deletions are recorded.
type fakeDNSCluster struct {
	client  *fake.Clientset
	mu      sync.Mutex
	created []string
	deleted []string
}

func netdiagContainer() corev1.EphemeralContainer {
	return kube.NewEphemeralContainer(kube.EphemeralSpec{Image: testImage, TargetContainer: "web"}, "abcde")
}

func newFakeDNSCluster(t *testing.T, pod *corev1.Pod, endpoints []string) *fakeDNSCluster {
	ready := []discoveryv1.Endpoint{}
	for _, e := range endpoints {
		ready = append(ready, discoveryv1.Endpoint{Addresses: []string{e}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		pod,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"},
			Spec: corev1.ServiceSpec{ClusterIP: clusterIP, Selector: map[string]string{"k8s-app": "kube-dns"}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-x", Namespace: "kube-system", Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns"}},
			Endpoints: ready},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "coredns-a", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
			Spec:   corev1.PodSpec{NodeName: "n1"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
			Data: map[string]string{"Corefile": ".:53 {\n    kubernetes cluster.local\n    forward . " + upstream + "\n}\n"}},
	}
	c := &fakeDNSCluster{client: fake.NewClientset(objs...)}
	c.client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		r.Status.Allowed = true
		return true, r, nil
	})
	c.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: kube.NodeContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		c.mu.Lock()
		c.created = append(c.created, p.Name)
		c.mu.Unlock()
		return false, nil, nil
	})
	c.client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.mu.Lock()
		c.deleted = append(c.deleted, a.(k8stesting.DeleteAction).GetName())
		c.mu.Unlock()
		return false, nil, nil
	})
	c.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		t.Errorf("unexpected patch: the netdiag container is there to reuse")
		return true, nil, fmt.Errorf("no patch")
	})
	return c
}

func webPod() *corev1.Pod {
	ec := netdiagContainer()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec:       corev1.PodSpec{NodeName: "n1", DNSPolicy: corev1.DNSClusterFirst, Containers: []corev1.Container{{Name: "web"}}, EphemeralContainers: []corev1.EphemeralContainer{ec}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, EphemeralContainerStatuses: []corev1.ContainerStatus{
			{Name: ec.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}},
	}
}

// fakeHelper answers `netdiag-helper dns` from the request it is given:
// rcode(server, proto, name) decides each answer ("" a timeout).
type fakeHelper struct {
	mu    sync.Mutex
	calls []string
	rcode func(server, proto, name string) string
	// resolvErr, when set, is the error of the pod's resolv.conf line.
	resolvErr string
}

func (h *fakeHelper) Stream(_ context.Context, pod kube.Pod, container string, cmd []string, _ io.Reader, stdout, _ io.Writer) error {
	h.mu.Lock()
	h.calls = append(h.calls, pod.Name+"/"+container+": "+strings.Join(cmd[1:], " "))
	h.mu.Unlock()
	req, err := protocol.ParseDNSRequest(cmd[2:], io.Discard)
	if err != nil {
		return fmt.Errorf("bad request %q: %v", cmd, err)
	}
	var b bytes.Buffer
	line := func(v any) { js, _ := json.Marshal(v); b.Write(js); b.WriteByte('\n') }
	line(protocol.Hello{Type: protocol.TypeHello, Protocol: protocol.Version, Helper: "test"})
	if req.ResolvConf == protocol.ResolvConfAuto && h.resolvErr != "" {
		line(protocol.ResolvConf{Type: protocol.TypeResolvConf, Path: "auto", Error: h.resolvErr})
	} else if req.ResolvConf != "" {
		line(protocol.ResolvConf{Type: protocol.TypeResolvConf, Path: "/etc/resolv.conf", Nameservers: []string{clusterIP}, Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Ndots: 5})
	}
	for _, n := range req.Names {
		cands := []string{strings.TrimSuffix(n, ".") + "."}
		if req.Expand && !strings.HasSuffix(n, ".") {
			cands = []string{n + ".shop.svc.cluster.local.", n + ".svc.cluster.local.", n + ".cluster.local.", n + "."}
		}
		for _, s := range req.Servers {
			for _, proto := range req.Protocols {
				for step, c := range cands {
					rc := h.rcode(s.Addr, proto, c)
					if step < len(cands)-1 {
						rc = "NXDOMAIN"
					}
					p := protocol.DNSProbe{Type: protocol.TypeDNSProbe, Hop: s.Hop, Server: s.HostPort(), Proto: proto, Name: c, Query: n, QType: req.Type, Rcode: rc, LatencyMicroseconds: 700, Step: step}
					if rc == "" {
						p.Timeout, p.Error = true, "timeout"
					}
					if rc == "NOERROR" {
						p.Answers = []string{"10.0.0.1"}
					}
					line(p)
				}
			}
		}
	}
	if req.ConntrackProc != "" {
		line(protocol.ConntrackCounters{Type: protocol.TypeConntrackCounters, InsertFailedBefore: 5, InsertFailedAfter: 5})
	}
	line(protocol.Done{Type: protocol.TypeDone})
	_, err = stdout.Write(b.Bytes())
	return err
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Namespace, cfg.Pod, cfg.Image, cfg.PullPolicy = "shop", "web", testImage, "IfNotPresent"
	cfg.StartTimeout = 5 * time.Second
	return cfg
}

func TestRunHealthy(t *testing.T) {
	c := newFakeDNSCluster(t, webPod(), []string{ep1})
	h := &fakeHelper{rcode: func(string, string, string) string { return "NOERROR" }}
	cfg := testConfig()
	cfg.Names = []string{"www.example.test"}
	res, err := Run(context.Background(), kube.Deps{Client: c.client, Executor: h, NameSuffix: func() string { return "xyz" }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.FailingHop != "" || !res.Reused {
		t.Errorf("failing hop %q (%s), reused %v:\n%s", res.FailingHop, res.Reason, res.Reused, dump(res.Findings))
	}
	want := []string{
		"web/netdiag-abcde: dns --timeout=1s --resolv-conf=auto",
		"netdiag-node-n1-xyz/netdiag: dns --timeout=1s --resolv-conf=/host/etc/resolv.conf --conntrack-proc=/proc",
		"web/netdiag-abcde: dns --name=www.example.test --search=shop.svc.cluster.local --search=svc.cluster.local --search=cluster.local --ndots=5 --server=resolv.conf=10.96.0.10 --proto=udp --timeout=1s",
		"web/netdiag-abcde: dns --name=kubernetes.default.svc.cluster.local. --name=www.example.test. --expand=false --server=resolv.conf=10.96.0.10 --server=clusterip=10.96.0.10 --server=endpoint=10.244.0.2 --timeout=1s",
		"netdiag-node-n1-xyz/netdiag: dns --name=www.example.test. --expand=false --server=upstream=169.254.53.53 --timeout=1s --conntrack-proc=/proc",
	}
	if strings.Join(h.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("helper calls:\n%s\nwant:\n%s", strings.Join(h.calls, "\n"), strings.Join(want, "\n"))
	}
	// 4 lookups, 2 names × 3 hops × 2 protocols, 2 upstream.
	if res.Queries != 4+12+2 {
		t.Errorf("queries %d", res.Queries)
	}
	if res.Conntrack == nil || res.Hops[0].Query != cname || res.Hops[0].Hop != HopResolvConf || res.Hops[len(res.Hops)-1].Hop != HopUpstream {
		t.Errorf("hops not in order or conntrack missing: %+v", res.Hops)
	}
	if len(c.created) != 1 || len(c.deleted) != 1 || c.created[0] != c.deleted[0] {
		t.Errorf("node pods created %v, deleted %v", c.created, c.deleted)
	}
}

func TestRunServiceTranslation(t *testing.T) {
	c := newFakeDNSCluster(t, webPod(), []string{ep1})
	h := &fakeHelper{rcode: func(server, proto, name string) string {
		if server == clusterIP {
			return ""
		}
		return "NOERROR"
	}}
	res, err := Run(context.Background(), kube.Deps{Client: c.client, Executor: h}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res.FailingHop != FailService {
		t.Errorf("failing hop %q (%s), want %s", res.FailingHop, res.Reason, FailService)
	}
	if len(c.created) != len(c.deleted) {
		t.Errorf("node pods created %v, deleted %v", c.created, c.deleted)
	}
}

func TestRunRefusesBeforeCreating(t *testing.T) {
	pending := webPod()
	pending.Status.Phase = corev1.PodPending
	for _, tt := range []struct {
		name string
		pod  *corev1.Pod
		cfg  func(*Config)
		want string
	}{
		{"not running", pending, nil, `pod "web" in namespace "shop" is Pending, not Running: its DNS can only be probed from a running pod`},
		{"no such pod", webPod(), func(c *Config) { c.Pod = "nope" }, `pod "nope" not found in namespace "shop"`},
		{"no such container", webPod(), func(c *Config) { c.Container = "db" }, `container "db" not found in pod "web"; its containers are: web (pass one with -c)`},
	} {
		c := newFakeDNSCluster(t, tt.pod, []string{ep1})
		h := &fakeHelper{}
		cfg := testConfig()
		if tt.cfg != nil {
			tt.cfg(&cfg)
		}
		_, err := Run(context.Background(), kube.Deps{Client: c.client, Executor: h}, cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if len(c.created) > 0 || len(h.calls) > 0 {
			t.Errorf("%s: created %v, ran %v", tt.name, c.created, h.calls)
		}
	}
}

func TestRunComputesResolvConf(t *testing.T) {
	pod := webPod()
	pod.Spec.DNSPolicy = corev1.DNSNone
	pod.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.99"}, Searches: []string{"corp.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}}}
	c := newFakeDNSCluster(t, pod, []string{ep1})
	h := &fakeHelper{resolvErr: "no resolv.conf could be read (tried 2)", rcode: func(server, _, _ string) string {
		if server == "192.0.2.99" {
			return ""
		}
		return "NOERROR"
	}}
	cfg := testConfig()
	cfg.Names = []string{"db"}
	cfg.NoNode = true
	res, err := Run(context.Background(), kube.Deps{Client: c.client, Executor: h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.ResolvConfComputed || res.ResolvConf.Ndots != 2 || strings.Join(res.ResolvConf.Nameservers, ",") != "192.0.2.99" || strings.Join(res.ResolvConf.Search, ",") != "corp.example" {
		t.Errorf("computed resolv.conf %+v", res.ResolvConf)
	}
	if f := find(res.Findings, FailConfig, "resolv.conf"); f == nil || !strings.Contains(f.Message, "computed from the pod spec (dnsPolicy None)") || !strings.Contains(f.Message, "tried 2") {
		t.Errorf("no finding says the resolv.conf was computed: %+v", res.Findings)
	}
	if want := "web/netdiag-abcde: dns --name=db --search=corp.example --ndots=2 --server=resolv.conf=192.0.2.99 --proto=udp --timeout=1s"; len(h.calls) < 2 || h.calls[1] != want {
		t.Errorf("lookup call %q, want %q", h.calls, want)
	}
	if res.FailingHop != FailConfig {
		t.Errorf("failing hop %q (%s), want config", res.FailingHop, res.Reason)
	}
	if len(c.created) != 0 {
		t.Errorf("--no-node created %v", c.created)
	}
}
