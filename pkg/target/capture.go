package target

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Workload kinds a capture resolves to their Running pods, and a label
// selector (-l), whose Name is the selector.
const (
	KindDeployment  Kind = "deployment"
	KindStatefulSet Kind = "statefulset"
	KindDaemonSet   Kind = "daemonset"
	KindSelector    Kind = "selector"
)

// captureTargets says what a capture takes, for errors.
const captureTargets = "pod/NAME, deploy/NAME, sts/NAME, ds/NAME, -l SELECTOR or node/NAME"

// ParseCapture parses a capture target: node/NAME (nodes/, no/ too),
// deploy/NAME, sts/NAME, ds/NAME (and their long forms), or a pod as
// ParsePod takes it.
func ParseCapture(arg string) (Target, error) {
	kind, rest, ok := strings.Cut(arg, "/")
	if !ok {
		return ParsePod(arg)
	}
	canonical, known := kindAliases[strings.ToLower(kind)]
	switch canonical {
	case "node":
		return ParseNode(arg)
	case "pod":
		return ParsePod(arg)
	case string(KindDeployment), string(KindStatefulSet), string(KindDaemonSet):
	default:
		if !known {
			return Target{}, fmt.Errorf("unknown target type %q in %q: capture takes %s", kind, arg, captureTargets)
		}
		return Target{}, fmt.Errorf("%q is a %s, which capture cannot resolve to pods: name its pods with -l SELECTOR, or use %s", arg, canonical, captureTargets)
	}
	if rest == "" {
		return Target{}, fmt.Errorf("missing %s name in %q", canonical, arg)
	}
	if errs := validation.IsDNS1123Subdomain(rest); len(errs) > 0 {
		return Target{}, fmt.Errorf("%q is not a valid %s name: %s", rest, canonical, strings.Join(errs, "; "))
	}
	return Target{Kind: Kind(canonical), Name: rest}, nil
}

// ParseCaptureArgs parses the targets of one capture: one node, or any
// number of pods and workloads, or a label selector (-l) alone. Repeated
// targets count once.
func ParseCaptureArgs(args []string, selector string) ([]Target, error) {
	if selector != "" {
		if len(args) > 0 {
			return nil, fmt.Errorf("-l selects the pods to capture: give no other target with it (got %s)", strings.Join(args, " "))
		}
		if _, err := labels.Parse(selector); err != nil {
			return nil, fmt.Errorf("-l %q is not a valid label selector: %v", selector, err)
		}
		return []Target{{Kind: KindSelector, Name: selector}}, nil
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("capture needs a target: %s, e.g. kubectl netdiag capture pod/web-0", captureTargets)
	}
	var out []Target
	seen := map[Target]bool{}
	for _, a := range args {
		t, err := ParseCapture(a)
		if err != nil {
			return nil, err
		}
		if t.Kind == KindNode && len(args) > 1 {
			return nil, fmt.Errorf("node/NAME captures on one node's interface and goes alone: capture each node in its own command (got %s)", strings.Join(args, " "))
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// Many says whether targets name more than one pod, or pods by a workload
// or a selector: a capture into one pcapng with an interface per pod.
func Many(targets []Target) bool {
	return len(targets) != 1 || (targets[0].Kind != KindPod && targets[0].Kind != KindNode)
}
