// Package target turns the command-line words that name what to work on
// (pod/web-0, web-0, deploy/web, node/x, -l selectors) into targets.
package target

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind of a target.
type Kind string

// KindPod is a pod target.
const KindPod Kind = "pod"

// Target is one parsed target.
type Target struct {
	Kind Kind
	Name string
}

// String renders the target the way kubectl prints resources: pod/web-0;
// a selector as -l SELECTOR.
func (t Target) String() string {
	if t.Kind == KindSelector {
		return "-l " + t.Name
	}
	return string(t.Kind) + "/" + t.Name
}

// kindAliases maps what kubectl accepts as a resource word to our kinds.
// Kinds we know but cannot capture yet are listed so the error can say so.
var kindAliases = map[string]string{
	"pod": "pod", "pods": "pod", "po": "pod",
	"deploy": "deployment", "deployment": "deployment", "deployments": "deployment",
	"sts": "statefulset", "statefulset": "statefulset", "statefulsets": "statefulset",
	"ds": "daemonset", "daemonset": "daemonset", "daemonsets": "daemonset",
	"rs": "replicaset", "replicaset": "replicaset", "replicasets": "replicaset",
	"job": "job", "jobs": "job",
	"svc": "service", "service": "service", "services": "service",
	"no": "node", "node": "node", "nodes": "node",
}

// ParsePod parses a capture target: pod/NAME (pods/, po/ too) or a bare NAME.
func ParsePod(arg string) (Target, error) {
	if arg == "" {
		return Target{}, fmt.Errorf("empty target: name a pod, e.g. pod/web-0")
	}
	name := arg
	if kind, rest, ok := strings.Cut(arg, "/"); ok {
		canonical, known := kindAliases[strings.ToLower(kind)]
		switch {
		case !known:
			return Target{}, fmt.Errorf("unknown target type %q in %q: name a pod, e.g. pod/web-0", kind, arg)
		case canonical != "pod":
			return Target{}, fmt.Errorf("%q is a %s, not a pod: this command works on one pod for now, e.g. pod/NAME", arg, canonical)
		}
		name = rest
	}
	if name == "" {
		return Target{}, fmt.Errorf("missing pod name in %q", arg)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return Target{}, fmt.Errorf("%q is not a valid pod name: %s", name, strings.Join(errs, "; "))
	}
	return Target{Kind: KindPod, Name: name}, nil
}
