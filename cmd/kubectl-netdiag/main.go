// Command kubectl-netdiag is the `kubectl netdiag` plugin.
package main

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/cmd"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := cmd.NewCmdRoot(streams).Execute()
	klog.Flush()
	if err != nil {
		// An error can carry text from the cluster (helper output, process
		// command lines): no control character reaches the terminal.
		fmt.Fprintf(os.Stderr, "error: %s\n", report.Escape(err.Error()))
	}
	os.Exit(cmd.ExitCode(err))
}
