package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/dnsdiag"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// maxQueryTimeout bounds --query-timeout: the default run stays short.
const maxQueryTimeout = 5 * time.Second

// DNSOptions drives `kubectl netdiag dns`.
type DNSOptions struct {
	clusterOptions
	genericiooptions.IOStreams
	imageOptions

	Output       string
	Type         string
	Load         int
	Container    string
	Timeout      time.Duration
	QueryTimeout time.Duration
	NoNode       bool

	Target target.Target
	Names  []string

	// IsTerminal says whether a stream is a terminal (tests preset it).
	IsTerminal func(stream any) bool
	// NoKubelet skips asking the kubelet for its DNS settings (tests:
	// the fake clientset has no nodes/proxy).
	NoKubelet bool
}

// NewDNSOptions returns the defaults.
func NewDNSOptions(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *DNSOptions {
	d := dnsdiag.DefaultConfig()
	return &DNSOptions{
		clusterOptions: clusterOptions{configFlags: configFlags},
		IOStreams:      streams,
		imageOptions:   newImageOptions(),
		Output:         "table",
		Type:           d.Type,
		Timeout:        d.StartTimeout,
		QueryTimeout:   d.QueryTimeout,
	}
}

// NewCmdDNS builds `kubectl netdiag dns`.
func NewCmdDNS(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewDNSOptions(configFlags, streams)
	cmd := &cobra.Command{
		Use:   "dns [pod/]NAME [NAME...] [--type A|AAAA] [--load N]",
		Short: "Probe a pod's DNS hop by hop and name the failing hop",
		Long: `Probe a pod's DNS from its own network namespace, hop by hop, and name the
failing hop: the first one that fails while the hop behind it answers.

config     the pod's /etc/resolv.conf (nameserver, dnsPolicy, ndots, search
           list and the queries a lookup of each NAME really sends)
control    the kube-dns Service, its ready endpoints, the CoreDNS pods, their
           recent log lines (loops, i/o timeouts, SERVFAIL) and the Corefile's
           upstream
probes     kubernetes.default.svc.<domain> and each NAME, over UDP and TCP, at
           the pod's nameserver, the node-local cache (169.254.20.10, when the
           node runs one), the kube-dns ClusterIP and each CoreDNS endpoint
           (from the pod, through the netdiag ephemeral container, as
           capture uses), and at the upstream (from the node, through a
           short-lived node-debug pod)
conntrack  the node's insert_failed and drop counters before and after;
           --load N adds N parallel A+AAAA lookups from one socket (the
           5-second race of kubernetes#56903)

The failing hop is one of: config, control, node-local, service (the Service
translation on the node: kube-proxy rules), coredns, upstream, udp53 (TCP
answers where UDP does not). No tools are needed in the pod's image. At most
50 queries a second are sent. Exit code: 0 when every hop answers, 3 when a
hop failed, 1 on error.`,
		Example: `  # Which hop of web-0's DNS fails?
  kubectl netdiag dns pod/web-0 -n shop

  # Also look up two names, and show the queries each lookup really sends
  kubectl netdiag dns web-0 api.example.com db.shop.svc.cluster.local

  # The A/AAAA race: 200 parallel lookups, conntrack counters before and after
  kubectl netdiag dns web-0 api.example.com --load 200 -o json`,
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
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", o.Output, "output format: table, json or yaml")
	f.StringVar(&o.Type, "type", o.Type, "record type to look up: A or AAAA")
	f.IntVar(&o.Load, "load", o.Load, fmt.Sprintf("also send N parallel A+AAAA lookups of the cluster name to the pod's nameserver from one socket, at most %d queries a second (0: none, at most %d)", protocol.DefaultDNSRate, protocol.MaxDNSLoad))
	f.StringVarP(&o.Container, "container", "c", o.Container, "target container of the netdiag container (default: the pod's default container)")
	o.imageOptions.addFlags(f, "helper image of the netdiag container and the node-debug pod")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the netdiag container and the node-debug pod to start")
	f.DurationVar(&o.QueryTimeout, "query-timeout", o.QueryTimeout, "how long each query waits for its answer")
	f.BoolVar(&o.NoNode, "no-node", o.NoNode, "start no node-debug pod: no upstream query from the node, no conntrack counters")
	return cmd
}

// Complete parses the pod and the names and finds the namespace and
// clients.
func (o *DNSOptions) Complete(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("dns needs a pod, e.g. kubectl netdiag dns pod/web-0 [NAME...]")
	}
	t, err := target.ParsePod(args[0])
	if err != nil {
		return err
	}
	o.Target = t
	o.Names = args[1:]
	if o.IsTerminal == nil {
		o.IsTerminal = isTerminal
	}
	_, err = o.completeCluster()
	return err
}

// Validate checks the flags and names; nothing is created when it fails.
func (o *DNSOptions) Validate() error {
	if err := report.ValidFormat(o.Output); err != nil {
		return err
	}
	if o.Type != "A" && o.Type != "AAAA" {
		return fmt.Errorf("--type must be A or AAAA, got %q", o.Type)
	}
	if o.Load < 0 || o.Load > protocol.MaxDNSLoad {
		return fmt.Errorf("--load must be between 0 and %d, got %d", protocol.MaxDNSLoad, o.Load)
	}
	if o.QueryTimeout <= 0 || o.QueryTimeout > maxQueryTimeout {
		return fmt.Errorf("--query-timeout must be positive and at most %s, got %s", maxQueryTimeout, o.QueryTimeout)
	}
	for _, n := range o.Names {
		if err := validDNSName(n); err != nil {
			return err
		}
	}
	return validateHelper(&o.imageOptions, o.Timeout)
}

// validDNSName refuses what cannot be a name to look up.
func validDNSName(n string) error {
	trimmed := strings.TrimSuffix(n, ".")
	switch {
	case trimmed == "":
		return fmt.Errorf("%q is not a DNS name to look up: give a name such as kubernetes.default or example.com", n)
	case len(trimmed) > 253:
		return fmt.Errorf("DNS name %.40q... is %d characters long; names have at most 253", n, len(trimmed))
	case strings.ContainsAny(n, " \t\r\n/\\@:"):
		return fmt.Errorf("%q is not a DNS name (no spaces, slashes, @ or ports): give a name such as example.com; the pod is the first argument", n)
	}
	for _, label := range strings.Split(trimmed, ".") {
		if label == "" {
			return fmt.Errorf("%q has an empty label (two dots in a row): give a name such as example.com", n)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q has a label longer than 63 characters", n)
		}
	}
	return nil
}

// Config turns the options into the engine's config.
func (o *DNSOptions) Config() dnsdiag.Config {
	cfg := dnsdiag.DefaultConfig()
	cfg.Namespace, cfg.Pod, cfg.Container = o.Namespace, o.Target.Name, o.Container
	cfg.Names, cfg.Type, cfg.Load = o.Names, o.Type, o.Load
	cfg.QueryTimeout = o.QueryTimeout
	cfg.Image, cfg.PullPolicy, cfg.PullSecrets = o.Image, o.PullPolicy, o.PullSecrets
	cfg.StartTimeout = o.Timeout
	cfg.NoNode = o.NoNode
	if o.Client != nil && !o.NoKubelet {
		cfg.Kubelet = dnsdiag.KubeletDNS(o.Client)
	}
	return cfg
}

// Run probes and renders; the error carries the exit code.
func (o *DNSOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := withInterrupts(ctx, nil, nil)
	defer stop()
	deps := kube.Deps{Client: o.Client, Executor: o.Executor, NameSuffix: o.NameSuffix, ErrOut: o.ErrOut}
	res, err := dnsdiag.Run(ctx, deps, o.Config())
	if err != nil {
		return err
	}
	if err := RenderDNS(o.Out, o.Output, res, report.UseColor(o.IsTerminal != nil && o.IsTerminal(o.Out))); err != nil {
		return err
	}
	return DNSOutcome(res)
}

// DNSOutcome is nil when every hop answers, an exit-3 error when a hop
// failed (or a finding is a fail).
func DNSOutcome(res *dnsdiag.Result) error {
	if res.FailingHop != "" {
		return &report.ExitError{Code: report.ExitFailed, Msg: fmt.Sprintf("DNS of pod %s/%s fails at hop %s: %s", res.Pod.Namespace, res.Pod.Name, res.FailingHop, dnsdiag.FailingHopText[res.FailingHop])}
	}
	for _, f := range res.Findings {
		if f.Severity == protocol.SeverityFail {
			return &report.ExitError{Code: report.ExitFailed, Msg: fmt.Sprintf("DNS of pod %s/%s: %s", res.Pod.Namespace, res.Pod.Name, f.Message)}
		}
	}
	return nil
}

// RenderDNS writes the result as a hop table and findings, or as JSON or
// YAML (hops[], failingHop).
func RenderDNS(w io.Writer, format string, res *dnsdiag.Result, useColor bool) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	case "yaml":
		b, err := yaml.Marshal(res)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "table", "":
		renderDNSTable(w, res, useColor)
		return nil
	}
	return report.ValidFormat(format)
}

func renderDNSTable(w io.Writer, res *dnsdiag.Result, useColor bool) {
	e := report.Escape
	rc := res.ResolvConf
	how := "resolv.conf"
	if res.ResolvConfComputed {
		how = "resolv.conf (computed: " + e(rc.Error) + ")"
	}
	fmt.Fprintf(w, "POD %s/%s on node %s, dnsPolicy %s; %s: nameserver %s, search %s, ndots:%d\n\n",
		e(res.Pod.Namespace), e(res.Pod.Name), e(res.Pod.Node), e(res.Pod.DNSPolicy), how,
		e(orDash(strings.Join(rc.Nameservers, " "))), e(orDash(strings.Join(rc.Search, " "))), rc.Ndots)

	rows := [][]string{{"HOP", "SERVER", "PROTO", "NAME", "RCODE", "LATENCY"}}
	add := func(hop string, p protocol.DNSProbe) {
		rcode := p.Rcode
		switch {
		case rcode == "" && p.Timeout:
			rcode = "timeout"
		case rcode == "":
			rcode = orDash(p.Error)
		}
		rows = append(rows, []string{e(hop), e(p.Server), e(p.Proto), e(p.Name), e(rcode), latency(p.LatencyMicroseconds)})
	}
	for _, p := range res.Lookups {
		add("lookup", p)
	}
	for _, p := range res.Hops {
		add(p.Hop, p)
	}
	writeTable(w, rows, "")
	fmt.Fprintln(w)

	paint := func(sev protocol.Severity, s string) string {
		if !useColor {
			return s
		}
		c := map[protocol.Severity]*color.Color{
			protocol.SeverityOK: color.New(color.FgGreen), protocol.SeverityInfo: color.New(color.FgCyan),
			protocol.SeverityWarn: color.New(color.FgYellow, color.Bold), protocol.SeverityFail: color.New(color.FgRed, color.Bold),
		}[sev]
		if c == nil {
			return s
		}
		c.EnableColor()
		return c.Sprint(s)
	}
	frows := [][]string{{"HOP", "SEVERITY", "SUBJECT", "MESSAGE"}}
	for _, f := range res.Findings {
		frows = append(frows, []string{e(f.Hop), string(f.Severity), e(f.Subject), e(f.Message)})
	}
	widths := columnWidths(frows)
	fmt.Fprintln(w, padRow(frows[0], widths))
	for i, f := range res.Findings {
		r := frows[i+1]
		// Pad first, then colour: escape codes take no room.
		sev := paint(f.Severity, r[1]) + strings.Repeat(" ", widths[1]-len(r[1])+2)
		fmt.Fprintln(w, r[0]+strings.Repeat(" ", widths[0]-len([]rune(r[0]))+2)+sev+padRow(r[2:], widths[2:]))
		if f.Remedy != "" && (f.Severity == protocol.SeverityWarn || f.Severity == protocol.SeverityFail) {
			fmt.Fprintf(w, "%sremedy: %s\n", strings.Repeat(" ", widths[0]+2), e(f.Remedy))
		}
	}
	fmt.Fprintln(w)
	if res.FailingHop != "" {
		fmt.Fprintf(w, "%s %s (%s): %s\n", paint(protocol.SeverityFail, "failing hop:"), res.FailingHop, dnsdiag.FailingHopText[res.FailingHop], e(res.Reason))
	} else {
		fmt.Fprintf(w, "%s every hop answers\n", paint(protocol.SeverityOK, "no failing hop:"))
	}
	fmt.Fprintf(w, "%d queries in %.1fs\n", res.Queries, res.DurationSeconds)
}

func latency(us int64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 10000:
		return fmt.Sprintf("%.1fms", float64(us)/1000)
	}
	return fmt.Sprintf("%dms", us/1000)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func columnWidths(rows [][]string) []int {
	var widths []int
	for _, r := range rows {
		for j, c := range r {
			if j >= len(widths) {
				widths = append(widths, 0)
			}
			widths[j] = max(widths[j], len([]rune(c)))
		}
	}
	return widths
}

// padRow pads every cell but the last to its column's width plus two
// spaces.
func padRow(r []string, widths []int) string {
	var b strings.Builder
	for j, c := range r {
		b.WriteString(c)
		if j < len(r)-1 {
			b.WriteString(strings.Repeat(" ", widths[j]-len([]rune(c))+2))
		}
	}
	return strings.TrimRight(b.String(), " ")
}

func writeTable(w io.Writer, rows [][]string, indent string) {
	widths := columnWidths(rows)
	for _, r := range rows {
		fmt.Fprintln(w, indent+padRow(r, widths))
	}
}
