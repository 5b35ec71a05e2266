package cmd

import (
	"bufio"
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
)

const cleanupExample = `  # Delete node-debug pods left behind in every namespace, list netdiag containers
  kubectl netdiag cleanup

  # Only in namespace shop, and only show what would be deleted
  kubectl netdiag cleanup -n shop --dry-run

  # Also delete node-debug pods still in use (stops those captures and checks)
  kubectl netdiag cleanup --all --yes`

// CleanupOptions drives `kubectl netdiag cleanup`.
type CleanupOptions struct {
	clusterOptions
	genericiooptions.IOStreams

	DryRun bool
	// All also deletes live node-debug pods (another run's), after a
	// confirmation unless Yes.
	All bool
	Yes bool
	// AllNamespaces is true unless -n was given.
	AllNamespaces bool
	// IsTerminal says whether o.In is a terminal (tests preset it).
	IsTerminal func(stream any) bool
}

// NewCmdCleanup builds `kubectl netdiag cleanup`.
func NewCmdCleanup(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CleanupOptions{clusterOptions: clusterOptions{configFlags: configFlags}, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "cleanup [-n NAMESPACE] [--dry-run] [--all [--yes]]",
		Short: "Delete node-debug pods that runs left behind, and list every netdiag ephemeral container",
		Long: `Delete the node-debug pods the plugin left behind, in every namespace unless
-n is given: pods that have ended, or that no kubectl netdiag uses any more
(one killed before it could delete its pod; such pods also end by themselves
about a minute after their plugin is gone). A node-debug pod that is Ready
runs a capture or check in progress, maybe another user's: it is listed and
left alone; --all deletes those too, after a confirmation (--yes to skip it).

Ephemeral containers cannot be removed from a pod: every netdiag one is
listed with its state. A running one's helper exits by itself 30 minutes
after its last capture; a waiting or terminated one uses no resources.`,
		Example: cleanupExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.AllNamespaces = !cmd.Flags().Changed("namespace")
			if err := o.Validate(); err != nil {
				return err
			}
			if _, err := o.completeCluster(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be deleted, and delete nothing")
	cmd.Flags().BoolVar(&o.All, "all", false, "also delete node-debug pods still in use (stops the captures and checks using them)")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "with --all: do not ask before deleting node-debug pods in use")
	return cmd
}

// Validate checks the flags before anything is read.
func (o *CleanupOptions) Validate() error {
	if o.IsTerminal == nil {
		o.IsTerminal = isTerminal
	}
	if o.Yes && !o.All {
		return fmt.Errorf("--yes only goes with --all")
	}
	if o.All && !o.Yes && !o.DryRun && !o.IsTerminal(o.In) {
		return fmt.Errorf("--all deletes node-debug pods that may be in use and asks first: add --yes, or run it on an interactive terminal")
	}
	return nil
}

// nodePod is one node-debug pod and what cleanup makes of it.
type nodePod struct {
	pod  *corev1.Pod
	live bool
	why  string
}

// Run deletes the plugin's pods left behind and reports its ephemeral
// containers.
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
	var leftover, live []nodePod
	containers := 0
	for i := range items {
		p := &items[i]
		if p.Labels[kube.ManagedByLabel] == kube.ManagedByValue {
			isLive, why := nodePodState(p)
			if isLive {
				live = append(live, nodePod{p, true, why})
			} else {
				leftover = append(leftover, nodePod{p, false, why})
			}
			continue
		}
		for _, line := range netdiagContainers(p) {
			fmt.Fprintf(o.Out, "pod %s/%s: %s\n", p.Namespace, p.Name, line)
			containers++
		}
	}
	if containers > 0 {
		fmt.Fprintf(o.Out, "(ephemeral containers cannot be removed from a pod; a waiting or terminated one uses no resources)\n")
	}
	for _, np := range leftover {
		if err := o.delete(ctx, np); err != nil {
			return err
		}
	}
	deleteLive := false
	if o.All && len(live) > 0 && !o.DryRun {
		deleteLive = o.Yes
		if !o.Yes {
			for _, np := range live {
				fmt.Fprintf(o.ErrOut, "  %s/%s (node %s): %s\n", np.pod.Namespace, np.pod.Name, np.pod.Spec.NodeName, np.why)
			}
			deleteLive, err = askYesNo(ctx, bufio.NewReader(o.In), o.ErrOut, fmt.Sprintf("Delete these %d node-debug pods in use? The captures and checks using them stop.", len(live)))
			if err != nil {
				return err
			}
		}
	}
	for _, np := range live {
		if (o.All && o.DryRun) || deleteLive {
			if err := o.delete(ctx, np); err != nil {
				return err
			}
			continue
		}
		hint := "; --all deletes it too"
		if o.All {
			hint = ""
		}
		fmt.Fprintf(o.Out, "left pod %s/%s (node %s): live, %s (a capture or check in progress, maybe another user's%s)\n",
			np.pod.Namespace, np.pod.Name, np.pod.Spec.NodeName, np.why, hint)
	}
	if len(leftover) == 0 && len(live) == 0 && containers == 0 {
		fmt.Fprintf(o.Out, "nothing left by kubectl netdiag in %s\n", where)
	}
	return nil
}

func (o *CleanupOptions) delete(ctx context.Context, np nodePod) error {
	p := np.pod
	if o.DryRun {
		fmt.Fprintf(o.Out, "would delete pod %s/%s (node %s): %s\n", p.Namespace, p.Name, p.Spec.NodeName, np.why)
		return nil
	}
	err := o.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	switch {
	case apierrors.IsNotFound(err):
		return nil // gone meanwhile
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you need `delete` on `pods` in namespace %q to delete %s (check with: kubectl auth can-i delete pods -n %s)", p.Namespace, p.Name, p.Namespace)
	case err != nil:
		return fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	fmt.Fprintf(o.Out, "deleted pod %s/%s (node %s): %s\n", p.Namespace, p.Name, p.Spec.NodeName, np.why)
	return nil
}

// nodePodState says whether a node-debug pod is live (a plugin uses it:
// its readiness probe, `netdiag-helper active`, sees a keepalive, capture,
// check or fix running in it), and why in words.
func nodePodState(p *corev1.Pod) (bool, string) {
	if p.DeletionTimestamp != nil {
		return false, "being deleted"
	}
	var st *corev1.ContainerStatus
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == kube.NodeContainerName {
			st = &p.Status.ContainerStatuses[i]
		}
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		why := "ended (" + string(p.Status.Phase)
		if p.Status.Reason != "" {
			why += ": " + p.Status.Reason
		}
		return false, why + ")"
	case corev1.PodRunning:
		if st == nil || st.State.Running == nil {
			return false, "its helper is not running any more"
		}
		if st.Ready {
			return true, "running its helper"
		}
		return false, "idle: no plugin uses it any more (it ends by itself within a minute)"
	case corev1.PodPending:
		if st != nil && st.State.Waiting != nil && st.State.Waiting.Reason != "" {
			return false, "its helper is not running (" + st.State.Waiting.Reason + ")"
		}
		return false, "its helper is not running (Pending)"
	}
	return false, fmt.Sprintf("its helper is not running (phase %q)", orUnknown(string(p.Status.Phase)))
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// netdiagContainers describes each netdiag ephemeral container of the pod,
// whatever its state.
func netdiagContainers(p *corev1.Pod) []string {
	statuses := map[string]corev1.ContainerStatus{}
	for _, st := range p.Status.EphemeralContainerStatuses {
		statuses[st.Name] = st
	}
	var out []string
	for i := range p.Spec.EphemeralContainers {
		ec := &p.Spec.EphemeralContainers[i]
		if !kube.IsNetdiagContainer(ec) {
			continue
		}
		st, ok := statuses[ec.Name]
		var state string
		switch {
		case !ok:
			state = "waiting (not yet reported by the kubelet)"
		case st.State.Running != nil:
			state = fmt.Sprintf("running (its helper exits %s after its last capture)", kube.IdleTimeout)
		case st.State.Waiting != nil:
			state = "waiting (" + orDefault(st.State.Waiting.Reason, "no reason given") + ")"
		case st.State.Terminated != nil:
			state = "terminated"
		default:
			state = "state unknown"
		}
		out = append(out, fmt.Sprintf("netdiag container %s (image %s): %s", ec.Name, ec.Image, state))
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func canINamespace(all bool, ns string) string {
	if all {
		return " --all-namespaces"
	}
	return " -n " + ns
}
