package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// PodCheckOptions drives the pod-scoped commands: `pod check`, `veth` and
// `stale`. They differ in the checks they run and in --kill.
type PodCheckOptions struct {
	CheckOptions

	// Command is "pod check", "veth" or "stale" (for messages).
	Command string
	// FixedChecks, when set, are the only checks the command runs.
	FixedChecks []string
	Checks      []string
	Port        int
	Kill        bool

	Target target.Target
}

// NewPodCheckOptions returns the defaults for one of the pod commands.
func NewPodCheckOptions(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, command string, fixed ...string) *PodCheckOptions {
	return &PodCheckOptions{CheckOptions: newCheckOptions(configFlags, streams), Command: command, FixedChecks: fixed}
}

// NewCmdPod builds `kubectl netdiag pod`.
func NewCmdPod(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{Use: "pod", Short: "Diagnose one pod's networking on its node"}
	o := NewPodCheckOptions(configFlags, streams, "pod check")
	check := &cobra.Command{
		Use:   "check [pod/]NAME",
		Short: "Run the node checks scoped to one pod: its veth, ARP entry, MTU path, stale port holders",
		Long: `Run the node checks scoped to one pod, on the pod's node, through a short-lived
node-debug pod: the pod's host-side veth, its ARP entry, the MTU path
(pod eth0 → veth → bridge → uplink), the bridge, conntrack, and stale
processes left in the pod's cgroup.

The stale check names the holder of one port: --port, else the first
containerPort the pod declares. Exit code: 0 when nothing failed, 3 when a
check reported fail, 1 on error.`,
		Example: `  # Everything about pod web-0's networking on its node
  kubectl netdiag pod check pod/web-0 -n shop

  # Who holds port 6379 in redis-0's cgroup, as YAML
  kubectl netdiag pod check redis-0 --port 6379 -o yaml`,
		RunE: o.runE,
	}
	o.addFlags(check, "")
	check.Flags().StringSliceVar(&o.Checks, "checks", o.Checks, protocol.ChecksFlagUsage("all"))
	check.Flags().IntVar(&o.Port, "port", o.Port, "port whose holder the stale check names (default: the pod's first containerPort)")
	cmd.AddCommand(check)
	return cmd
}

// NewCmdVeth builds `kubectl netdiag veth`.
func NewCmdVeth(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewPodCheckOptions(configFlags, streams, "veth", "veth")
	cmd := &cobra.Command{
		Use:   "veth [pod/]NAME",
		Short: "Show a pod's node, IP, host-side veth, ifindex, MTU and bridge",
		Long: `Find a pod's host-side veth on its node (through a short-lived node-debug pod):
the node, the pod IP, the veth's name and ifindex, its MTU and its bridge.`,
		Example: `  kubectl netdiag veth pod/web-0 -n shop
  kubectl netdiag veth web-0 -o json`,
		RunE: o.runE,
	}
	o.addFlags(cmd, "")
	return cmd
}

// NewCmdStale builds `kubectl netdiag stale`.
func NewCmdStale(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewPodCheckOptions(configFlags, streams, "stale", "stale")
	cmd := &cobra.Command{
		Use:   "stale [pod/]NAME [--port N] [--kill]",
		Short: "Find processes left in a pod's cgroup by containers nobody knows, and what port they hold",
		Long: `Find stale processes of a pod: processes whose cgroup names the pod but whose
container the node's container runtime (CRI) does not know (the cause of
"bind: address already in use" in a crash-looping container). With --port,
the one holding that port is a fail. Only the runtime can tell a stale
container from one that just restarted: when no runtime socket answers
(containerd, CRI-O, k3s/RKE2, microk8s, cri-dockerd; or --runtime-endpoint),
the check warns and calls nothing stale.

--kill ends them (SIGTERM, then SIGKILL after a grace period). It first shows
each process (command line, container, pod, port, start time) and asks; --yes
does not ask, --dry-run only shows what would run. On the node, the helper
holds each process by a pidfd, checks again that it is a stale process of this
pod started at the time you were shown, and signals only then: a PID reused
meanwhile is never touched. Without a reachable runtime, --kill refuses.`,
		Example: `  # What holds port 6379 in redis-0's cgroup?
  kubectl netdiag stale pod/redis-0 --port 6379

  # End the stale processes without asking
  kubectl netdiag stale pod/redis-0 --port 6379 --kill --yes`,
		RunE: o.runE,
	}
	o.addFlags(cmd, "--kill ends processes")
	cmd.Flags().IntVar(&o.Port, "port", o.Port, "port whose holder is reported (default: the pod's first containerPort)")
	cmd.Flags().BoolVar(&o.Kill, "kill", o.Kill, "end the stale processes (SIGTERM, then SIGKILL)")
	return cmd
}

func (o *PodCheckOptions) runE(cmd *cobra.Command, args []string) error {
	if err := o.Complete(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run(cmd.Context())
}

// Complete parses the pod and finds the namespace and clients.
func (o *PodCheckOptions) Complete(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s needs exactly one pod, e.g. kubectl netdiag %s pod/web-0 (got %d arguments)", o.Command, o.Command, len(args))
	}
	t, err := target.ParsePod(args[0])
	if err != nil {
		return err
	}
	o.Target = t
	return o.complete()
}

// Validate checks the flags.
func (o *PodCheckOptions) Validate() error {
	checks, err := protocol.ParseCheckList(o.Checks)
	if err != nil {
		return err
	}
	o.Checks = checks
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("--port must be between 1 and 65535, got %d", o.Port)
	}
	flag := ""
	if o.Kill {
		flag = "--kill"
	}
	return o.validate(flag)
}

// Run checks the pod on its node.
func (o *PodCheckOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	scope, err := nodeops.ResolvePod(ctx, o.Client, o.Namespace, o.Target.Name, o.Port)
	if err != nil {
		return err
	}
	req := scope.Check
	req.Checks = o.Checks
	if len(o.FixedChecks) > 0 {
		req.Checks = o.FixedChecks
	}
	nodeops.FillDNS(ctx, o.Client, scope.Node, &req)
	cfg := nodeops.Config{Check: req, Pods: scope.OnlyPod}
	if o.Kill {
		cfg.Fix = o.fixer(nodeops.PlanKills)
	}
	return o.run(ctx, []string{scope.Node}, cfg)
}

// ConntrackOptions drives `kubectl netdiag conntrack`.
type ConntrackOptions struct {
	CheckOptions
	Top    int
	Fix    bool
	Target target.Target
}

// NewCmdConntrack builds `kubectl netdiag conntrack`.
func NewCmdConntrack(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ConntrackOptions{CheckOptions: newCheckOptions(configFlags, streams), Top: 10}
	cmd := &cobra.Command{
		Use:   "conntrack [node/]NAME [--top N] [--fix]",
		Short: "Show a node's conntrack table fill, drops, and the pod IPs with the most entries",
		Long: `Show a node's conntrack table: nf_conntrack_count against nf_conntrack_max,
"table full, dropping packet" in the kernel log, per-CPU drops, the
recommended max (MemTotal/32) and the pod IPs with the most entries.

--fix raises net.netfilter.nf_conntrack_max to the recommended value, now and
persisted in /etc/sysctl.d/90-netdiag-conntrack.conf on the node. It asks
first; --yes does not ask, --dry-run only shows what would run.`,
		Example: `  kubectl netdiag conntrack node/gke-pool-1-abcd --top 20
  kubectl netdiag conntrack node/gke-pool-1-abcd --fix --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.addFlags(cmd, "--fix changes the node")
	cmd.Flags().IntVar(&o.Top, "top", o.Top, "how many pod IPs to list by conntrack entries (0: skip the table dump)")
	cmd.Flags().BoolVar(&o.Fix, "fix", o.Fix, "raise nf_conntrack_max to the recommended value (now and persisted)")
	return cmd
}

// Complete parses the node and finds the namespace and clients.
func (o *ConntrackOptions) Complete(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("conntrack needs exactly one node, e.g. kubectl netdiag conntrack node/NAME (got %d arguments)", len(args))
	}
	t, err := target.ParseNode(args[0])
	if err != nil {
		return err
	}
	o.Target = t
	return o.complete()
}

// Validate checks the flags.
func (o *ConntrackOptions) Validate() error {
	if o.Top < 0 {
		return fmt.Errorf("--top must not be negative, got %d", o.Top)
	}
	flag := ""
	if o.Fix {
		flag = "--fix"
	}
	return o.validate(flag)
}

// Run looks at the node's conntrack table.
func (o *ConntrackOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	nodes, err := nodeops.NodeNames(ctx, o.Client, []string{o.Target.String()}, "")
	if err != nil {
		return err
	}
	// The top IPs are what this command is for: the table lists them.
	o.ShowTopIPs = o.Top > 0
	req := protocol.DefaultCheckRequest()
	req.Checks = []string{protocol.CheckConntrack}
	req.Top = o.Top
	cfg := nodeops.Config{Check: req, Writable: o.Fix && !o.DryRun}
	if o.Fix {
		cfg.Fix = o.fixer(nodeops.PlanNodeFixes(false, true))
	}
	return o.run(ctx, nodes, cfg)
}
