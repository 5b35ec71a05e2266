package nodeops

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func dnsSvc(name, ip string, labels map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", Labels: labels}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
}

func slice(name, svc string, typ discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "kube-system", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: typ, Endpoints: eps,
	}
}

func ep(ready *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

func nodeLocalPod(node string, phase corev1.PodPhase, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "node-local-dns-" + node, Namespace: "kube-system", Labels: map[string]string{"k8s-app": "node-local-dns"}},
		Spec:       corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{{Name: "node-cache", Args: args}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func TestLookupDNS(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want DNSInfo
	}{
		{"no Service", nil, DNSInfo{ClusterDomain: "cluster.local", SkipReason: "no kube-dns Service in kube-system"}},
		{"kube-dns, ready endpoints only, each once", []runtime.Object{
			dnsSvc("kube-dns", "10.96.0.10", nil),
			slice("kube-dns-a", "kube-dns", discoveryv1.AddressTypeIPv4, ep(&yes, "10.244.1.4"), ep(nil, "10.244.0.3"), ep(&no, "10.244.2.9")),
			slice("kube-dns-b", "kube-dns", discoveryv1.AddressTypeIPv4, ep(&yes, "10.244.0.3")),
			slice("kube-dns-fqdn", "kube-dns", discoveryv1.AddressTypeFQDN, ep(&yes, "coredns.example")),
			slice("other", "other", discoveryv1.AddressTypeIPv4, ep(&yes, "10.244.7.7")),
		}, DNSInfo{ServiceIP: "10.96.0.10", Endpoints: []string{"10.244.0.3", "10.244.1.4"}, ClusterDomain: "cluster.local"}},
		{"no ready endpoint", []runtime.Object{
			dnsSvc("kube-dns", "10.96.0.10", nil),
			slice("kube-dns-a", "kube-dns", discoveryv1.AddressTypeIPv4, ep(&no, "10.244.2.9")),
		}, DNSInfo{ServiceIP: "10.96.0.10", Endpoints: []string{}, ClusterDomain: "cluster.local"}},
		{"by label, node-local on this node", []runtime.Object{
			dnsSvc("coredns", "10.0.0.10", map[string]string{"k8s-app": "kube-dns"}),
			nodeLocalPod("n1", corev1.PodRunning, "-localip", "169.254.25.10,10.0.0.10", "-conf", "/etc/Corefile"),
		}, DNSInfo{ServiceIP: "10.0.0.10", Endpoints: []string{}, NodeLocalIP: "169.254.25.10", ClusterDomain: "cluster.local"}},
		{"node-local on another node, or not running", []runtime.Object{
			dnsSvc("kube-dns", "10.96.0.10", nil),
			nodeLocalPod("n2", corev1.PodRunning),
			func() *corev1.Pod { p := nodeLocalPod("n1", corev1.PodPending); p.Name = "pending"; return p }(),
		}, DNSInfo{ServiceIP: "10.96.0.10", Endpoints: []string{}, ClusterDomain: "cluster.local"}},
		{"node-local without -localip", []runtime.Object{
			dnsSvc("kube-dns", "10.96.0.10", nil), nodeLocalPod("n1", corev1.PodRunning, "-conf", "/etc/Corefile"),
		}, DNSInfo{ServiceIP: "10.96.0.10", Endpoints: []string{}, NodeLocalIP: "169.254.20.10", ClusterDomain: "cluster.local"}},
		{"headless", []runtime.Object{dnsSvc("kube-dns", "None", nil)},
			DNSInfo{ClusterDomain: "cluster.local", SkipReason: "the kube-dns Service in kube-system has no ClusterIP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LookupDNS(context.Background(), fake.NewClientset(tc.objs...), "n1")
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestLookupDNSRefused(t *testing.T) {
	c := fake.NewClientset(dnsSvc("kube-dns", "10.96.0.10", nil))
	c.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", nil)
	})
	got := LookupDNS(context.Background(), c, "n1")
	if got.ServiceIP != "" || !strings.Contains(got.SkipReason, "list endpointslices in kube-system") {
		t.Errorf("endpointslices refused: %+v", got)
	}
	c = fake.NewClientset()
	c.PrependReactor("get", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "kube-dns", nil)
	})
	if got := LookupDNS(context.Background(), c, "n1"); !strings.Contains(got.SkipReason, "cannot read the kube-dns Service in kube-system (the dns check needs get services") {
		t.Errorf("services refused: %+v", got)
	}
}

func TestFillDNS(t *testing.T) {
	c := fake.NewClientset(dnsSvc("kube-dns", "10.96.0.10", nil), slice("a", "kube-dns", discoveryv1.AddressTypeIPv4, ep(nil, "10.244.0.3")))
	r := protocol.DefaultCheckRequest()
	r.Checks = []string{"bridge"}
	FillDNS(context.Background(), c, "n1", &r)
	if r.DNSIP != "" || r.DNSSkipReason != "" {
		t.Errorf("dns not asked for, yet filled: %+v", r)
	}
	r.Checks = nil
	FillDNS(context.Background(), c, "n1", &r)
	if r.DNSIP != "10.96.0.10" || !cmp.Equal(r.DNSEndpoints, []string{"10.244.0.3"}) || r.ClusterDomain != "" || r.NodeLocalIP != "" {
		t.Errorf("all checks: %+v", r)
	}
	if got, err := protocol.ParseCheckRequest(r.Args(), nil, nil); err != nil || got.DNSIP != "10.96.0.10" {
		t.Errorf("the request does not parse back: %+v, %v", got, err)
	}
	if ip := localIPArg([]string{"--localip=169.254.20.10,10.96.0.10"}); ip != "169.254.20.10" {
		t.Errorf("--localip=: %q", ip)
	}
}

// KubeletDNS reads the kubelet's configz through the API server's node
// proxy.
func TestKubeletDNS(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/n1/proxy/configz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kubeletconfig":{"clusterDomain":"corp.local","clusterDNS":["169.254.20.10"],"containerRuntimeEndpoint":"unix:///run/containerd/containerd.sock"}}`))
	}))
	defer srv.Close()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	domain, clusterDNS, err := KubeletDNS(context.Background(), c, "n1")
	if err != nil || domain != "corp.local" || !cmp.Equal(clusterDNS, []string{"169.254.20.10"}) {
		t.Errorf("KubeletDNS = %q, %v, %v", domain, clusterDNS, err)
	}
	if _, _, err := KubeletDNS(context.Background(), c, "n2"); err == nil {
		t.Errorf("a node without configz: no error")
	}
	if _, _, err := KubeletDNS(context.Background(), fake.NewClientset(), "n1"); err == nil {
		t.Errorf("the fake clientset has no REST client: no error")
	}
}
