package target

import (
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
