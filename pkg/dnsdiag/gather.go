package dnsdiag

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// Labels of the cluster DNS objects.
const (
	kubeDNSName       = "kube-dns"
	kubeDNSLabel      = "k8s-app"
	nodeLocalDNSValue = "node-local-dns"
	corefileConfigMap = "coredns"
	maxLogPods        = 3
	logHitsPerKind    = 2
)

// podDNSOf is what the pod spec says about DNS.
func podDNSOf(p *corev1.Pod) PodDNS {
	d := PodDNS{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, DNSPolicy: string(p.Spec.DNSPolicy), HostNetwork: p.Spec.HostNetwork}
	if d.DNSPolicy == "" {
		d.DNSPolicy = string(corev1.DNSClusterFirst)
	}
	if c := p.Spec.DNSConfig; c != nil {
		d.Nameservers = c.Nameservers
		d.Searches = c.Searches
		for _, o := range c.Options {
			if o.Value != nil {
				d.Options = append(d.Options, o.Name+":"+*o.Value)
			} else {
				d.Options = append(d.Options, o.Name)
			}
		}
	}
	return d
}

// readError turns a read error into a sentence; a Forbidden one names the
// permission and the command to check it.
func readError(err error, verb, resource, ns string) string {
	if apierrors.IsForbidden(err) {
		return fmt.Sprintf("you need `%s` on `%s` in namespace %q to read it (check with: kubectl auth can-i %s %s -n %s)", verb, resource, ns, verb, resource, ns)
	}
	return fmt.Sprintf("reading %s in namespace %q: %v", resource, ns, err)
}

// GatherControl reads the cluster DNS from the API: the kube-dns Service,
// its ready endpoints, the CoreDNS pods and their recent log lines, the
// Corefile's upstream, the node-local cache pods on node, and the node's
// kubelet DNS settings. Errors become fields: the probes still run.
func GatherControl(ctx context.Context, client kubernetes.Interface, cfg Config, node string) Control {
	ns := cfg.DNSNamespace
	var c Control
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(3)
	go func() {
		defer wg.Done()
		var domain, resolv string
		var dns []string
		if cfg.Kubelet != nil && node != "" {
			domain, dns, resolv = cfg.Kubelet(ctx, node)
		}
		mu.Lock()
		c.ClusterDomain, c.ClusterDNS, c.NodeResolvConf = domain, dns, resolv
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		up, err := corefileUpstream(ctx, client, ns)
		mu.Lock()
		c.Upstream, c.CorefileError = up, err
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		pods, err := dnsPods(ctx, client, ns, labels.Set{kubeDNSLabel: nodeLocalDNSValue}.AsSelector(), node)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			c.NodeLocalPods = pods
		}
	}()

	svc, err := kubeDNSService(ctx, client, ns)
	if err != nil {
		c.ServiceError = err.Error()
		wg.Wait()
		return c
	}
	c.Service, c.ClusterIP = svc.Name, svc.Spec.ClusterIP
	ready, notReady, err := readyEndpoints(ctx, client, ns, svc.Name)
	if err != nil {
		c.EndpointsError = err.Error()
	}
	c.Endpoints, c.NotReady = ready, notReady
	sel := labels.Set(svc.Spec.Selector).AsSelector()
	if len(svc.Spec.Selector) == 0 {
		sel = labels.Set{kubeDNSLabel: kubeDNSName}.AsSelector()
	}
	pods, err := dnsPods(ctx, client, ns, sel, "")
	if err != nil {
		c.PodsError = err.Error()
	}
	c.Pods = pods
	c.Logs, c.LogsError = recentLogs(ctx, client, ns, pods, cfg)
	wg.Wait()
	return c
}

// kubeDNSService finds the kube-dns Service: by name, else by label.
func kubeDNSService(ctx context.Context, client kubernetes.Interface, ns string) (*corev1.Service, error) {
	svc, err := client.CoreV1().Services(ns).Get(ctx, kubeDNSName, metav1.GetOptions{})
	if err == nil {
		return svc, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s", readError(err, "get", "services", ns))
	}
	l, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: kubeDNSLabel + "=" + kubeDNSName})
	if err != nil {
		return nil, fmt.Errorf("%s", readError(err, "list", "services", ns))
	}
	if len(l.Items) == 0 {
		return nil, fmt.Errorf("no kube-dns Service in namespace %s (by name kube-dns or label %s=%s): the cluster has no cluster DNS", ns, kubeDNSLabel, kubeDNSName)
	}
	return &l.Items[0], nil
}

// readyEndpoints lists the ready addresses of the Service's EndpointSlices.
func readyEndpoints(ctx context.Context, client kubernetes.Interface, ns, svc string) (ready []string, notReady int, err error) {
	l, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil, 0, fmt.Errorf("%s", readError(err, "list", "endpointslices.discovery.k8s.io", ns))
	}
	ready = []string{}
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				notReady += len(e.Addresses)
				continue
			}
			for _, a := range e.Addresses {
				if net.ParseIP(a) != nil && !contains(ready, a) {
					ready = append(ready, a)
				}
			}
		}
	}
	sort.Strings(ready)
	return ready, notReady, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// dnsPods lists the pods matching sel (on node, when set).
func dnsPods(ctx context.Context, client kubernetes.Interface, ns string, sel labels.Selector, node string) ([]DNSPod, error) {
	l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("%s", readError(err, "list", "pods", ns))
	}
	out := []DNSPod{}
	for _, p := range l.Items {
		if node != "" && p.Spec.NodeName != node {
			continue
		}
		d := DNSPod{Name: p.Name, Node: p.Spec.NodeName, IP: p.Status.PodIP, Phase: string(p.Status.Phase)}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				d.Ready = c.Status == corev1.ConditionTrue
			}
		}
		for _, s := range p.Status.ContainerStatuses {
			d.Restarts += s.RestartCount
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// recentLogs reads the last lines of up to maxLogPods CoreDNS pods and
// keeps those naming a known failure.
func recentLogs(ctx context.Context, client kubernetes.Interface, ns string, pods []DNSPod, cfg Config) ([]LogHit, string) {
	var hits []LogHit
	var errs []string
	for i, p := range pods {
		if i == maxLogPods {
			break
		}
		opts := &corev1.PodLogOptions{TailLines: ptr.To(cfg.LogTail)}
		if cfg.LogSince > 0 {
			opts.SinceSeconds = ptr.To(int64(cfg.LogSince / time.Second))
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		b, err := client.CoreV1().Pods(ns).GetLogs(p.Name, opts).DoRaw(lctx)
		cancel()
		if err != nil {
			if apierrors.IsForbidden(err) {
				return hits, readError(err, "get", "pods/log", ns)
			}
			klog.V(2).Infof("reading the log of %s/%s: %v", ns, p.Name, err)
			errs = append(errs, p.Name)
			continue
		}
		hits = append(hits, MatchLogs(p.Name, string(b), logHitsPerKind)...)
	}
	if len(errs) > 0 {
		return hits, "could not read the log of " + strings.Join(errs, ", ")
	}
	return hits, ""
}

// corefileUpstream reads the coredns ConfigMap's Corefile and returns its
// root-zone forward targets.
func corefileUpstream(ctx context.Context, client kubernetes.Interface, ns string) ([]string, string) {
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, corefileConfigMap, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "no ConfigMap coredns in namespace " + ns + ": the upstream is unknown"
		}
		return nil, readError(err, "get", "configmaps", ns)
	}
	text, ok := cm.Data["Corefile"]
	if !ok {
		return nil, "ConfigMap " + ns + "/coredns has no Corefile"
	}
	up := RootForward(ParseCorefile(text))
	if up == nil {
		return nil, "the Corefile forwards no names outside the cluster (no `forward .` in its root zone)"
	}
	return up, ""
}

// KubeletDNS asks the node's kubelet (nodes/proxy configz) for its
// clusterDomain, clusterDNS and resolvConf; empty when it cannot be read
// (Config.Kubelet).
func KubeletDNS(client kubernetes.Interface) func(ctx context.Context, node string) (domain string, dns []string, resolv string) {
	return func(ctx context.Context, node string) (string, []string, string) {
		return kubeletDNS(ctx, client, node)
	}
}

func kubeletDNS(ctx context.Context, client kubernetes.Interface, node string) (domain string, dns []string, resolv string) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b, err := client.CoreV1().RESTClient().Get().Resource("nodes").Name(node).SubResource("proxy", "configz").DoRaw(ctx)
	if err != nil {
		klog.V(2).Infof("reading the kubelet config of node %s: %v", node, err)
		return "", nil, ""
	}
	return parseConfigz(b)
}

func parseConfigz(b []byte) (domain string, dns []string, resolv string) {
	var cfg struct {
		KubeletConfig struct {
			ClusterDomain string   `json:"clusterDomain"`
			ClusterDNS    []string `json:"clusterDNS"`
			ResolvConf    string   `json:"resolvConf"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", nil, ""
	}
	k := cfg.KubeletConfig
	return strings.TrimSuffix(k.ClusterDomain, "."), k.ClusterDNS, k.ResolvConf
}
