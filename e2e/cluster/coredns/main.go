// Command coredns is a trimmed CoreDNS for the local e2e cluster
// (e2e/cluster): the upstream server (coremain) with only the plugins the
// cluster's Corefiles use, so it builds in a fraction of the time and size of
// the full distribution. It serves the kube-dns Service (kubernetes, forward,
// cache, ...) and the node's test upstream for the zone example.test (file,
// hosts, bind).
//
// This is a module of its own (go.mod beside this file): it never enters the
// project's module, `go test ./...` or `go vet ./...`. Built by
// e2e/cluster/build-coredns.sh, cached by version.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins, each registering its directive with the server type.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// directives lists the plugins above in execution order: the relative order
// of CoreDNS's plugin.cfg (core/dnsserver/zdirectives.go), which a request
// walks top to bottom. A plugin sees only what those below it answer, so
// e.g. cache must stay above kubernetes, file and forward, and whoami last.
var directives = []string{
	"reload",
	"bind",
	"debug",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"hosts",
	"kubernetes",
	"file",
	"loop",
	"forward",
	"whoami",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintf(os.Stderr, "coredns: %v\n", err)
		os.Exit(1)
	}
	coremain.Run()
}
