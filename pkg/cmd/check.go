package cmd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodecheck"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// knownChecks are the helper's checks (pkg/checks.AllChecks; the plugin
// does not import the helper's engine).
var knownChecks = []string{"bridge", "veth", "arp", "mtu", "conntrack", "stale"}

// ConntrackPersistDir is where --fix persists nf_conntrack_max on the node:
// the one node directory the node pod mounts writable.
const ConntrackPersistDir = kube.SysctlDir

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
		MaxConcurrency: nodecheck.DefaultMaxConcurrency,
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
		o.IsTerminal = streamIsTerminal
	}
	client, err := o.completeCluster()
	if err != nil {
		return err
	}
	if client != nil {
		o.LookupRuntimeEndpoint = func(ctx context.Context, node string) string {
			return nodecheck.KubeletRuntimeEndpoint(ctx, client, node)
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
func (o *CheckOptions) run(ctx context.Context, nodes []string, cfg nodecheck.Config) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first Ctrl-C (pods are being deleted), a second one
		// ends the plugin at once.
		<-ctx.Done()
		stop()
	}()
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
	cfg.MaxConcurrency = o.MaxConcurrency
	cfg.RuntimeEndpoint = o.RuntimeEndpoint
	cfg.LookupRuntimeEndpoint = o.LookupRuntimeEndpoint
	deps := kube.NodeDeps{Client: o.Client, Executor: o.Executor, NameSuffix: o.NameSuffix, StartTimeout: o.Timeout}
	results := nodecheck.Run(ctx, deps, cfg, nodes)
	opts := report.Options{Color: report.UseColor(o.IsTerminal != nil && o.IsTerminal(o.Out)), TopIPs: o.ShowTopIPs}
	if err := report.Render(o.Out, o.Output, results, opts); err != nil {
		return err
	}
	return report.Outcome(results)
}

// fixStep is one change a fix makes: what to tell the user, what the user
// must see before approving it (Detail lines, shown escaped) and the
// helper's arguments after `fix`, built from typed values as --flag=value.
// A step with Refuse set is not run: the fix refuses it, saying why.
type fixStep struct {
	What   string
	Detail []string
	Args   []string
	Refuse string
}

// flagArg is one helper argument --name=value: a value is never taken for
// a flag, whatever it starts with.
func flagArg(name, value string) string {
	return "--" + name + "=" + value
}

// fixer runs planned steps on a node: dry-run prints them, otherwise the
// user confirms and `netdiag-helper fix` runs them.
func (o *CheckOptions) fixer(plan func(rep *kube.HelperReport) ([]fixStep, error)) func(ctx context.Context, node string, s nodecheck.Session, rep *kube.HelperReport, checkArgs []string, stdin []byte) ([]protocol.Action, bool, error) {
	return func(ctx context.Context, node string, s nodecheck.Session, rep *kube.HelperReport, checkArgs []string, stdin []byte) ([]protocol.Action, bool, error) {
		steps, err := plan(rep)
		if err != nil {
			return nil, false, err
		}
		if len(steps) == 0 {
			return nil, false, nil
		}
		for _, st := range steps {
			if st.Refuse != "" {
				fmt.Fprintf(o.ErrOut, "node %s left unchanged: %s\n", node, report.Escape(st.Refuse))
				return []protocol.Action{{Type: protocol.TypeAction, Action: st.What, Target: node, Result: protocol.ActionRefused, Message: st.Refuse}}, false, fmt.Errorf("%s", st.Refuse)
			}
		}
		// The fix's own arguments, then the check's: the helper parses
		// them with one flag set, so neither can be taken for the other.
		args := []string{"fix"}
		var what, detail []string
		for _, st := range steps {
			args = append(args, st.Args...)
			what = append(what, st.What)
			detail = append(detail, st.Detail...)
		}
		args = append(args, checkArgs...)
		o.showDetail(node, detail)
		if o.DryRun {
			fmt.Fprintf(o.ErrOut, "dry run: on node %s, would %s:\n  %s %s\n", node, report.Escape(strings.Join(what, "; ")), kube.HelperPath, report.Escape(strings.Join(args, " ")))
			return nil, false, nil
		}
		ok, err := o.confirm(ctx, fmt.Sprintf("On node %s: %s?", node, report.Escape(strings.Join(what, "; "))))
		if err != nil {
			return nil, false, err
		}
		if !ok {
			fmt.Fprintf(o.ErrOut, "node %s left unchanged\n", node)
			return []protocol.Action{{Type: protocol.TypeAction, Action: "confirm", Target: node, Result: protocol.ActionSkipped, Message: "declined: nothing changed"}}, false, nil
		}
		frep, err := s.Exec(ctx, args, stdin)
		var actions []protocol.Action
		if frep != nil {
			actions = frep.Actions
		}
		if err != nil {
			return actions, false, fmt.Errorf("fixing: %w", err)
		}
		var bad []string
		for _, a := range actions {
			if a.Result == protocol.ActionFailed || a.Result == protocol.ActionRefused {
				bad = append(bad, fmt.Sprintf("%s %s %s: %s", a.Action, a.Target, a.Result, a.Message))
			}
		}
		if len(bad) > 0 {
			return actions, true, fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		return actions, true, nil
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

// planNodeFixes: a down bridge comes up; nf_conntrack_max is raised to the
// recommended value when the table is warn/fail and below it.
func planNodeFixes(rep *kube.HelperReport, bridge, conntrack bool) ([]fixStep, error) {
	var steps []fixStep
	for _, f := range rep.Findings {
		switch {
		case bridge && f.Check == "bridge" && f.Severity == protocol.SeverityFail:
			var d protocol.BridgeData
			if err := f.DecodeData(&d); err != nil {
				return nil, err
			}
			if d.AdminUp != nil && !*d.AdminUp && d.Bridge != "" {
				steps = append(steps, fixStep{What: "bring bridge " + d.Bridge + " up", Args: []string{flagArg("bridge-up", d.Bridge)}})
			}
		case conntrack && f.Check == "conntrack" && (f.Severity == protocol.SeverityFail || f.Severity == protocol.SeverityWarn):
			var d protocol.ConntrackData
			if err := f.DecodeData(&d); err != nil {
				return nil, err
			}
			if d.Max != nil && d.RecommendedMax > *d.Max {
				n := strconv.FormatUint(d.RecommendedMax, 10)
				steps = append(steps, fixStep{
					What: fmt.Sprintf("raise net.netfilter.nf_conntrack_max from %d to %d (now, and in %s/90-netdiag-conntrack.conf)", *d.Max, d.RecommendedMax, ConntrackPersistDir),
					Args: []string{flagArg("conntrack-max", n), flagArg("persist-dir", ConntrackPersistDir)},
				})
			}
		}
	}
	return steps, nil
}

// planKills: the stale processes the check found, each shown with what
// identifies it (command line, container, pod, port, start time) and
// passed to the helper with the start time the user saw, so that only
// that process is signalled. Without the runtime, nothing can be called
// stale: the kill is refused.
func planKills(rep *kube.HelperReport) ([]fixStep, error) {
	var pids, approved, detail []string
	for _, f := range rep.Findings {
		if f.Check != "stale" || (f.Severity != protocol.SeverityFail && f.Severity != protocol.SeverityWarn) {
			continue
		}
		var d protocol.StaleData
		if err := f.DecodeData(&d); err != nil {
			return nil, err
		}
		if d.RuntimeReachable != nil && !*d.RuntimeReachable {
			return []fixStep{{What: "kill", Refuse: fmt.Sprintf("--kill refused on pod %s: %s; pass --runtime-endpoint with the node's CRI socket", f.Subject, staleRuntimeUnreachable)}}, nil
		}
		if d.PID <= 0 {
			continue
		}
		if d.StartTicks == 0 {
			return []fixStep{{What: "kill", Refuse: fmt.Sprintf("--kill refused: the helper did not report when process %d started, so it cannot be told from a process that reused its PID (use a helper image of the plugin's version)", d.PID)}}, nil
		}
		p := strconv.Itoa(d.PID)
		pids = append(pids, p)
		approved = append(approved, p+":"+strconv.FormatUint(d.StartTicks, 10))
		detail = append(detail, describeStale(f.Subject, d)...)
	}
	if len(pids) == 0 {
		return nil, nil
	}
	return []fixStep{{
		What:   fmt.Sprintf("end stale %s %s (SIGTERM, then SIGKILL)", pluralWord(len(pids), "process", "processes"), strings.Join(pids, ", ")),
		Detail: detail,
		Args:   []string{flagArg("kill", strings.Join(approved, ","))},
	}}, nil
}

// staleRuntimeUnreachable is the helper's checks.RuntimeUnreachable (the
// plugin does not import the helper's engine).
const staleRuntimeUnreachable = "runtime not reachable: cannot tell stale from restarted"

// describeStale is what the user sees of one stale process before the
// question. The caller escapes it.
func describeStale(subject string, d protocol.StaleData) []string {
	or := func(s string) string {
		if s == "" {
			return "?"
		}
		return s
	}
	pod := d.Pod
	if pod == "" {
		pod = subject
	}
	port := "none"
	if d.Port > 0 {
		port = fmt.Sprintf("%s/%d", or(d.Protocol), d.Port)
	} else if len(d.Listeners) > 0 {
		var ps []string
		for _, l := range d.Listeners {
			ps = append(ps, fmt.Sprintf("%s/%d", l.Protocol, l.Port))
		}
		port = strings.Join(ps, ", ")
	}
	started := or(d.Started)
	if d.StartTicks > 0 {
		started += fmt.Sprintf(" (tick %d after boot)", d.StartTicks)
	}
	return []string{
		fmt.Sprintf("PID %d: %s", d.PID, strconv.Quote(d.Cmdline)),
		fmt.Sprintf("    container %s of pod %s (uid %s)", or(d.ContainerID), pod, or(d.PodUID)),
		fmt.Sprintf("    holds port %s; started %s", port, started),
	}
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}


func validChecks(list []string) ([]string, error) {
	var out []string
	for _, c := range list {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		ok := false
		for _, k := range knownChecks {
			ok = ok || k == c
		}
		if !ok {
			return nil, fmt.Errorf("--checks: unknown check %q (known: %s)", c, strings.Join(knownChecks, ","))
		}
		out = append(out, c)
	}
	return out, nil
}

// nodeNames resolves NODE arguments, --all or -l into node names.
func nodeNames(ctx context.Context, client kubernetes.Interface, args []string, all bool, selector string) ([]string, error) {
	if len(args) > 0 {
		seen := map[string]bool{}
		var out []string
		for _, a := range args {
			t, err := target.ParseNode(a)
			if err != nil {
				return nil, err
			}
			if _, err := client.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{}); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("node %q not found (list them with: kubectl get nodes)", t.Name)
				}
				return nil, fmt.Errorf("reading node %s: %w", t.Name, err)
			}
			if !seen[t.Name] {
				seen[t.Name] = true
				out = append(out, t.Name)
			}
		}
		return out, nil
	}
	l, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	if len(out) == 0 {
		if selector != "" {
			return nil, fmt.Errorf("no node matches -l %s", selector)
		}
		return nil, fmt.Errorf("the cluster has no nodes")
	}
	return out, nil
}

// podScope is a pod-scoped run: the pod, its node and the helper arguments
// that name it.
type podScope struct {
	Pod  *corev1.Pod
	Node string
	Args []string
}

// resolvePod reads the pod and builds the arguments that scope the checks
// to it; port 0 leaves --port out.
func resolvePod(ctx context.Context, client kubernetes.Interface, namespace, name string, port int) (*podScope, error) {
	pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("pod %q not found in namespace %q", name, namespace)
		}
		return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	if pod.Spec.NodeName == "" {
		return nil, fmt.Errorf("pod %s/%s is not scheduled on a node yet", namespace, name)
	}
	if pod.Spec.HostNetwork {
		return nil, fmt.Errorf("pod %s/%s uses the node's network (hostNetwork): check its node instead: kubectl netdiag node check %s", namespace, name, pod.Spec.NodeName)
	}
	pi := nodecheck.PodInfoOf(pod)
	args := []string{"--pod-uid", string(pod.UID)}
	if pi.IP != "" {
		args = append(args, "--pod-ip", pi.IP)
	}
	if len(pi.Containers) > 0 {
		args = append(args, "--known-containers", strings.Join(pi.Containers, ","))
	}
	if port > 0 {
		args = append(args, "--port", strconv.Itoa(port))
	}
	return &podScope{Pod: pod, Node: pod.Spec.NodeName, Args: args}, nil
}

// firstContainerPort is the first port the pod's containers declare, 0 if
// none.
func firstContainerPort(pod *corev1.Pod) int {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.ContainerPort > 0 {
				return int(p.ContainerPort)
			}
		}
	}
	return 0
}

// onlyPod makes the helper look at the one pod.
func onlyPod(s *podScope) func(string) ([]nodecheck.PodInfo, bool) {
	return func(string) ([]nodecheck.PodInfo, bool) {
		return []nodecheck.PodInfo{nodecheck.PodInfoOf(s.Pod)}, true
	}
}

func streamIsTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
