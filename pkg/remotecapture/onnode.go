package remotecapture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// DefaultProgressEvery is how often the helper is asked for a progress
// line when Config.Progress is set.
const DefaultProgressEvery = time.Second

// progressEvery is the helper's --progress for cfg: 0 (none) unless
// someone listens.
func progressEvery(cfg Config) time.Duration {
	if cfg.Progress == nil {
		return 0
	}
	return DefaultProgressEvery
}

// withProgressBase makes cfg's progress callback count from base (the
// segments before this one) and time from start: the helper of a resumed
// segment counts from zero.
func withProgressBase(cfg Config, base protocol.Stats, start time.Time) Config {
	if cfg.Progress == nil {
		return cfg
	}
	report := cfg.Progress
	cfg.Progress = func(p protocol.Progress) {
		p.Packets += base.Packets
		p.Bytes += base.Bytes
		p.KernelDrops += base.KernelDrops
		p.DurationSeconds = time.Since(start).Seconds()
		report(p)
	}
	return cfg
}

// onNodeWhy says why --on-node works where the netdiag container cannot
// go: it adds nothing to the pod.
const onNodeWhy = "capture with --on-node instead: it captures the pod's traffic on its host-side veth from a node-debug pod on the pod's node (in --node-namespace), and adds nothing to the pod"

// onNodeAdvice adds the way out to an error that says the netdiag
// container may not be added to pods of namespace (a Pod Security level,
// an admission policy or webhook that refuses the patch, ephemeral
// containers disabled); other errors are returned as they are.
func onNodeAdvice(ctx context.Context, client kubernetes.Interface, namespace string, err error) error {
	if err == nil || !injectionRefused(err) {
		return err
	}
	hint := ""
	if level, _ := kube.PodSecurityLevel(ctx, client, namespace); level == "baseline" || level == "restricted" {
		hint = fmt.Sprintf("; the node-debug pod is privileged, so it cannot run in namespace %q either: pass --node-namespace with a namespace that admits privileged pods%s", namespace, privilegedNamespaceHint(ctx, client))
	}
	return fmt.Errorf("%w; %s%s", err, onNodeWhy, hint)
}

// injectionRefused says whether err is the cluster refusing the netdiag
// container itself, not the user's rights. pkg/kube turns these API errors
// into advice text (PatchAdvice, PreflightCapture); this recognises that
// text, and the server's own words of an admission denial.
func injectionRefused(err error) bool {
	msg := err.Error()
	for _, s := range []string{
		"Pod Security level",                 // PreflightCapture
		"Pod Security policy of namespace",   // PatchAdvice, a PodSecurity rejection
		"ephemeral containers are disabled",  // PatchAdvice, no subresource
		"admission webhook",                  // a webhook's denial
		"ValidatingAdmissionPolicy",          // an admission policy's denial
		"denied request",                     // other admission plugins
		"denied the request",                 // webhooks
		"violates PodSecurity",               // the server's own words
		"ephemeralcontainers is not allowed", // disabled by an admission plugin
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// privilegedNamespaceHint names a namespace labelled for privileged pods,
// when one can be listed, else kube-system.
func privilegedNamespaceHint(ctx context.Context, client kubernetes.Interface) string {
	l, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: kube.PodSecurityEnforceLabel + "=privileged"})
	if err != nil || len(l.Items) == 0 {
		return " (e.g. --node-namespace kube-system, where Pod Security is usually not enforced)"
	}
	return fmt.Sprintf(", e.g. --node-namespace %s", l.Items[0].Name)
}

// OnNodeNote is the summary's note for an --on-node capture.
func OnNodeNote(node string) string {
	return fmt.Sprintf("the pod's host-side veth on node/%s: directions are reversed, what the pod sends comes in here, so `inbound`/`outbound` read the other way round", node)
}

// runOnNode captures a pod's traffic on its host-side veth: a node-debug
// pod on the pod's node first runs the helper's veth check (the same one
// `kubectl netdiag veth` runs) to find the interface, then captures on it.
// The node pod is deleted at the end whatever happens; the capture
// behaves as a node capture (resume, heartbeat).
func runOnNode(ctx context.Context, deps Deps, cfg Config) (Result, error) {
	res := Result{Target: cfg.Label()}
	pod, _, err := CheckPod(ctx, deps.Client, Config{Namespace: cfg.Namespace, Pod: cfg.Pod})
	if err != nil {
		return res, err
	}
	node := pod.Spec.NodeName
	if node == "" {
		return res, fmt.Errorf("pod %s/%s is not scheduled on a node yet: nothing to capture", pod.Namespace, pod.Name)
	}
	ns := cfg.NodeNamespace
	if ns == "" {
		ns = pod.Namespace
	}
	if level, err := kube.PodSecurityLevel(ctx, deps.Client, ns); err != nil {
		return res, err
	} else if level == "baseline" || level == "restricted" {
		which := fmt.Sprintf("--node-namespace %q", ns)
		if cfg.NodeNamespace == "" {
			which = fmt.Sprintf("namespace %q (the pod's, where --on-node runs its node-debug pod unless --node-namespace names another)", ns)
		}
		return res, fmt.Errorf("%s enforces the %q Pod Security level (label %s), which refuses the privileged node-debug pod: pass --node-namespace with a namespace that admits privileged pods%s",
			which, level, kube.PodSecurityEnforceLabel, privilegedNamespaceHint(ctx, deps.Client))
	}
	if err := kube.PreflightNodePods(ctx, deps.Client, ns); err != nil {
		return res, err
	}
	out, err := cfg.Open()
	if err != nil {
		return res, err
	}
	session, err := kube.StartNodePod(ctx, deps, kube.NodePodSpec{Node: node, Namespace: ns, Image: cfg.Image, PullPolicy: cfg.PullPolicy, PullSecrets: cfg.PullSecrets, StartTimeout: cfg.Timeout,
		// The veth lookup takes a few seconds more than a node capture.
		WorkDuration: kube.BoundedWork(cfg.Duration, cfg.Timeout+cfg.Grace+30*time.Second)})
	if err != nil {
		_ = out.Close()
		return res, err
	}
	defer session.Close()
	veth, err := FindVeth(ctx, session, nodeops.PodInfoOf(pod))
	if err != nil {
		_ = out.Close()
		return res, fmt.Errorf("--on-node: %w", err)
	}
	klog.V(1).Infof("pod %s/%s is on host interface %s of node %s", pod.Namespace, pod.Name, veth, node)
	cfg.Interface = veth
	res.Interface, res.Note, res.Container = veth, OnNodeNote(node), kube.NodeContainerName
	t := target{pod: session.Pod, container: kube.NodeContainerName}
	t.ready = func(ctx context.Context) error { return kube.NodePodRunning(ctx, deps.Client, t.pod) }
	return capture(ctx, deps, cfg, res, t, out)
}

// HelperSession runs a helper command in a node pod and parses its
// report (kube.NodeSession).
type HelperSession interface {
	Exec(ctx context.Context, args []string, stdin []byte) (*kube.HelperReport, error)
}

// FindVeth runs the helper's veth check for pod in s and returns the
// pod's host-side interface.
func FindVeth(ctx context.Context, s HelperSession, pod protocol.PodInfo) (string, error) {
	req := protocol.DefaultCheckRequest()
	req.Checks = []string{protocol.CheckVeth}
	req.PodUID = pod.UID
	if pod.IP != nil {
		req.PodIP = pod.IP.String()
	}
	req.KnownContainers = pod.Containers
	req.Pods = []protocol.PodInfo{pod}
	rep, err := s.Exec(ctx, req.Command(), req.Stdin())
	if err != nil {
		return "", fmt.Errorf("finding the host-side veth of pod %s: %w", pod.Label(), err)
	}
	var why []string
	for _, f := range rep.Findings {
		if f.Check != protocol.CheckVeth {
			continue
		}
		var d protocol.VethData
		if err := f.DecodeData(&d); err != nil {
			return "", fmt.Errorf("the helper's veth finding for %s: %w", pod.Label(), err)
		}
		if d.Pod != "" && d.Pod != pod.Label() {
			continue
		}
		if d.HostInterface != "" {
			return d.HostInterface, nil
		}
		w := f.Message
		if len(d.Tried) > 0 {
			w += " (tried: " + strings.Join(d.Tried, "; ") + ")"
		}
		why = append(why, w)
	}
	if len(why) == 0 {
		return "", errors.New("the helper's veth check said nothing about pod " + pod.Label() + "; pass --image with the helper of this plugin's version")
	}
	return "", fmt.Errorf("cannot find the host-side veth of pod %s: %s; capture in the pod instead (without --on-node), or on the node's bridge: kubectl netdiag capture node/NODE --interface cbr0 -f 'host POD-IP'", pod.Label(), strings.Join(why, "; "))
}
