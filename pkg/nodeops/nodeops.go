// Package nodeops is the plugin's engine for work on nodes: it runs
// `netdiag-helper check` (and `fix`) through node-debug pods (one pod per
// node, several nodes at a time, the pod always deleted at the end), plans
// the fixes and kills a check's findings call for, resolves the node and
// pod arguments of the commands, and cleans up what runs left behind. The
// commands in pkg/cmd turn flags into a Config, call the engine and render
// its results.
package nodeops

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// DefaultMaxConcurrency is how many nodes are checked at once by default.
const DefaultMaxConcurrency = 5

// PodInfoOf describes a pod for the helper: container IDs of its init,
// regular and ephemeral containers as the API reports them.
func PodInfoOf(p *corev1.Pod) protocol.PodInfo {
	pi := protocol.PodInfo{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), IP: net.ParseIP(p.Status.PodIP)}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			if s.ContainerID != "" {
				pi.Containers = append(pi.Containers, s.ContainerID)
			}
		}
	}
	return pi
}

// NodePods lists the Running pods of the node that have their own network
// (not hostNetwork), in every namespace.
func NodePods(ctx context.Context, client kubernetes.Interface, node string) ([]protocol.PodInfo, error) {
	l, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("spec.nodeName", node),
			fields.OneTermEqualSelector("status.phase", string(corev1.PodRunning)),
		).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of node %s: %w", node, err)
	}
	out := []protocol.PodInfo{}
	for i := range l.Items {
		p := &l.Items[i]
		// The fake clientset ignores field selectors: filter again.
		if p.Spec.NodeName != node || p.Status.Phase != corev1.PodRunning || p.Spec.HostNetwork {
			continue
		}
		out = append(out, PodInfoOf(p))
	}
	return out, nil
}

// Config is one run over nodes.
type Config struct {
	Namespace   string
	Image       string
	PullPolicy  corev1.PullPolicy
	PullSecrets []corev1.LocalObjectReference
	// StartTimeout bounds the wait for each node pod to run.
	StartTimeout time.Duration
	// ReconnectTimeout bounds the wait for a node pod whose check stream
	// broke to answer again; the check then runs once more (0: no retry;
	// a fix is never retried).
	ReconnectTimeout time.Duration
	// MaxConcurrency bounds how many nodes are worked on at once.
	MaxConcurrency int
	// Writable mounts the host's / read-write (fixes).
	Writable bool
	// Check is the helper's check request; each node's pods and runtime
	// endpoint are added to it.
	Check protocol.CheckRequest
	// Pods, when set, replaces the node's pods from the API (pod-scoped
	// runs pass the one pod).
	Pods func(node string) ([]protocol.PodInfo, bool)
	// RuntimeEndpoint is the node's CRI socket for the stale check; when
	// empty and LookupRuntimeEndpoint is set, that is asked per node
	// (KubeletRuntimeEndpoint).
	RuntimeEndpoint       string
	LookupRuntimeEndpoint func(ctx context.Context, node string) string
	// Fix, when set, runs after the check on each node with the session
	// still open.
	Fix *Fixer
}

// Result is what one node's run produced.
type Result struct {
	Node     string
	Findings []protocol.Finding
	Actions  []protocol.Action
	// Err is set when the run on the node failed (findings may still be
	// partial).
	Err error
}

// Session is the node pod a Fix runs helper commands in.
type Session interface {
	Exec(ctx context.Context, args []string, stdin []byte) (*kube.HelperReport, error)
}

// Run checks every node, at most cfg.MaxConcurrency at once, and returns
// the results in the order of nodes. Errors of one node are in its result.
func Run(ctx context.Context, deps kube.Deps, cfg Config, nodes []string) []Result {
	results := make([]Result, len(nodes))
	limit := cfg.MaxConcurrency
	if limit <= 0 {
		limit = DefaultMaxConcurrency
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Node: node, Err: fmt.Errorf("interrupted before the node was checked")}
				return
			}
			defer func() { <-sem }()
			results[i] = runNode(ctx, deps, cfg, node)
		}()
	}
	wg.Wait()
	return results
}

func runNode(ctx context.Context, deps kube.Deps, cfg Config, node string) Result {
	res := Result{Node: node}
	var pods []protocol.PodInfo
	ok := false
	if cfg.Pods != nil {
		pods, ok = cfg.Pods(node)
	}
	if !ok {
		var err error
		pods, err = NodePods(ctx, deps.Client, node)
		if err != nil {
			res.Err = err
			return res
		}
	}
	req := cfg.Check
	req.Pods = pods
	if req.Pods == nil {
		req.Pods = []protocol.PodInfo{}
	}
	if req.RuntimeEndpoint == "" {
		req.RuntimeEndpoint = cfg.RuntimeEndpoint
	}
	if req.RuntimeEndpoint == "" && cfg.LookupRuntimeEndpoint != nil {
		req.RuntimeEndpoint = cfg.LookupRuntimeEndpoint(ctx, node)
	}

	s, err := kube.StartNodePod(ctx, deps, kube.NodePodSpec{
		Node: node, Namespace: cfg.Namespace, Image: cfg.Image, PullPolicy: cfg.PullPolicy, PullSecrets: cfg.PullSecrets, Writable: cfg.Writable, StartTimeout: cfg.StartTimeout,
		// No deadline: --fix prompts may keep the pod for any time; the
		// session's keepalive ends it once the plugin is gone.
		WorkDuration: 0,
	})
	if err != nil {
		res.Err = err
		return res
	}
	defer s.Close()

	rep, err := s.Exec(ctx, req.Command(), req.Stdin())
	if err != nil && kube.IsStreamError(err) && ctx.Err() == nil && cfg.ReconnectTimeout > 0 {
		// The stream broke (an API server restarted): a check changes
		// nothing, so it runs again once the node pod answers.
		err = retryCheck(ctx, deps, s.Pod, cfg.ReconnectTimeout, err, func() error {
			rep, err = s.Exec(ctx, req.Command(), req.Stdin())
			return err
		})
	}
	if rep != nil {
		res.Findings = rep.Findings
	}
	if err != nil {
		res.Err = err
		return res
	}
	if cfg.Fix == nil {
		return res
	}
	actions, again, err := cfg.Fix.run(ctx, node, s, rep, req)
	res.Actions = actions
	if err != nil {
		res.Err = err
		return res
	}
	if again {
		rep, err := s.Exec(ctx, req.Command(), req.Stdin())
		if err != nil {
			res.Err = fmt.Errorf("checking again after the fix: %w", err)
			return res
		}
		res.Findings = rep.Findings
	}
	return res
}

// retryCheck waits for the node pod to answer again after a broken check
// stream, up to timeout, and runs the check once more.
func retryCheck(ctx context.Context, deps kube.Deps, pod kube.Pod, timeout time.Duration, broke error, again func() error) error {
	klog.V(1).Infof("the check stream of %s/%s broke (%v); retrying", pod.Namespace, pod.Name, broke)
	if err := kube.WaitUntil(ctx, time.Now().Add(timeout), func(ctx context.Context) error {
		return kube.NodePodRunning(ctx, deps.Client, pod)
	}); err != nil {
		return fmt.Errorf("%w; the node pod did not answer again within %s: %v", broke, timeout, err)
	}
	if err := again(); err != nil {
		return fmt.Errorf("the check's stream broke (%v), and so did its retry: %w", broke, err)
	}
	return nil
}

// KubeletRuntimeEndpoint asks the node's kubelet (nodes/proxy configz) for
// its containerRuntimeEndpoint, so the stale check can ask the runtime on
// nodes with a non-default socket. "" when it cannot be read.
func KubeletRuntimeEndpoint(ctx context.Context, client kubernetes.Interface, node string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b, err := client.CoreV1().RESTClient().Get().Resource("nodes").Name(node).SubResource("proxy", "configz").DoRaw(ctx)
	if err != nil {
		klog.V(2).Infof("reading the kubelet config of node %s: %v", node, err)
		return ""
	}
	var cfg struct {
		KubeletConfig struct {
			ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return ""
	}
	return cfg.KubeletConfig.ContainerRuntimeEndpoint
}
