package dnsdiag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// podResolvConf is the pod's resolv.conf as the helper finds it: through
// /proc/PID/root of the pod's processes, else the netdiag container's own
// (the runtime mounts the pod's into every container of the pod).
const podResolvConf = protocol.ResolvConfAuto

// nodeConntrackProc is the procfs of the node pod (hostNetwork): its
// net/stat/nf_conntrack is the node's.
const nodeConntrackProc = "/proc"

// HelperOutput is what one `netdiag-helper dns` run reported.
type HelperOutput struct {
	ResolvConf *protocol.ResolvConf
	Probes     []protocol.DNSProbe
	Load       *protocol.DNSLoad
	Conntrack  *protocol.ConntrackCounters
	// Error is the helper's error line, if any.
	Error string
}

// ParseHelperOutput reads the helper's JSON lines (protocol.DecodeOutput):
// hello first, the dns lines, done last.
func ParseHelperOutput(b []byte) (*HelperOutput, error) {
	out := &HelperOutput{}
	msg, err := protocol.DecodeOutput(b, func(m protocol.Message) error {
		switch {
		case m.ResolvConf != nil:
			out.ResolvConf = m.ResolvConf
		case m.DNSProbe != nil:
			out.Probes = append(out.Probes, *m.DNSProbe)
		case m.DNSLoad != nil:
			out.Load = m.DNSLoad
		case m.Conntrack != nil:
			out.Conntrack = m.Conntrack
		}
		return nil
	})
	out.Error = msg
	if msg != "" {
		err = fmt.Errorf("the helper failed: %s", msg)
	}
	return out, err
}

// runHelper runs `netdiag-helper dns` in a container and parses its lines.
func runHelper(ctx context.Context, ex kube.Executor, pod kube.Pod, container string, req protocol.DNSRequest) (*HelperOutput, error) {
	cmd := append([]string{kube.HelperPath}, req.Command()...)
	klog.V(3).Infof("exec in %s/%s (%s): %s", pod.Namespace, pod.Name, container, strings.Join(cmd, " "))
	var stdout, stderr bytes.Buffer
	err := ex.Stream(ctx, pod, container, cmd, nil, &stdout, &stderr)
	b := stdout.Bytes()
	if len(bytes.TrimSpace(b)) == 0 {
		b = stderr.Bytes()
	}
	out, perr := ParseHelperOutput(b)
	switch {
	case ctx.Err() != nil:
		return out, fmt.Errorf("interrupted: %w", ctx.Err())
	case out.Error != "":
		return out, fmt.Errorf("the helper in %s/%s failed: %s", pod.Namespace, pod.Name, out.Error)
	case err != nil:
		msg := strings.TrimSpace(stderr.String())
		if msg != "" && len(msg) < 500 {
			return out, fmt.Errorf("running the helper in %s/%s: %w (stderr: %s)", pod.Namespace, pod.Name, err, msg)
		}
		return out, fmt.Errorf("running the helper in %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return out, perr
}

// CheckPod reads the pod and says why its DNS cannot be probed, if it
// cannot; it returns the target container of the netdiag container.
func CheckPod(pod *corev1.Pod, container string) (string, error) {
	if pod.DeletionTimestamp != nil {
		return "", fmt.Errorf("pod %q in namespace %q is being deleted; name a running pod", pod.Name, pod.Namespace)
	}
	if pod.Status.Phase != corev1.PodRunning {
		phase := pod.Status.Phase
		if phase == "" {
			phase = "Unknown"
		}
		return "", fmt.Errorf("pod %q in namespace %q is %s, not Running: its DNS can only be probed from a running pod", pod.Name, pod.Namespace, phase)
	}
	if container == "" {
		container = kube.DefaultContainer(pod)
	} else {
		var names []string
		found := false
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
			found = found || c.Name == container
		}
		if !found {
			return "", fmt.Errorf("container %q not found in pod %q; its containers are: %s (pass one with -c)", container, pod.Name, strings.Join(names, ", "))
		}
	}
	if container == "" {
		return "", fmt.Errorf("pod %q in namespace %q has no containers", pod.Name, pod.Namespace)
	}
	return container, nil
}

// nodeStart is the node-debug pod, once started (or why not).
type nodeStart struct {
	s   *kube.NodeSession
	err error
}

// Run probes the pod's DNS hop by hop and judges it. Nothing is created
// before the pod, the flags and the permissions are checked; the node pod
// is deleted at the end; the netdiag container idles out as for captures.
func Run(ctx context.Context, deps kube.Deps, cfg Config) (*Result, error) {
	start := time.Now()
	if deps.NameSuffix == nil {
		deps.NameSuffix = kube.RandomSuffix
	}
	pod, err := kube.GetPod(ctx, deps.Client, cfg.Namespace, cfg.Pod)
	if err != nil {
		return nil, err
	}
	target, err := CheckPod(pod, cfg.Container)
	if err != nil {
		return nil, err
	}
	spec := kube.EphemeralSpec{Image: cfg.Image, PullPolicy: corev1.PullPolicy(cfg.PullPolicy), TargetContainer: target}
	name, _ := kube.FindReusableContainer(pod, spec)
	if err := preflight(ctx, deps, cfg, pod.Namespace, name == ""); err != nil {
		return nil, err
	}
	obs := Observations{Pod: podDNSOf(pod)}
	res := &Result{Pod: obs.Pod}

	ctlCh := make(chan Control, 1)
	go func() { ctlCh <- GatherControl(ctx, deps.Client, cfg, pod.Spec.NodeName) }()
	nodeCh := make(chan nodeStart, 1)
	// An early error ends the node pod's start at once (StartNodePod
	// deletes what it created).
	nodeCtx, cancelNode := context.WithCancel(ctx)
	finished := false
	if cfg.NoNode {
		nodeCh <- nodeStart{err: errors.New("--no-node")}
	} else {
		go func() {
			s, err := kube.StartNodePod(nodeCtx, deps, kube.NodePodSpec{
				Node: pod.Spec.NodeName, Namespace: pod.Namespace, Image: cfg.Image, PullPolicy: corev1.PullPolicy(cfg.PullPolicy),
				PullSecrets: pullSecrets(cfg.PullSecrets), StartTimeout: cfg.StartTimeout,
				WorkDuration: kube.BoundedWork(cfg.StartTimeout+time.Minute, 0),
			})
			nodeCh <- nodeStart{s, err}
		}()
	}
	var node *kube.NodeSession
	nodeWaited := false
	waitNode := func() *kube.NodeSession {
		if !nodeWaited {
			ns := <-nodeCh
			nodeWaited = true
			node = ns.s
			if ns.err != nil {
				obs.UpstreamSkipped = "the node-debug pod did not start: " + ns.err.Error()
				if cfg.NoNode {
					obs.UpstreamSkipped = "--no-node"
				}
			}
		}
		return node
	}
	defer func() {
		if !finished {
			cancelNode()
		}
		if n := waitNode(); n != nil {
			n.Close()
		}
		cancelNode()
	}()

	// The netdiag container, added or reused.
	if name != "" {
		res.Reused = true
		klog.V(1).Infof("reusing netdiag container %s in pod %s/%s", name, pod.Namespace, pod.Name)
	} else {
		ec := kube.NewEphemeralContainer(spec, deps.NameSuffix())
		name = ec.Name
		klog.V(1).Infof("adding netdiag container %s to pod %s/%s", name, pod.Namespace, pod.Name)
		if _, err := kube.AddEphemeralContainer(ctx, deps.Client, pod, ec); err != nil {
			return nil, err
		}
	}
	if _, err := kube.WaitForEphemeralRunning(ctx, deps.Client, pod.Namespace, pod.Name, name, cfg.StartTimeout); err != nil {
		return nil, err
	}
	res.Container = name
	podRef := kube.Pod{Namespace: pod.Namespace, Name: pod.Name}
	base := protocol.DefaultDNSRequest()
	base.Type, base.Timeout, base.Rate = cfg.Type, cfg.QueryTimeout, cfg.Rate

	// 1. The pod's resolv.conf.
	req := base
	req.ResolvConf = podResolvConf
	rcOut, err := runHelper(ctx, deps.Executor, podRef, name, req)
	if err != nil {
		return nil, err
	}
	obs.Control = <-ctlCh
	c := obs.Control

	// 2. The node's counters before the probes, and its resolv.conf.
	var before *protocol.ConntrackCounters
	useNode := waitNode()
	if n := useNode; n != nil {
		req := base
		req.ResolvConf = kube.HostMountPath + or(c.NodeResolvConf, "/etc/resolv.conf")
		req.ConntrackProc = nodeConntrackProc
		out, err := runHelper(ctx, deps.Executor, n.Pod, kube.NodeContainerName, req)
		if err != nil {
			obs.UpstreamSkipped = "the helper in the node-debug pod failed: " + err.Error()
			useNode = nil
		} else {
			before = out.Conntrack
			if out.ResolvConf != nil && out.ResolvConf.Error == "" {
				obs.NodeResolvConf = out.ResolvConf
			}
		}
	}

	// The pod's resolv.conf, or the one the kubelet would write for it.
	if rcOut.ResolvConf != nil && rcOut.ResolvConf.Error == "" {
		obs.ResolvConf = *rcOut.ResolvConf
	} else {
		why := "the helper reported none"
		if rcOut.ResolvConf != nil {
			why = rcOut.ResolvConf.Error
		}
		clusterDNS := c.ClusterDNS
		if len(clusterDNS) == 0 && c.ClusterIP != "" {
			clusterDNS = []string{c.ClusterIP}
		}
		obs.ResolvConf = ExpectedResolvConf(obs.Pod, clusterDNS, DomainOf(c.ClusterDomain, nil), obs.NodeResolvConf)
		obs.ResolvConf.Error = why
		obs.Computed = true
	}
	obs.NodeLocal = nodeLocalOf(c, obs.ResolvConf)
	domain := DomainOf(c.ClusterDomain, obs.ResolvConf.Search)
	obs.Control.ClusterDomain = domain
	obs.ClusterName = "kubernetes.default.svc." + domain + "."

	// 3. What a lookup of each name really sends (search expansion, UDP,
	// the first nameserver).
	if len(cfg.Names) > 0 && len(obs.ResolvConf.Nameservers) > 0 {
		req := base
		req.Names = cfg.Names
		req.Expand = true
		req.Protocols = []string{"udp"}
		// The helper expands with the search list and ndots it was
		// given: the resolv.conf's, or the computed one's.
		req.Search, req.Ndots = obs.ResolvConf.Search, obs.ResolvConf.Ndots
		req.Servers = []protocol.DNSServer{{Hop: HopResolvConf, Addr: obs.ResolvConf.Nameservers[0]}}
		out, err := runHelper(ctx, deps.Executor, podRef, name, req)
		if err != nil {
			return nil, err
		}
		obs.Lookups = out.Probes
	}

	// 4. Every hop, from the pod.
	obs.Names = probeNames(cfg.Names, obs.Lookups)
	req = base
	req.Names = append([]string{obs.ClusterName}, obs.Names...)
	req.Expand = false
	req.Servers = PodServers(obs)
	if len(req.Servers) > 0 {
		req.Load = cfg.Load
	}
	if req.Load > 0 {
		// The load's 2N queries at the rate, and its 5s retries.
		req.MaxTime = protocol.DefaultDNSMaxTime + time.Duration(2*cfg.Load)*time.Second/time.Duration(cfg.Rate) + 6*time.Second
	}
	out, err := runHelper(ctx, deps.Executor, podRef, name, req)
	if err != nil {
		return nil, err
	}
	obs.Probes = out.Probes
	obs.Load = out.Load

	// 5. The upstream, from the node, and the counters after.
	if n := useNode; n != nil {
		req := base
		req.ConntrackProc = nodeConntrackProc
		req.Expand = false
		req.Servers = upstreamServers(c.Upstream, obs.NodeResolvConf)
		for _, nm := range obs.Names {
			if !isClusterName(nm, domain) {
				req.Names = append(req.Names, nm)
			}
		}
		switch {
		case len(req.Servers) == 0:
			obs.UpstreamSkipped = "the Corefile names no upstream the node can query"
		case len(req.Names) == 0:
			obs.UpstreamSkipped = "no NAME outside the cluster domain was given"
		}
		if len(req.Servers) == 0 || len(req.Names) == 0 {
			req.Servers, req.Names = nil, nil
			req.ResolvConf = kube.HostMountPath + or(c.NodeResolvConf, "/etc/resolv.conf")
		}
		out, err := runHelper(ctx, deps.Executor, n.Pod, kube.NodeContainerName, req)
		if err != nil {
			obs.UpstreamSkipped = "the helper in the node-debug pod failed: " + err.Error()
		} else {
			obs.Probes = append(obs.Probes, out.Probes...)
			if before != nil && out.Conntrack != nil {
				ct := *out.Conntrack
				ct.InsertFailedBefore, ct.DropBefore = before.InsertFailedBefore, before.DropBefore
				if before.Error != "" {
					ct.Error = before.Error
				}
				obs.Conntrack = &ct
			}
		}
	}

	finished = true
	SortProbes(obs.Probes, append([]string{obs.ClusterName}, obs.Names...))
	SortProbes(obs.Lookups, cfg.Names)
	res.ResolvConf, res.ResolvConfComputed = obs.ResolvConf, obs.Computed
	res.Control = obs.Control
	res.Lookups, res.Hops = obs.Lookups, obs.Probes
	res.Load, res.Conntrack = obs.Load, obs.Conntrack
	res.Verdict = Judge(obs)
	res.Queries = len(obs.Lookups) + len(obs.Probes)
	if obs.Load != nil {
		res.Queries += 2 * obs.Load.Lookups
	}
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

// preflight checks, before anything is created, that the user may add (or
// reuse) the netdiag container and exec into it, and that the namespace's
// Pod Security level admits it.
func preflight(ctx context.Context, deps kube.Deps, cfg Config, namespace string, inject bool) error {
	if err := kube.CheckAccess(ctx, deps.Client, namespace, kube.CaptureAccess(inject), "to probe DNS from its pods"); err != nil {
		return err
	}
	level, err := kube.PodSecurityLevel(ctx, deps.Client, namespace)
	if err != nil {
		return err
	}
	if level == "baseline" || level == "restricted" {
		return fmt.Errorf("namespace %q enforces the %q Pod Security level (label %s), which refuses the netdiag container (it adds NET_RAW and NET_ADMIN and runs as user 0); ask for the namespace to enforce \"privileged\" while you debug",
			namespace, level, kube.PodSecurityEnforceLabel)
	}
	return nil
}

func pullSecrets(names []string) []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, s := range names {
		refs = append(refs, corev1.LocalObjectReference{Name: s})
	}
	return refs
}

// nodeLocalOf is the node-local cache's address when that layout is
// present: the kubelet hands it out as cluster DNS, the pod's resolv.conf
// names it, or a node-local-dns pod runs on the pod's node.
func nodeLocalOf(c Control, rc protocol.ResolvConf) string {
	if contains(c.ClusterDNS, NodeLocalAddress) || contains(rc.Nameservers, NodeLocalAddress) || len(c.NodeLocalPods) > 0 {
		return NodeLocalAddress
	}
	return ""
}

// probeNames are the user's names as the hops are asked: the expansion
// that answered in the lookup, else the name made absolute.
func probeNames(names []string, lookups []protocol.DNSProbe) []string {
	answered := map[string]string{}
	for _, q := range QueryCounts(lookups) {
		answered[q.Query] = q.Answered
	}
	var out []string
	for _, n := range names {
		fq := answered[n]
		if fq == "" {
			fq = strings.TrimSuffix(n, ".") + "."
		}
		if !strings.HasSuffix(fq, ".") {
			fq += "."
		}
		if !contains(out, fq) {
			out = append(out, fq)
		}
	}
	return out
}

// PodServers are the hops queried from the pod: its first nameserver, the
// node-local cache, the kube-dns ClusterIP and each ready CoreDNS
// endpoint.
func PodServers(o Observations) []protocol.DNSServer {
	var s []protocol.DNSServer
	if len(o.ResolvConf.Nameservers) > 0 && net.ParseIP(o.ResolvConf.Nameservers[0]) != nil {
		s = append(s, protocol.DNSServer{Hop: HopResolvConf, Addr: o.ResolvConf.Nameservers[0]})
	}
	if o.NodeLocal != "" {
		s = append(s, protocol.DNSServer{Hop: HopNodeLocal, Addr: o.NodeLocal})
	}
	if net.ParseIP(o.Control.ClusterIP) != nil {
		s = append(s, protocol.DNSServer{Hop: HopClusterIP, Addr: o.Control.ClusterIP})
	}
	for _, e := range o.Control.Endpoints {
		s = append(s, protocol.DNSServer{Hop: HopEndpoint, Addr: e})
	}
	return s
}

// upstreamServers are the Corefile's forward targets the node can query:
// IP[:port] targets, and the node's nameservers for a resolv.conf target.
func upstreamServers(targets []string, nodeRC *protocol.ResolvConf) []protocol.DNSServer {
	var s []protocol.DNSServer
	add := func(addr string) {
		host := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
		if net.ParseIP(host) == nil {
			return
		}
		for _, x := range s {
			if x.Addr == addr {
				return
			}
		}
		s = append(s, protocol.DNSServer{Hop: HopUpstream, Addr: addr})
	}
	for _, t := range targets {
		if h := ForwardHost(t); h != "" {
			add(h)
		} else if nodeRC != nil {
			for _, n := range nodeRC.Nameservers {
				add(n)
			}
		}
	}
	return s
}

// hopOrder is the order of the hops in the table: the way a query travels.
var hopOrder = map[string]int{HopResolvConf: 0, HopNodeLocal: 1, HopClusterIP: 2, HopEndpoint: 3, HopUpstream: 4}

// SortProbes orders probes by name (in the order given), hop (the way a
// query travels), server, protocol (UDP first) and expansion step: the
// helper reports them as they finish.
func SortProbes(probes []protocol.DNSProbe, names []string) {
	idx := func(l []string, s string) int {
		for i, x := range l {
			if x == s {
				return i
			}
		}
		return len(l)
	}
	sort.SliceStable(probes, func(i, j int) bool {
		a, b := probes[i], probes[j]
		if x, y := idx(names, a.Query), idx(names, b.Query); x != y {
			return x < y
		}
		if x, y := hopOrder[a.Hop], hopOrder[b.Hop]; x != y {
			return x < y
		}
		if a.Server != b.Server {
			return a.Server < b.Server
		}
		if a.Proto != b.Proto {
			return a.Proto == "udp"
		}
		return a.Step < b.Step
	})
}
