package target

import (
	"fmt"
	"strings"
	"testing"
)

func TestParsePod(t *testing.T) {
	for _, tc := range []struct {
		arg, want, err string
	}{
		{arg: "web-0", want: "pod/web-0"},
		{arg: "pod/web-0", want: "pod/web-0"},
		{arg: "pods/web-0", want: "pod/web-0"},
		{arg: "PO/web-0", want: "pod/web-0"},
		{arg: "", err: "empty target: name a pod, e.g. pod/web-0"},
		{arg: "pod/", err: `missing pod name in "pod/"`},
		{arg: "deploy/web", err: `"deploy/web" is a deployment, not a pod: this command works on one pod for now, e.g. pod/NAME`},
		{arg: "node/n1", err: `"node/n1" is a node, not a pod`},
		{arg: "widget/x", err: `unknown target type "widget" in "widget/x": name a pod, e.g. pod/web-0`},
		{arg: "Web_0", err: `"Web_0" is not a valid pod name`},
	} {
		got, err := ParsePod(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("ParsePod(%q) error = %v, want prefix %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParsePod(%q) = %v, %v; want %s", tc.arg, got, err, tc.want)
		}
	}
}

func TestParseCaptureArgs(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		selector string
		want     string
		many     bool
		err      string
	}{
		{args: []string{"web-0"}, want: "[pod/web-0]"},
		{args: []string{"node/n1"}, want: "[node/n1]"},
		{args: []string{"deploy/web"}, want: "[deployment/web]", many: true},
		{args: []string{"deployments/web"}, want: "[deployment/web]", many: true},
		{args: []string{"sts/db", "ds/agent"}, want: "[statefulset/db daemonset/agent]", many: true},
		{args: []string{"pod/a", "b", "po/a"}, want: "[pod/a pod/b]", many: true},
		{selector: "app=web", want: "[-l app=web]", many: true},
		{selector: "app in (web,api),tier!=db", want: "[-l app in (web,api),tier!=db]", many: true},
		{err: "capture needs a target: pod/NAME, deploy/NAME, sts/NAME, ds/NAME, -l SELECTOR or node/NAME, e.g. kubectl netdiag capture pod/web-0"},
		{args: []string{"pod/a"}, selector: "app=web", err: "-l selects the pods to capture: give no other target with it (got pod/a)"},
		{selector: "app=(web", err: `-l "app=(web" is not a valid label selector`},
		{args: []string{"node/n1", "pod/a"}, err: "node/NAME captures on one node's interface and goes alone: capture each node in its own command (got node/n1 pod/a)"},
		{args: []string{"svc/web"}, err: `"svc/web" is a service, which capture cannot resolve to pods: name its pods with -l SELECTOR, or use pod/NAME, deploy/NAME, sts/NAME, ds/NAME, -l SELECTOR or node/NAME`},
		{args: []string{"widget/x"}, err: `unknown target type "widget" in "widget/x": capture takes pod/NAME`},
		{args: []string{"deploy/"}, err: `missing deployment name in "deploy/"`},
		{args: []string{"ds/Bad_Name"}, err: `"Bad_Name" is not a valid daemonset name`},
		{args: []string{"pod/a", "pod/"}, err: `missing pod name in "pod/"`},
	} {
		got, err := ParseCaptureArgs(tc.args, tc.selector)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("ParseCaptureArgs(%q, %q) error = %v, want prefix %q", tc.args, tc.selector, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want || Many(got) != tc.many {
			t.Errorf("ParseCaptureArgs(%q, %q) = %v (many %v), %v; want %s (many %v)", tc.args, tc.selector, got, Many(got), err, tc.want, tc.many)
		}
	}
}
