package kube

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// PodSecurityEnforceLabel is the namespace label of Pod Security admission.
const PodSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"

// Access is one verb on one resource the node-debug pods need.
type Access struct {
	Verb, Resource, Subresource string
}

func (a Access) String() string {
	if a.Subresource != "" {
		return fmt.Sprintf("`%s` on `%s/%s`", a.Verb, a.Resource, a.Subresource)
	}
	return fmt.Sprintf("`%s` on `%s`", a.Verb, a.Resource)
}

func (a Access) canI(ns string) string {
	s := fmt.Sprintf("kubectl auth can-i %s %s -n %s", a.Verb, a.Resource, ns)
	if a.Subresource != "" {
		s = fmt.Sprintf("kubectl auth can-i %s %s --subresource=%s -n %s", a.Verb, a.Resource, a.Subresource, ns)
	}
	return s
}

// NodePodAccess is what a node-debug run needs in its namespace.
var NodePodAccess = []Access{
	{Verb: "create", Resource: "pods"},
	{Verb: "create", Resource: "pods", Subresource: "exec"},
	{Verb: "delete", Resource: "pods"},
}

// CaptureAccess is what a pod capture needs in the pod's namespace: exec,
// get and watch on pods (the wait for the container), and the
// ephemeralcontainers patch when no netdiag container can be reused.
func CaptureAccess(inject bool) []Access {
	need := []Access{
		{Verb: "create", Resource: "pods", Subresource: "exec"},
		{Verb: "get", Resource: "pods"},
		{Verb: "watch", Resource: "pods"},
	}
	if inject {
		need = append(need, Access{Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers"})
	}
	return need
}

// CheckAccess asks the API server (SelfSubjectAccessReview) whether the user
// has each access in namespace, and names every one that is missing, with
// the command to check it, in one error. purpose ends the sentence, e.g. "to
// run the node-debug pod".
func CheckAccess(ctx context.Context, client kubernetes.Interface, namespace string, need []Access, purpose string) error {
	var missing, hints []string
	for _, a := range need {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: a.Verb, Resource: a.Resource, Subresource: a.Subresource,
			},
		}}
		res, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			// Not being allowed to ask is no answer: go on and let
			// the API say no if it must.
			klog.V(2).Infof("SelfSubjectAccessReview for %s: %v", a, err)
			continue
		}
		if !res.Status.Allowed {
			missing = append(missing, a.String())
			hints = append(hints, a.canI(namespace))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("you need %s in namespace %q %s (check with: %s)",
			strings.Join(missing, " and "), namespace, purpose, strings.Join(hints, "; "))
	}
	return nil
}

// PodSecurityLevel is the Pod Security level namespace enforces ("" when
// none is set or the namespace cannot be read).
func PodSecurityLevel(ctx context.Context, client kubernetes.Interface, namespace string) (string, error) {
	ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("namespace %q not found: name an existing namespace with -n", namespace)
	case err != nil:
		klog.V(2).Infof("reading namespace %s for its Pod Security labels: %v", namespace, err)
		return "", nil
	}
	return ns.Labels[PodSecurityEnforceLabel], nil
}

// PreflightCapture checks, before the netdiag container is added or
// reused, that the user may exec into it and watch the pod (and add it, when
// inject), and that the namespace's Pod Security level admits NET_RAW and
// NET_ADMIN: a restricted namespace is refused even when a netdiag container
// is already there, since a capture in it goes against the namespace's
// policy all the same.
func PreflightCapture(ctx context.Context, client kubernetes.Interface, namespace string, inject bool) error {
	if err := CheckAccess(ctx, client, namespace, CaptureAccess(inject), "to capture in its pods"); err != nil {
		return err
	}
	level, err := PodSecurityLevel(ctx, client, namespace)
	if err != nil {
		return err
	}
	if level == "baseline" || level == "restricted" {
		return fmt.Errorf("namespace %q enforces the %q Pod Security level (label %s), which refuses the netdiag container: it adds the capabilities NET_RAW and NET_ADMIN and runs as user 0 to capture; ask for the namespace to enforce \"privileged\" while you debug",
			namespace, level, PodSecurityEnforceLabel)
	}
	return nil
}

// PreflightNodePods checks, before anything is created, that the user may
// create, exec into and delete pods in the namespace, and that the
// namespace's Pod Security level admits a privileged pod.
func PreflightNodePods(ctx context.Context, client kubernetes.Interface, namespace string) error {
	if err := CheckAccess(ctx, client, namespace, NodePodAccess, "to run the node-debug pod"); err != nil {
		return err
	}
	level, err := PodSecurityLevel(ctx, client, namespace)
	if err != nil {
		return err
	}
	if level == "baseline" || level == "restricted" {
		return fmt.Errorf("namespace %q enforces the %q Pod Security level (label %s), which refuses the privileged node-debug pod: use -n with a namespace labelled %s=privileged%s",
			namespace, level, PodSecurityEnforceLabel, PodSecurityEnforceLabel, privilegedNamespaceHint(ctx, client))
	}
	return nil
}

// privilegedNamespaceHint names a namespace the node pod would be admitted
// in, when one can be listed.
func privilegedNamespaceHint(ctx context.Context, client kubernetes.Interface) string {
	l, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: PodSecurityEnforceLabel + "=privileged"})
	if err != nil || len(l.Items) == 0 {
		return " (e.g. kube-system, where Pod Security is usually not enforced)"
	}
	return fmt.Sprintf(", e.g. -n %s", l.Items[0].Name)
}
