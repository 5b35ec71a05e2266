// Command netdiag-helper runs inside the injected container (or the node
// pod) and does what must happen in the pod's or node's namespaces: packet
// capture and checks. Its command line and JSON lines are a contract (README,
// "How it works"; pkg/protocol): extend them, never rename them.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// A broken stdout must come back as EPIPE (and end a capture cleanly
	// with reason stdout-closed), not kill the process with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(run(os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}
