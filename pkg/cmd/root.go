// Package cmd holds the kubectl-netdiag commands. It is the only package that
// imports cobra.
package cmd

import (
	"errors"
	"flag"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
)

// NewCmdRoot builds `kubectl netdiag` and its subcommands.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdRoot(streams, completionClient)
}

// newCmdRoot builds the commands; completion lists pods, nodes and
// namespaces with a client from newClient (tests inject a fake one).
func newCmdRoot(streams genericiooptions.IOStreams, newClient clientFactory) *cobra.Command {
	configFlags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "kubectl-netdiag",
		Short: "Capture packets and diagnose pod and node networking",
		Long: `kubectl netdiag captures packets in a pod's network namespace and diagnoses
pod and node networking, through the Kubernetes API alone: no ssh, no
packages to install on nodes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			// krew installs this binary as a plugin: show `kubectl netdiag`.
			cobra.CommandDisplayNameAnnotation: "kubectl netdiag",
		},
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)

	addConfigFlags(configFlags, cmd.PersistentFlags())
	quietLogs := addKlogFlags(cmd.PersistentFlags())
	cmd.PersistentPreRun = func(*cobra.Command, []string) { quietLogs() }

	cmd.AddCommand(NewCmdVersion(streams))
	cmd.AddCommand(NewCmdCapture(configFlags, streams))
	cmd.AddCommand(NewCmdNode(configFlags, streams))
	cmd.AddCommand(NewCmdPod(configFlags, streams))
	cmd.AddCommand(NewCmdVeth(configFlags, streams))
	cmd.AddCommand(NewCmdConntrack(configFlags, streams))
	cmd.AddCommand(NewCmdStale(configFlags, streams))
	cmd.AddCommand(NewCmdCleanup(configFlags, streams))
	cmd.AddCommand(NewCmdDNS(configFlags, streams))
	// Ours, so cobra adds no default completion command.
	cmd.AddCommand(NewCmdCompletion(streams))
	(&completer{configFlags: configFlags, newClient: newClient}).register(cmd)
	return cmd
}

// addConfigFlags adds kubectl's flags. kubectl's -s (--server) gives way to
// tcpdump's -s (--snaplen) of capture: --server stays, long-only.
func addConfigFlags(configFlags *genericclioptions.ConfigFlags, fs *pflag.FlagSet) {
	tmp := pflag.NewFlagSet("kubectl", pflag.ContinueOnError)
	configFlags.AddFlags(tmp)
	tmp.VisitAll(func(f *pflag.Flag) {
		if f.Name == "server" {
			f.Shorthand = ""
		}
		fs.AddFlag(f)
	})
}

// addKlogFlags adds klog's flags, all hidden except -v. The function it
// returns, run once the flags are parsed, keeps the libraries' log lines
// (client-go's "Websocket Ping failed", "Unhandled Error", ...) off the
// terminal below -v=2: the plugin says in one sentence what a failure
// means, and the raw lines show with -v.
func addKlogFlags(fs *pflag.FlagSet) (quiet func()) {
	gofs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(gofs)
	gofs.VisitAll(func(f *flag.Flag) {
		pf := pflag.PFlagFromGoFlag(f)
		if fs.Lookup(pf.Name) != nil {
			return
		}
		if pf.Name != "v" {
			pf.Hidden = true
		}
		fs.AddFlag(pf)
	})
	return func() {
		if klog.V(2).Enabled() {
			_ = gofs.Set("logtostderr", "true")
			return
		}
		// Not to stderr, and not to files: to nowhere.
		_ = gofs.Set("logtostderr", "false")
		_ = gofs.Set("alsologtostderr", "false")
		_ = gofs.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	}
}

// ExitCoder is an error that carries the process exit code.
type ExitCoder interface {
	error
	ExitCode() int
}

// ExitCode is the exit code for err: 0 for nil, the code of an ExitCoder in
// its chain, 1 otherwise.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ec ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
