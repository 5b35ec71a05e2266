package cmd

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
)

const cleanupExample = `  # Delete leftover node-debug pods in every namespace, list live netdiag containers
  kubectl netdiag cleanup

  # Only in namespace shop, and only show what would be deleted
  kubectl netdiag cleanup -n shop --dry-run`

// CleanupOptions drives `kubectl netdiag cleanup`.
type CleanupOptions struct {
	clusterOptions
	genericiooptions.IOStreams

	DryRun bool
	// AllNamespaces is true unless -n was given.
	AllNamespaces bool
}

// NewCmdCleanup builds `kubectl netdiag cleanup`.
func NewCmdCleanup(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CleanupOptions{clusterOptions: clusterOptions{configFlags: configFlags}, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "cleanup [-n NAMESPACE] [--dry-run]",
		Short: "Delete leftover node-debug pods and list live netdiag containers",
		Long: `Delete the node-debug pods the plugin left behind (a kubectl netdiag that was
killed before it could delete them; they also end by themselves at their
activeDeadlineSeconds), in every namespace unless -n is given.

Ephemeral containers cannot be removed from a pod; the netdiag ones still
running are listed. Their helper exits by itself 30 minutes after its last
capture.`,
		Example: cleanupExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.AllNamespaces = !cmd.Flags().Changed("namespace")
			if _, err := o.completeCluster(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be deleted, and delete nothing")
	return cmd
}

// Run deletes the plugin's pods and reports its live ephemeral containers.
func (o *CleanupOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ns := o.Namespace
	where := fmt.Sprintf("namespace %q", ns)
	if o.AllNamespaces {
		ns, where = metav1.NamespaceAll, "any namespace"
	}
	pods, err := o.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you need `list` on `pods` in %s (check with: kubectl auth can-i list pods%s) (error from server: %v)", where, canINamespace(o.AllNamespaces, ns), err)
	case err != nil:
		return fmt.Errorf("listing pods: %w", err)
	}
	items := pods.Items
	sort.Slice(items, func(i, j int) bool {
		return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
	})
	deleted, live := 0, 0
	for i := range items {
		p := &items[i]
		if p.Labels[kube.ManagedByLabel] == kube.ManagedByValue {
			if o.DryRun {
				fmt.Fprintf(o.Out, "would delete pod %s/%s (node %s)\n", p.Namespace, p.Name, p.Spec.NodeName)
				deleted++
				continue
			}
			err := o.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			switch {
			case apierrors.IsNotFound(err):
				continue // gone meanwhile
			case apierrors.IsForbidden(err):
				return fmt.Errorf("you need `delete` on `pods` in namespace %q to delete %s (check with: kubectl auth can-i delete pods -n %s)", p.Namespace, p.Name, p.Namespace)
			case err != nil:
				return fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			fmt.Fprintf(o.Out, "deleted pod %s/%s (node %s)\n", p.Namespace, p.Name, p.Spec.NodeName)
			deleted++
			continue
		}
		if names := liveNetdiagContainers(p); len(names) > 0 {
			fmt.Fprintf(o.Out, "pod %s/%s: netdiag container %s still running (ephemeral containers cannot be removed; the helper exits 30 minutes after its last capture)\n",
				p.Namespace, p.Name, strings.Join(names, ", "))
			live += len(names)
		}
	}
	if deleted == 0 && live == 0 {
		fmt.Fprintf(o.Out, "nothing left by kubectl netdiag in %s\n", where)
	}
	return nil
}

// liveNetdiagContainers names the pod's running netdiag ephemeral containers.
func liveNetdiagContainers(p *corev1.Pod) []string {
	var names []string
	for _, st := range p.Status.EphemeralContainerStatuses {
		if strings.HasPrefix(st.Name, kube.NamePrefix) && st.State.Running != nil {
			names = append(names, st.Name)
		}
	}
	return names
}

func canINamespace(all bool, ns string) string {
	if all {
		return " --all-namespaces"
	}
	return " -n " + ns
}
