package target

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// KindNode is a node.
const KindNode Kind = "node"

// ParseNode parses a node target: node/NAME (nodes/, no/ too) or a bare
// NAME.
func ParseNode(arg string) (Target, error) {
	if arg == "" {
		return Target{}, fmt.Errorf("empty target: name a node, e.g. node/NAME")
	}
	name := arg
	if kind, rest, ok := strings.Cut(arg, "/"); ok {
		canonical, known := kindAliases[strings.ToLower(kind)]
		switch {
		case !known:
			return Target{}, fmt.Errorf("unknown target type %q in %q: name a node, e.g. node/NAME", kind, arg)
		case canonical != "node":
			return Target{}, fmt.Errorf("%q is a %s, not a node: name a node, e.g. node/NAME", arg, canonical)
		}
		name = rest
	}
	if name == "" {
		return Target{}, fmt.Errorf("missing node name in %q", arg)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return Target{}, fmt.Errorf("%q is not a valid node name: %s", name, strings.Join(errs, "; "))
	}
	return Target{Kind: KindNode, Name: name}, nil
}
