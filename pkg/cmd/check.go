package cmd

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
)

// checkReconnectTimeout is how long a check whose stream broke waits for its
// node pod to answer again before it runs once more.
const checkReconnectTimeout = time.Minute

// CheckOptions are the flags and clients every check command shares.
type CheckOptions struct {
	clusterOptions
	genericiooptions.IOStreams

	Output string
	imageOptions
	Timeout         time.Duration
	RuntimeEndpoint string
	MaxConcurrency  int
	Yes             bool
	DryRun          bool
	// ShowTopIPs lists the conntrack check's top IPs in the table: the
	// user asked for them (node check --top; always for conntrack).
	ShowTopIPs bool

	// Set by Complete (tests preset them).
	// IsTerminal says whether a stream (o.In, o.Out, o.ErrOut) is a
	// terminal.
	IsTerminal func(stream any) bool
	// SkipPreflight skips the access and Pod Security checks (tests).
	SkipPreflight bool
	// LookupRuntimeEndpoint asks a node's kubelet for its CRI socket
	// when --runtime-endpoint is not given; nil in tests.
	LookupRuntimeEndpoint func(ctx context.Context, node string) string

	prompt *prompter
}

// prompter serialises confirmation prompts of nodes worked on
// concurrently.
type prompter struct {
	mu sync.Mutex
	in *bufio.Reader
}

func newCheckOptions(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) CheckOptions {
	return CheckOptions{
		clusterOptions: clusterOptions{configFlags: configFlags},
		IOStreams:      streams,
		Output:         "table",
		imageOptions:   newImageOptions(),
		Timeout:        time.Minute,
		MaxConcurrency: nodeops.DefaultMaxConcurrency,
		prompt:         &prompter{},
	}
}

func (o *CheckOptions) addFlags(cmd *cobra.Command, changes string) {
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", o.Output, "output format: table, json or yaml")
	o.imageOptions.addFlags(f, "helper image of the node-debug pod")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for each node-debug pod to start")
	f.StringVar(&o.RuntimeEndpoint, "runtime-endpoint", o.RuntimeEndpoint, "the node's CRI socket, e.g. unix:///run/containerd/containerd.sock (default: asked of the kubelet, else the runtime's default sockets)")
	if changes != "" {
		f.BoolVarP(&o.Yes, "yes", "y", o.Yes, "do not ask before "+changes)
		f.BoolVar(&o.DryRun, "dry-run", o.DryRun, "print what "+changes+" would run, and change nothing")
	}
}

// complete finds the namespace and the clients.
func (o *CheckOptions) complete() error {
	if o.IsTerminal == nil {
		o.IsTerminal = isTerminal
	}
	client, err := o.completeCluster()
	if err != nil {
		return err
	}
	if client != nil {
		o.LookupRuntimeEndpoint = func(ctx context.Context, node string) string {
			return nodeops.KubeletRuntimeEndpoint(ctx, client, node)
		}
	}
	return nil
}

// validate checks the shared flags; flag is the name of the flag that
// changes nodes ("--fix", "--kill"), "" when none was given.
func (o *CheckOptions) validate(flag string) error {
	if err := report.ValidFormat(o.Output); err != nil {
		return err
	}
	if err := validateHelper(&o.imageOptions, o.Timeout); err != nil {
		return err
	}
	if o.MaxConcurrency < 1 {
		return fmt.Errorf("--max-concurrency must be at least 1, got %d", o.MaxConcurrency)
	}
	if flag == "" {
		if o.Yes {
			return fmt.Errorf("--yes only goes with a flag that changes the node (--fix, --kill)")
		}
		if o.DryRun {
			return fmt.Errorf("--dry-run only goes with a flag that changes the node (--fix, --kill)")
		}
		return nil
	}
	if o.Yes || o.DryRun {
		return nil
	}
	if o.IsTerminal == nil || !o.IsTerminal(o.In) {
		return fmt.Errorf("%s needs --yes or an interactive terminal", flag)
	}
	return nil
}

// confirm asks on the terminal; --yes answers yes. Prompts of nodes
// checked concurrently come one at a time; Ctrl-C (ctx) ends the wait.
func (o *CheckOptions) confirm(ctx context.Context, question string) (bool, error) {
	if o.Yes {
		return true, nil
	}
	if o.prompt == nil {
		o.prompt = &prompter{}
	}
	o.prompt.mu.Lock()
	defer o.prompt.mu.Unlock()
	if o.prompt.in == nil {
		o.prompt.in = bufio.NewReader(o.In)
	}
	return askYesNo(ctx, o.prompt.in, o.ErrOut, question)
}

// run checks the nodes and renders the results; the error carries the
// exit code (report.Outcome).
func (o *CheckOptions) run(ctx context.Context, nodes []string, cfg nodeops.Config) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// After the first Ctrl-C (pods are being deleted), a second one ends
	// the plugin at once.
	ctx, stop := withInterrupts(ctx, nil, nil)
	defer stop()
	if !o.SkipPreflight {
		if err := kube.PreflightNodePods(ctx, o.Client, o.Namespace); err != nil {
			return err
		}
	}
	cfg.Namespace = o.Namespace
	cfg.Image = o.Image
	cfg.PullPolicy = corev1.PullPolicy(o.PullPolicy)
	cfg.PullSecrets = o.pullSecrets()
	cfg.StartTimeout = o.Timeout
	cfg.ReconnectTimeout = checkReconnectTimeout
	cfg.MaxConcurrency = o.MaxConcurrency
	cfg.RuntimeEndpoint = o.RuntimeEndpoint
	cfg.LookupRuntimeEndpoint = o.LookupRuntimeEndpoint
	deps := kube.Deps{Client: o.Client, Executor: o.Executor, NameSuffix: o.NameSuffix, ErrOut: o.ErrOut}
	results := nodeops.Run(ctx, deps, cfg, nodes)
	opts := report.Options{Color: report.UseColor(o.IsTerminal != nil && o.IsTerminal(o.Out)), TopIPs: o.ShowTopIPs}
	if err := report.Render(o.Out, o.Output, results, opts); err != nil {
		return err
	}
	return report.Outcome(results)
}

// fixer runs planned steps on a node: dry-run prints them, otherwise the
// user sees what each changes, confirms, and `netdiag-helper fix` runs them.
func (o *CheckOptions) fixer(plan func(rep *kube.HelperReport) ([]nodeops.Step, error)) *nodeops.Fixer {
	return &nodeops.Fixer{
		Plan:   plan,
		DryRun: o.DryRun,
		Show: func(node string, what, detail, command []string) {
			o.showDetail(node, detail)
			if command != nil {
				fmt.Fprintf(o.ErrOut, "dry run: on node %s, would %s:\n  %s\n", node, report.Escape(strings.Join(what, "; ")), report.Escape(strings.Join(command, " ")))
			}
		},
		Approve: func(ctx context.Context, node string, what []string) (bool, error) {
			return o.confirm(ctx, fmt.Sprintf("On node %s: %s?", node, report.Escape(strings.Join(what, "; "))))
		},
		Say: func(node, msg string) {
			fmt.Fprintf(o.ErrOut, "node %s %s\n", node, report.Escape(msg))
		},
	}
}

// showDetail prints, before any question, what the user is about to
// approve; text a process controls is escaped.
func (o *CheckOptions) showDetail(node string, detail []string) {
	if len(detail) == 0 {
		return
	}
	if o.prompt == nil {
		o.prompt = &prompter{}
	}
	o.prompt.mu.Lock()
	defer o.prompt.mu.Unlock()
	fmt.Fprintf(o.ErrOut, "On node %s:\n", node)
	for _, d := range detail {
		fmt.Fprintf(o.ErrOut, "  %s\n", report.Escape(d))
	}
}
