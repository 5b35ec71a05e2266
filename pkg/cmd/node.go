package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

var nodeCheckExample = `  # Every check on one node: bridge, veths, ARP, MTU, conntrack, stale processes
  kubectl netdiag node check gke-pool-1-abcd

  # All nodes of a pool, 10 at a time, as JSON
  kubectl netdiag node check -l cloud.google.com/gke-nodepool=pool-1 --max-concurrency 10 -o json

  # Only conntrack and the bridge, on every node
  kubectl netdiag node check --all --checks conntrack,bridge

  # Bring a down bridge up and raise nf_conntrack_max where needed (asks first)
  kubectl netdiag node check gke-pool-1-abcd --fix

  # Show what --fix would change, without changing anything
  kubectl netdiag node check gke-pool-1-abcd --fix --dry-run`

// NewCmdNode builds `kubectl netdiag node`.
func NewCmdNode(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Diagnose nodes",
	}
	cmd.AddCommand(NewCmdNodeCheck(configFlags, streams))
	return cmd
}

// NodeCheckOptions drives `kubectl netdiag node check`.
type NodeCheckOptions struct {
	CheckOptions

	All         bool
	Selector    string
	Checks      []string
	Fix         bool
	Bridge      string
	ExpectedMTU int
	Top         int

	Args []string
}

// NewNodeCheckOptions returns the defaults.
func NewNodeCheckOptions(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *NodeCheckOptions {
	return &NodeCheckOptions{CheckOptions: newCheckOptions(configFlags, streams), Top: 10}
}

// NewCmdNodeCheck builds `kubectl netdiag node check`.
func NewCmdNodeCheck(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewNodeCheckOptions(configFlags, streams)
	cmd := &cobra.Command{
		Use:   "check NODE... | --all | -l SELECTOR",
		Short: "Check a node's bridge, veths, ARP, MTU, conntrack and stale processes",
		Long: `Check nodes the way the networking runbook does, through the API alone.

On each node a short-lived node-debug pod (privileged, host network and PID
namespaces, the host's / read-only at /host, deleted at the end) runs the
netdiag helper's checks: bridge, veth, arp, mtu, conntrack and stale. Nodes are
checked concurrently (--max-concurrency). Exit code: 0 when nothing failed,
3 when a check reported fail, 1 on error.

The pod is created in the current namespace (-n); a namespace whose Pod
Security level is baseline or restricted refuses it.

--fix brings a down bridge up and raises net.netfilter.nf_conntrack_max to the
recommended value (MemTotal/32; set now and persisted in
/etc/sysctl.d/90-netdiag-conntrack.conf on the node). It asks first; --yes
does not ask, --dry-run only shows what would run.`,
		Example: nodeCheckExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A flag that asks for data shows it: --top lists the
			// conntrack top IPs in the table too.
			o.ShowTopIPs = cmd.Flags().Changed("top")
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// AddFlags adds the node check flags.
func (o *NodeCheckOptions) AddFlags(cmd *cobra.Command) {
	o.addFlags(cmd, "--fix changes the node")
	f := cmd.Flags()
	f.BoolVar(&o.All, "all", o.All, "check every node")
	f.StringVarP(&o.Selector, "selector", "l", o.Selector, "check the nodes with these labels, e.g. -l pool=x")
	f.StringSliceVar(&o.Checks, "checks", o.Checks, protocol.ChecksFlagUsage("all"))
	f.IntVar(&o.MaxConcurrency, "max-concurrency", o.MaxConcurrency, "how many nodes to check at once")
	f.BoolVar(&o.Fix, "fix", o.Fix, "bring a down bridge up and raise nf_conntrack_max to the recommended value")
	f.StringVar(&o.Bridge, "bridge", o.Bridge, "the pod bridge (default: auto-detect cbr0, cni0, docker0, ...)")
	f.IntVar(&o.ExpectedMTU, "expected-mtu", o.ExpectedMTU, "the pod MTU the network should have (default: the uplink's minus overlay overhead)")
	f.IntVar(&o.Top, "top", o.Top, "how many pod IPs the conntrack check lists by entries (when given, the table shows them too)")
}

// Complete finds the namespace and clients.
func (o *NodeCheckOptions) Complete(args []string) error {
	o.Args = args
	return o.complete()
}

// Validate checks the flags.
func (o *NodeCheckOptions) Validate() error {
	n := 0
	if len(o.Args) > 0 {
		n++
	}
	if o.All {
		n++
	}
	if o.Selector != "" {
		n++
	}
	if n != 1 {
		return fmt.Errorf("name nodes, or use --all or -l SELECTOR (exactly one of them), e.g. kubectl netdiag node check NODE")
	}
	checks, err := protocol.ParseCheckList(o.Checks)
	if err != nil {
		return err
	}
	o.Checks = checks
	if o.Top < 0 {
		return fmt.Errorf("--top must not be negative, got %d", o.Top)
	}
	if o.ExpectedMTU < 0 {
		return fmt.Errorf("--expected-mtu must not be negative, got %d", o.ExpectedMTU)
	}
	flag := ""
	if o.Fix {
		flag = "--fix"
	}
	return o.validate(flag)
}

// request is the helper's check request.
func (o *NodeCheckOptions) request() protocol.CheckRequest {
	r := protocol.DefaultCheckRequest()
	r.Checks = o.Checks
	r.Bridge = o.Bridge
	r.ExpectedMTU = o.ExpectedMTU
	r.Top = o.Top
	return r
}

// Run checks the nodes.
func (o *NodeCheckOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	nodes, err := nodeops.NodeNames(ctx, o.Client, o.Args, o.Selector)
	if err != nil {
		return err
	}
	cfg := nodeops.Config{Check: o.request(), Writable: o.Fix && !o.DryRun}
	if len(nodes) > 0 {
		// The dns check's addresses are the cluster's; the first node's
		// kubelet tells the cluster domain and a node-local cache.
		nodeops.FillDNS(ctx, o.Client, nodes[0], &cfg.Check)
	}
	if o.Fix {
		cfg.Fix = o.fixer(nodeops.PlanNodeFixes(true, true))
	}
	return o.run(ctx, nodes, cfg)
}
