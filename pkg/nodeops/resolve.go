package nodeops

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// NodeNames resolves NODE arguments, or all nodes (matching selector, when
// set), into node names; named nodes must exist.
func NodeNames(ctx context.Context, client kubernetes.Interface, args []string, selector string) ([]string, error) {
	if len(args) > 0 {
		seen := map[string]bool{}
		var out []string
		for _, a := range args {
			t, err := target.ParseNode(a)
			if err != nil {
				return nil, err
			}
			if _, err := kube.GetNode(ctx, client, t.Name); err != nil {
				return nil, err
			}
			if !seen[t.Name] {
				seen[t.Name] = true
				out = append(out, t.Name)
			}
		}
		return out, nil
	}
	l, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	if len(out) == 0 {
		if selector != "" {
			return nil, fmt.Errorf("no node matches -l %s", selector)
		}
		return nil, fmt.Errorf("the cluster has no nodes")
	}
	return out, nil
}

// PodScope is a pod-scoped run: the pod, its node, and the check request
// that names it.
type PodScope struct {
	Pod   *corev1.Pod
	Node  string
	Check protocol.CheckRequest
}

// ResolvePod reads the pod and scopes a check request to it: its UID, IP
// and containers, and the port whose holder the stale check names (port,
// else the first containerPort the pod declares).
func ResolvePod(ctx context.Context, client kubernetes.Interface, namespace, name string, port int) (*PodScope, error) {
	pod, err := kube.GetPod(ctx, client, namespace, name)
	if err != nil {
		return nil, err
	}
	if pod.Spec.NodeName == "" {
		return nil, fmt.Errorf("pod %s/%s is not scheduled on a node yet", namespace, name)
	}
	if pod.Spec.HostNetwork {
		return nil, fmt.Errorf("pod %s/%s uses the node's network (hostNetwork): check its node instead: kubectl netdiag node check %s", namespace, name, pod.Spec.NodeName)
	}
	pi := PodInfoOf(pod)
	req := protocol.DefaultCheckRequest()
	req.PodUID = string(pod.UID)
	if pi.IP != nil {
		req.PodIP = pi.IP.String()
	}
	req.KnownContainers = pi.Containers
	if port == 0 {
		port = FirstContainerPort(pod)
	}
	req.Port = port
	return &PodScope{Pod: pod, Node: pod.Spec.NodeName, Check: req}, nil
}

// FirstContainerPort is the first port the pod's containers declare, 0 if
// none.
func FirstContainerPort(pod *corev1.Pod) int {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.ContainerPort > 0 {
				return int(p.ContainerPort)
			}
		}
	}
	return 0
}

// OnlyPod makes the helper look at the scope's pod alone (Config.Pods).
func (s *PodScope) OnlyPod(string) ([]protocol.PodInfo, bool) {
	return []protocol.PodInfo{PodInfoOf(s.Pod)}, true
}
