package cmd

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// completionShells are the shells `completion` writes a script for.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

const completionExample = `  # Complete kubectl-netdiag in bash (add the line to ~/.bashrc)
  source <(kubectl-netdiag completion bash)

  # In zsh (after compinit, e.g. in ~/.zshrc), and in fish
  source <(kubectl-netdiag completion zsh)
  kubectl-netdiag completion fish | source

  # Complete kubectl netdiag ... (kubectl 1.26+, with kubectl's own completion
  # loaded): put kubectl_complete-netdiag next to the plugin (krew: ~/.krew/bin)
  d=$(dirname "$(command -v kubectl-netdiag)")
  printf '#!/bin/sh\nexec kubectl-netdiag __complete "$@"\n' > "$d/kubectl_complete-netdiag"
  chmod +x "$d/kubectl_complete-netdiag"`

// NewCmdCompletion builds `kubectl netdiag completion`; it takes the place
// of cobra's default completion command.
func NewCmdCompletion(streams genericiooptions.IOStreams) *cobra.Command {
	noDescriptions := false
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script for bash, zsh, fish or powershell",
		Long: `Print the shell completion script for kubectl-netdiag: commands, flags, and
the pods, nodes, namespaces and kubeconfig contexts they take.

Completion works two ways, one for each way of running the plugin:

  kubectl-netdiag ...  Load the script printed here in the shell (see the
                       examples).

  kubectl netdiag ...  kubectl 1.26 and newer runs kubectl_complete-netdiag,
                       found on PATH, with the words typed after
                       "kubectl netdiag"; that executable runs
                       kubectl-netdiag __complete "$@" and kubectl passes the
                       choices on. A release's archive ships it beside the
                       plugin, but krew puts only the plugin on PATH: link
                       it once, ln -s ~/.krew/store/netdiag/VERSION/
                       kubectl_complete-netdiag ~/.krew/bin/ (or write it as
                       the last example shows).
                       It needs kubectl's own completion loaded
                       (kubectl completion bash|zsh|fish), not this script.

Pods, nodes and namespaces come from the cluster of the current context
(--kubeconfig, --context and -n apply) with one list call; a cluster that does
not answer within 5s gives no choices.`,
		Example: completionExample,
		Args: func(cmd *cobra.Command, args []string) error {
			valid := strings.Join(completionShells, ", ")
			switch {
			case len(args) == 0:
				return fmt.Errorf("completion needs a shell: one of %s, e.g. kubectl netdiag completion bash", valid)
			case len(args) > 1:
				return fmt.Errorf("completion takes one shell (one of %s), got %d arguments", valid, len(args))
			}
			for _, s := range completionShells {
				if args[0] == s {
					return nil
				}
			}
			return fmt.Errorf("unknown shell %q: completion supports %s", args[0], valid)
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return matching(completionShells, toComplete), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out, desc := cmd.Root(), streams.Out, !noDescriptions
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, desc)
			case "zsh":
				if desc {
					return root.GenZshCompletion(out)
				}
				return root.GenZshCompletionNoDesc(out)
			case "fish":
				return root.GenFishCompletion(out, desc)
			default: // powershell; Args checked the name
				if desc {
					return root.GenPowerShellCompletionWithDesc(out)
				}
				return root.GenPowerShellCompletion(out)
			}
		},
	}
	cmd.Flags().BoolVar(&noDescriptions, "no-descriptions", false, "leave out the descriptions of the choices")
	return cmd
}

// clientFactory builds the client completion lists pods, nodes and
// namespaces with. Tests inject one returning a fake clientset.
type clientFactory func(*genericclioptions.ConfigFlags) (kubernetes.Interface, error)

// completionTimeout bounds the one API call a completion makes: a shell
// waiting on <TAB> must not hang on a cluster that does not answer.
const completionTimeout = 5 * time.Second

// completionClient is the clientFactory of the real plugin: the kubeconfig
// as the flags (--kubeconfig, --context, ...) choose it.
func completionClient(f *genericclioptions.ConfigFlags) (kubernetes.Interface, error) {
	config, err := f.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	if config.Timeout == 0 || config.Timeout > completionTimeout {
		config.Timeout = completionTimeout
	}
	return kubernetes.NewForConfig(config)
}

// completer holds what the completion functions share. Errors (no
// kubeconfig, a cluster that does not answer, RBAC) give no choices, never
// output of their own: stdout carries only cobra's protocol.
type completer struct {
	configFlags *genericclioptions.ConfigFlags
	newClient   clientFactory
}

// fileFlags are the flags whose value is a file: the shell completes them.
var fileFlags = map[string]bool{
	"write": true, "kubeconfig": true, "certificate-authority": true,
	"client-certificate": true, "client-key": true,
}

// register wires the completion functions into root's command tree: the
// arguments of each command, then the flags by name, then no file names for
// every other flag that takes a value.
func (c *completer) register(root *cobra.Command) {
	args := map[string]cobra.CompletionFunc{
		"capture":    c.captureTarget,
		"node check": c.nodeTargets(false, true),
		"conntrack":  c.nodeTargets(true, false),
		"pod check":  c.podTarget(podScoped),
		"veth":       c.podTarget(podScoped),
		"stale":      c.podTarget(podScoped),
		"dns":        c.podTarget(podScoped),
		"cleanup":    cobra.NoFileCompletions,
		"version":    cobra.NoFileCompletions,
	}
	for path, fn := range args {
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil || cmd == root {
			panic(fmt.Sprintf("completion: no command %q", path))
		}
		cmd.ValidArgsFunction = fn
	}

	mustRegister(root, "namespace", c.namespaces)
	mustRegister(root, "context", c.kubeconfigNames(func(cfg *clientcmdapi.Config) []string { return keys(cfg.Contexts) }))
	mustRegister(root, "cluster", c.kubeconfigNames(func(cfg *clientcmdapi.Config) []string { return keys(cfg.Clusters) }))
	mustRegister(root, "user", c.kubeconfigNames(func(cfg *clientcmdapi.Config) []string { return keys(cfg.AuthInfos) }))
	mustRegister(root, "cache-dir", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	})

	pullPolicies := []string{string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever)}
	walk(root, func(cmd *cobra.Command) {
		local := cmd.LocalFlags()
		for name, fn := range map[string]cobra.CompletionFunc{
			"image-pull-policy": fixed(pullPolicies...),
			"checks":            completeChecks,
			"format":            fixed("pcap", "pcapng"), // capture
			"container":         c.containers,            // capture
		} {
			if local.Lookup(name) != nil {
				mustRegister(cmd, name, fn)
			}
		}
		if local.Lookup("output") != nil {
			if cmd.Name() == "version" {
				mustRegister(cmd, "output", fixed("json", "yaml"))
			} else {
				mustRegister(cmd, "output", fixed(report.Formats...))
			}
		}
	})
	walk(root, func(cmd *cobra.Command) {
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.NoOptDefVal != "" || fileFlags[f.Name] {
				return // hidden, boolean, or a file
			}
			if _, ok := cmd.GetFlagCompletionFunc(f.Name); !ok {
				mustRegister(cmd, f.Name, cobra.NoFileCompletions)
			}
		})
	})
}

func mustRegister(cmd *cobra.Command, flag string, fn cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, fn); err != nil {
		panic(err) // a flag renamed without its completion: tests catch it
	}
}

func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, sub := range cmd.Commands() {
		walk(sub, fn)
	}
}

// client builds the client and a context bounding the call made with it.
func (c *completer) client(cmd *cobra.Command) (kubernetes.Interface, context.Context, context.CancelFunc, error) {
	client, err := c.newClient(c.configFlags)
	if err != nil {
		cobra.CompDebugln("netdiag completion: no client: "+err.Error(), false)
		return nil, nil, nil, err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	return client, ctx, cancel, nil
}

// namespace is -n, else the kubeconfig context's namespace.
func (c *completer) namespace() (string, error) {
	ns, _, err := c.configFlags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// podFilter says which pods a command can work on.
type podFilter func(*corev1.Pod) bool

// livePods: a pod that has not ended (capture).
func livePods(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// podScoped: a live pod with its own network namespace (pod check, veth,
// stale refuse hostNetwork pods).
func podScoped(p *corev1.Pod) bool { return livePods(p) && !p.Spec.HostNetwork }

// podNames lists the pods of the namespace the command works in.
func (c *completer) podNames(cmd *cobra.Command, keep podFilter) ([]string, error) {
	ns, err := c.namespace()
	if err != nil {
		return nil, err
	}
	client, ctx, cancel, err := c.client(cmd)
	if err != nil {
		return nil, err
	}
	defer cancel()
	// ResourceVersion "0": the API server answers from its cache, without
	// a read from etcd; a list a few milliseconds old is good enough here.
	l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		cobra.CompDebugln("netdiag completion: listing pods: "+err.Error(), false)
		return nil, err
	}
	var names []string
	for i := range l.Items {
		if keep(&l.Items[i]) {
			names = append(names, l.Items[i].Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// nodeNames lists the nodes.
func (c *completer) nodeNames(cmd *cobra.Command) ([]string, error) {
	client, ctx, cancel, err := c.client(cmd)
	if err != nil {
		return nil, err
	}
	defer cancel()
	l, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		cobra.CompDebugln("netdiag completion: listing nodes: "+err.Error(), false)
		return nil, err
	}
	names := make([]string, 0, len(l.Items))
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names, nil
}

// kindOfWord is the target kind a word before "/" names (pod, po, pods,
// node, no, nodes), as pkg/target parses it; false for any other.
func kindOfWord(word string) (target.Kind, bool) {
	t, err := target.ParseCapture(word + "/x")
	if err != nil {
		return "", false
	}
	return t.Kind, true
}

// targetCompletions completes a target word of one kind from names. After
// a kind the user typed (pod/, po/, nodes/...) it is that kind word and a
// name; without one, bare names, and KIND/NAME as well when the word is a
// start of "KIND/"; with nothing typed, the form the command's examples use
// (prefixed: KIND/NAME, else NAME).
func targetCompletions(kind target.Kind, names []string, toComplete string, prefixed bool) []cobra.Completion {
	var out []cobra.Completion
	if word, rest, ok := strings.Cut(toComplete, "/"); ok {
		for _, n := range names {
			if strings.HasPrefix(n, rest) {
				out = append(out, word+"/"+n)
			}
		}
		return out
	}
	if toComplete == "" {
		for _, n := range names {
			if prefixed {
				n = string(kind) + "/" + n
			}
			out = append(out, n)
		}
		return out
	}
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	if strings.HasPrefix(string(kind)+"/", toComplete) {
		for _, n := range names {
			out = append(out, string(kind)+"/"+n)
		}
	}
	return out
}

// wantsKind reports whether toComplete can still become a target of kind:
// it names no kind yet, or names that one.
func wantsKind(kind target.Kind, toComplete string) bool {
	word, _, ok := strings.Cut(toComplete, "/")
	if !ok {
		return true
	}
	k, known := kindOfWord(word)
	return known && k == kind
}

// captureTarget completes capture's one argument: [pod/]NAME or node/NAME.
// With nothing typed it offers the kinds, pod/ and node/ (no call to the
// cluster); after one of them (or po/, no/, ...) the pods of the namespace
// or the nodes; other words are bare pod names, and the kinds they start.
func (c *completer) captureTarget(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	kinds := []struct {
		prefix, desc string
	}{
		{"pod/", "a pod: capture in its network namespace"},
		{"node/", "a node: capture on one of its interfaces"},
	}
	if word, _, ok := strings.Cut(toComplete, "/"); ok {
		kind, _ := kindOfWord(word)
		var names []string
		var err error
		switch kind {
		case target.KindPod:
			names, err = c.podNames(cmd, livePods)
		case target.KindNode:
			names, err = c.nodeNames(cmd)
		default:
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return targetCompletions(kind, names, toComplete, true), cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, k := range kinds {
		if strings.HasPrefix(k.prefix, toComplete) {
			out = append(out, cobra.CompletionWithDesc(k.prefix, k.desc))
		}
	}
	directive := cobra.ShellCompDirectiveNoFileComp
	if len(out) > 0 {
		// pod/ and node/ are the start of a word, not a word.
		directive |= cobra.ShellCompDirectiveNoSpace
	}
	if toComplete == "" {
		return out, directive
	}
	if names, err := c.podNames(cmd, livePods); err == nil {
		out = append(out, matching(names, toComplete)...)
	}
	return out, directive
}

// podTarget completes the one [pod/]NAME of pod check, veth and stale.
func (c *completer) podTarget(keep podFilter) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 || !wantsKind(target.KindPod, toComplete) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, err := c.podNames(cmd, keep)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return targetCompletions(target.KindPod, names, toComplete, true), cobra.ShellCompDirectiveNoFileComp
	}
}

// nodeTargets completes [node/]NAME: one for conntrack (prefixed, as its
// examples write it), several bare NODEs for node check, none once --all
// or -l chose the nodes.
func (c *completer) nodeTargets(prefixed, many bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if (!many && len(args) > 0) || !wantsKind(target.KindNode, toComplete) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		for _, f := range []string{"all", "selector"} {
			if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
		names, err := c.nodeNames(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		given := map[string]bool{}
		for _, a := range args {
			if t, err := target.ParseNode(a); err == nil {
				given[t.Name] = true
			}
		}
		var left []string
		for _, n := range names {
			if !given[n] {
				left = append(left, n)
			}
		}
		return targetCompletions(target.KindNode, left, toComplete, prefixed), cobra.ShellCompDirectiveNoFileComp
	}
}

// namespaces completes -n.
func (c *completer) namespaces(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	client, ctx, cancel, err := c.client(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	l, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		cobra.CompDebugln("netdiag completion: listing namespaces: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(l.Items))
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return matching(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// containers completes capture's -c with the containers of the pod named
// by the argument.
func (c *completer) containers(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) != 1 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	t, err := target.ParsePod(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ns, err := c.namespace()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	client, ctx, cancel, err := c.client(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	pod, err := client.CoreV1().Pods(ns).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		cobra.CompDebugln("netdiag completion: reading pod: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, ct := range pod.Spec.Containers {
		names = append(names, ct.Name)
	}
	return matching(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// kubeconfigNames completes --context, --cluster and --user from the
// kubeconfig files (--kubeconfig, else $KUBECONFIG or ~/.kube/config).
func (c *completer) kubeconfigNames(names func(*clientcmdapi.Config) []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cfg, err := c.configFlags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return matching(names(&cfg), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeChecks completes --checks, a comma-separated list: the checks
// not named yet, after the ones that are.
func completeChecks(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	done, last := "", toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	named := map[string]bool{}
	for _, c := range strings.Split(done, ",") {
		named[strings.TrimSpace(c)] = true
	}
	var out []cobra.Completion
	for _, c := range protocol.CheckNames() {
		if !named[c] && strings.HasPrefix(c, last) {
			out = append(out, done+c)
		}
	}
	// No space: another ,CHECK may follow.
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// fixed completes a flag from a fixed list of values.
func fixed(values ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return matching(values, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// matching are the values that start with prefix.
func matching(values []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
