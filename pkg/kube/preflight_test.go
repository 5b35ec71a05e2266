package kube

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestPreflightNodePods(t *testing.T) {
	ns := func(name, level string) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if level != "" {
			n.Labels = map[string]string{PodSecurityEnforceLabel: level}
		}
		return n
	}
	tests := []struct {
		name   string
		deny   map[string]bool // "verb resource/sub"
		target string
		want   string
	}{
		{"all allowed", nil, "ops", ""},
		{"no exec", map[string]bool{"create pods/exec": true}, "ops",
			"you need `create` on `pods/exec` in namespace \"ops\" to run the node-debug pod (check with: kubectl auth can-i create pods --subresource=exec -n ops)"},
		{"no create, no delete", map[string]bool{"create pods/": true, "delete pods/": true}, "ops",
			"you need `create` on `pods` and `delete` on `pods` in namespace \"ops\" to run the node-debug pod (check with: kubectl auth can-i create pods -n ops; kubectl auth can-i delete pods -n ops)"},
		{"baseline", nil, "web",
			`namespace "web" enforces the "baseline" Pod Security level (label pod-security.kubernetes.io/enforce), which refuses the privileged node-debug pod: use -n with a namespace labelled pod-security.kubernetes.io/enforce=privileged, e.g. -n tools`},
		{"missing", nil, "nope", `namespace "nope" not found: name an existing namespace with -n`},
	}
	for _, tt := range tests {
		client := fake.NewClientset(ns("ops", ""), ns("web", "baseline"), ns("tools", "privileged"))
		client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
			ra := r.Spec.ResourceAttributes
			r.Status.Allowed = !tt.deny[ra.Verb+" "+ra.Resource+"/"+ra.Subresource]
			return true, r, nil
		})
		err := PreflightNodePods(context.Background(), client, tt.target)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestPreflightCapture(t *testing.T) {
	ns := func(name, level string) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if level != "" {
			n.Labels = map[string]string{PodSecurityEnforceLabel: level}
		}
		return n
	}
	restricted := `namespace "locked" enforces the "restricted" Pod Security level (label pod-security.kubernetes.io/enforce), which refuses the netdiag container: it adds the capabilities NET_RAW and NET_ADMIN and runs as user 0 to capture; ask for the namespace to enforce "privileged" while you debug`
	tests := []struct {
		name   string
		deny   map[string]bool
		target string
		inject bool
		want   string
	}{
		{"all allowed, inject", nil, "shop", true, ""},
		{"all allowed, reuse", nil, "shop", false, ""},
		{"no patch, inject", map[string]bool{"patch pods/ephemeralcontainers": true}, "shop", true,
			"you need `patch` on `pods/ephemeralcontainers` in namespace \"shop\" to capture in its pods (check with: kubectl auth can-i patch pods --subresource=ephemeralcontainers -n shop)"},
		{"no patch, reuse", map[string]bool{"patch pods/ephemeralcontainers": true}, "shop", false, ""},
		{"no exec, reuse", map[string]bool{"create pods/exec": true}, "shop", false,
			"you need `create` on `pods/exec` in namespace \"shop\" to capture in its pods (check with: kubectl auth can-i create pods --subresource=exec -n shop)"},
		{"no get, no watch", map[string]bool{"get pods/": true, "watch pods/": true}, "shop", true,
			"you need `get` on `pods` and `watch` on `pods` in namespace \"shop\" to capture in its pods (check with: kubectl auth can-i get pods -n shop; kubectl auth can-i watch pods -n shop)"},
		{"restricted, inject", nil, "locked", true, restricted},
		{"restricted, reuse", nil, "locked", false, restricted},
	}
	for _, tt := range tests {
		client := fake.NewClientset(ns("shop", ""), ns("locked", "restricted"))
		client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
			ra := r.Spec.ResourceAttributes
			r.Status.Allowed = !tt.deny[ra.Verb+" "+ra.Resource+"/"+ra.Subresource]
			return true, r, nil
		})
		err := PreflightCapture(context.Background(), client, tt.target, tt.inject)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}
