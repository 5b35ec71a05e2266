// Command kubectl-netdiag is the `kubectl netdiag` plugin.
package main

import (
	"context"
	"fmt"
	"os"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/cmd"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/report"
)

func main() {
	quietClientGoErrors()
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

// quietClientGoErrors: client-go reports errors it cannot return to a
// caller (an exec stream closed under it, "use of closed network
// connection") through utilruntime.HandleError, which logs them at error
// level as raw "Unhandled Error" lines. The plugin says in one sentence what
// such a failure means for the user, so these show only with -v=2 and up.
func quietClientGoErrors() {
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(_ context.Context, err error, msg string, keysAndValues ...interface{}) {
			klog.V(2).InfoS("client-go: "+msg, append(keysAndValues, "err", err)...)
		},
	}
}
