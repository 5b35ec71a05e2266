package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// GetPod reads a pod; its errors say what to do (the pod does not exist,
// which permission is missing).
func GetPod(ctx context.Context, client kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("pod %q not found in namespace %q", name, namespace)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("you need `get` on `pods` in namespace %q (check with: kubectl auth can-i get pods -n %s) (error from server: %v)", namespace, namespace, err)
	case err != nil:
		return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	return pod, nil
}

// GetNode reads a node; its errors say what to do.
func GetNode(ctx context.Context, client kubernetes.Interface, name string) (*corev1.Node, error) {
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("node %q not found (list them with: kubectl get nodes)", name)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("you need `get` on `nodes` (cluster-scoped; check with: kubectl auth can-i get nodes) (error from server: %v)", err)
	case err != nil:
		return nil, fmt.Errorf("reading node %s: %w", name, err)
	}
	return node, nil
}
