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

// PreflightNodePods checks, before anything is created, that the user may
// create, exec into and delete pods in the namespace, and that the
// namespace's Pod Security level admits a privileged pod.
func PreflightNodePods(ctx context.Context, client kubernetes.Interface, namespace string) error {
	var missing []string
	var hints []string
	for _, a := range NodePodAccess {
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
		return fmt.Errorf("you need %s in namespace %q to run the node-debug pod (check with: %s)",
			strings.Join(missing, " and "), namespace, strings.Join(hints, "; "))
	}
	ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("namespace %q not found: name an existing namespace with -n", namespace)
	case err != nil:
		klog.V(2).Infof("reading namespace %s for its Pod Security labels: %v", namespace, err)
		return nil
	}
	if level := ns.Labels[PodSecurityEnforceLabel]; level == "baseline" || level == "restricted" {
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
