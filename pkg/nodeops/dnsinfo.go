package nodeops

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// The cluster DNS the dns check asks, as clusters lay it out.
const (
	DNSNamespace     = "kube-system"
	DNSServiceName   = "kube-dns"
	DNSServiceLabel  = "k8s-app=kube-dns"
	NodeLocalLabel   = "k8s-app=node-local-dns"
	NodeLocalIP      = "169.254.20.10"
	DefaultDNSDomain = "cluster.local"
	// dnsRBAC is what the lookup needs, for the messages of a refusal.
	dnsRBAC = "the dns check needs get services and list endpointslices in kube-system"
)

// DNSInfo is what the dns check asks: the kube-dns Service's ClusterIP,
// its ready endpoints, the node-local cache, the cluster domain; or why
// there is nothing to ask.
type DNSInfo struct {
	ServiceIP     string
	Endpoints     []string
	NodeLocalIP   string
	ClusterDomain string
	SkipReason    string
}

// Apply sets the request's dns fields.
func (i DNSInfo) Apply(r *protocol.CheckRequest) {
	r.DNSIP, r.DNSEndpoints, r.NodeLocalIP, r.DNSSkipReason = i.ServiceIP, i.Endpoints, i.NodeLocalIP, i.SkipReason
	if i.ClusterDomain != DefaultDNSDomain {
		r.ClusterDomain = i.ClusterDomain
	}
}

// WantsDNS says whether a --checks list runs the dns check (empty: all).
func WantsDNS(checks []string) bool {
	if len(checks) == 0 {
		return true
	}
	for _, c := range checks {
		if c == protocol.CheckDNS {
			return true
		}
	}
	return false
}

// FillDNS looks the cluster DNS up (LookupDNS, node's kubelet) and sets
// the request's dns fields when its checks include dns.
func FillDNS(ctx context.Context, client kubernetes.Interface, node string, r *protocol.CheckRequest) {
	if WantsDNS(r.Checks) {
		LookupDNS(ctx, client, node).Apply(r)
	}
}

// LookupDNS finds the kube-dns Service in kube-system (by name, else by
// the k8s-app=kube-dns label), the ready addresses of its EndpointSlices,
// the cluster domain (node's kubelet, else cluster.local), and whether a
// node-local cache is configured (the kubelet's clusterDNS names
// 169.254.20.10, or a node-local-dns pod runs on node).
func LookupDNS(ctx context.Context, client kubernetes.Interface, node string) DNSInfo {
	info := DNSInfo{ClusterDomain: DefaultDNSDomain}
	svc, err := dnsService(ctx, client)
	if err != nil {
		info.SkipReason = err.Error()
		return info
	}
	if svc == nil {
		info.SkipReason = "no kube-dns Service in kube-system"
		return info
	}
	if ip := svc.Spec.ClusterIP; ip == "" || ip == corev1.ClusterIPNone || net.ParseIP(ip) == nil {
		info.SkipReason = fmt.Sprintf("the %s Service in kube-system has no ClusterIP", svc.Name)
		return info
	}
	info.ServiceIP = svc.Spec.ClusterIP
	eps, err := readyEndpoints(ctx, client, svc.Name)
	if err != nil {
		info.ServiceIP = ""
		info.SkipReason = err.Error()
		return info
	}
	info.Endpoints = eps

	domain, clusterDNS, err := KubeletDNS(ctx, client, node)
	if err != nil {
		klog.V(2).Infof("reading the kubelet config of node %s: %v", node, err)
	}
	if domain != "" {
		info.ClusterDomain = strings.Trim(domain, ".")
	}
	for _, ip := range clusterDNS {
		if ip == NodeLocalIP {
			info.NodeLocalIP = ip
		}
	}
	if info.NodeLocalIP == "" {
		info.NodeLocalIP = nodeLocalOnNode(ctx, client, node)
	}
	return info
}

// dnsService is the kube-dns Service; nil when there is none.
func dnsService(ctx context.Context, client kubernetes.Interface) (*corev1.Service, error) {
	svc, err := client.CoreV1().Services(DNSNamespace).Get(ctx, DNSServiceName, metav1.GetOptions{})
	if err == nil {
		return svc, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("cannot read the kube-dns Service in kube-system (%s): %v", dnsRBAC, err)
	}
	l, err := client.CoreV1().Services(DNSNamespace).List(ctx, metav1.ListOptions{LabelSelector: DNSServiceLabel})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot list the Services of kube-system (%s): %v", dnsRBAC, err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	for i := range l.Items {
		if ip := l.Items[i].Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
			return &l.Items[i], nil
		}
	}
	return nil, nil
}

// readyEndpoints are the ready addresses of the Service's EndpointSlices,
// sorted, each once.
func readyEndpoints(ctx context.Context, client kubernetes.Interface, service string) ([]string, error) {
	l, err := client.DiscoveryV1().EndpointSlices(DNSNamespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil, fmt.Errorf("cannot list the EndpointSlices of the %s Service in kube-system (%s): %v", service, dnsRBAC, err)
	}
	seen := map[string]bool{}
	out := []string{}
	for _, s := range l.Items {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				if net.ParseIP(a) != nil && !seen[a] {
					seen[a] = true
					out = append(out, a)
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// KubeletDNS asks the node's kubelet (nodes/proxy configz) for its
// clusterDomain and clusterDNS.
func KubeletDNS(ctx context.Context, client kubernetes.Interface, node string) (string, []string, error) {
	rc := client.CoreV1().RESTClient()
	if c, ok := rc.(*rest.RESTClient); rc == nil || ok && c == nil {
		return "", nil, fmt.Errorf("no REST client")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b, err := rc.Get().Resource("nodes").Name(node).SubResource("proxy", "configz").DoRaw(ctx)
	if err != nil {
		return "", nil, err
	}
	var cfg struct {
		KubeletConfig struct {
			ClusterDomain string   `json:"clusterDomain"`
			ClusterDNS    []string `json:"clusterDNS"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", nil, fmt.Errorf("the kubelet's configz: %v", err)
	}
	return cfg.KubeletConfig.ClusterDomain, cfg.KubeletConfig.ClusterDNS, nil
}

// nodeLocalOnNode is the address a running node-local-dns pod on node
// listens on (its -localip, else 169.254.20.10); "" without one.
func nodeLocalOnNode(ctx context.Context, client kubernetes.Interface, node string) string {
	l, err := client.CoreV1().Pods(DNSNamespace).List(ctx, metav1.ListOptions{LabelSelector: NodeLocalLabel})
	if err != nil {
		klog.V(2).Infof("listing node-local-dns pods: %v", err)
		return ""
	}
	for _, p := range l.Items {
		if p.Spec.NodeName != node || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Spec.Containers {
			if ip := localIPArg(c.Args); ip != "" {
				return ip
			}
		}
		return NodeLocalIP
	}
	return ""
}

// localIPArg is the first address of node-cache's -localip argument.
func localIPArg(args []string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		v, ok := strings.CutPrefix(a, "localip=")
		if !ok && a == "localip" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			first, _, _ := strings.Cut(v, ",")
			if net.ParseIP(first) != nil {
				return first
			}
		}
	}
	return ""
}
