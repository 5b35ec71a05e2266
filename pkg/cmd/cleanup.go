package cmd

import (
	"bufio"
	"context"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
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

// Run deletes the plugin's pods left behind and reports its ephemeral
// containers.
func (o *CleanupOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ns := o.Namespace
	if o.AllNamespaces {
		ns = metav1.NamespaceAll
	}
	l, err := nodeops.FindLeftovers(ctx, o.Client, ns)
	if err != nil {
		return err
	}
	for _, c := range l.Containers {
		fmt.Fprintf(o.Out, "pod %s/%s: %s\n", c.Namespace, c.Pod, c.Text)
	}
	if len(l.Containers) > 0 {
		fmt.Fprintf(o.Out, "(ephemeral containers cannot be removed from a pod; a waiting or terminated one uses no resources)\n")
	}
	for _, np := range l.Ended {
		if err := o.delete(ctx, np); err != nil {
			return err
		}
	}
	deleteLive := false
	if o.All && len(l.Live) > 0 && !o.DryRun {
		deleteLive = o.Yes
		if !o.Yes {
			for _, np := range l.Live {
				fmt.Fprintf(o.ErrOut, "  %s/%s (node %s): %s\n", np.Pod.Namespace, np.Pod.Name, np.Pod.Spec.NodeName, np.Why)
			}
			deleteLive, err = askYesNo(ctx, bufio.NewReader(o.In), o.ErrOut, fmt.Sprintf("Delete these %d node-debug pods in use? The captures and checks using them stop.", len(l.Live)))
			if err != nil {
				return err
			}
		}
	}
	for _, np := range l.Live {
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
			np.Pod.Namespace, np.Pod.Name, np.Pod.Spec.NodeName, np.Why, hint)
	}
	if len(l.Ended) == 0 && len(l.Live) == 0 && len(l.Containers) == 0 {
		fmt.Fprintf(o.Out, "nothing left by kubectl netdiag in %s\n", l.Where)
	}
	return nil
}

func (o *CleanupOptions) delete(ctx context.Context, np nodeops.NodePod) error {
	p := np.Pod
	if o.DryRun {
		fmt.Fprintf(o.Out, "would delete pod %s/%s (node %s): %s\n", p.Namespace, p.Name, p.Spec.NodeName, np.Why)
		return nil
	}
	deleted, err := nodeops.DeleteNodePod(ctx, o.Client, np)
	if err != nil || !deleted {
		return err
	}
	fmt.Fprintf(o.Out, "deleted pod %s/%s (node %s): %s\n", p.Namespace, p.Name, p.Spec.NodeName, np.Why)
	return nil
}
