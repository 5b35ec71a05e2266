package cmd

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
)

// clusterOptions is what every command that talks to the cluster holds: the
// namespace and the clients. Tests preset Client, Executor and NameSuffix.
type clusterOptions struct {
	configFlags *genericclioptions.ConfigFlags

	Namespace  string
	Client     kubernetes.Interface
	Executor   kube.Executor
	NameSuffix func() string
}

// completeCluster fills in what was not preset: the namespace from -n or the
// kubeconfig, and clients built from the kubeconfig. It returns the client
// it built, nil when the client was preset.
func (c *clusterOptions) completeCluster() (kubernetes.Interface, error) {
	if c.Namespace == "" {
		ns, _, err := c.configFlags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, fmt.Errorf("finding the namespace: %w", err)
		}
		c.Namespace = ns
	}
	if c.NameSuffix == nil {
		c.NameSuffix = kube.RandomSuffix
	}
	if c.Client != nil && c.Executor != nil {
		return nil, nil
	}
	config, err := c.configFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	if c.Executor == nil {
		c.Executor = &kube.RemoteExecutor{Config: config, Client: client}
	}
	if c.Client != nil {
		return nil, nil
	}
	c.Client = client
	return client, nil
}

// isTerminal says whether a stream (In, Out, ErrOut) is a terminal.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// withInterrupts makes the first Ctrl-C (or SIGTERM) a graceful stop: ctx
// is cancelled after first runs. A second one stops at once: second runs,
// then the plugin exits 130. stop releases the signals.
func withInterrupts(ctx context.Context, first, second func(sig string)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			if first != nil {
				first(signalName(sig))
			}
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			if second != nil {
				second(signalName(sig))
			}
			os.Exit(130)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			cancel()
		})
	}
}

func signalName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "Ctrl-C"
	}
	return "SIGTERM"
}

// validateHelper checks the flags that choose and start the helper, shared by
// every command that injects it.
func validateHelper(image *imageOptions, timeout time.Duration) error {
	if err := image.validate(); err != nil {
		return err
	}
	if timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", timeout)
	}
	return nil
}

// errInterrupted is the answer to a confirmation that Ctrl-C ended.
var errInterrupted = errors.New("interrupted at the confirmation: nothing was changed")

// askYesNo asks question on errOut and reads a line from in: "y" or "yes"
// is yes, anything else no. Ctrl-C (ctx cancelled) ends the wait at once,
// although the read itself cannot be withdrawn: a plugin that returns
// errInterrupted is about to exit.
func askYesNo(ctx context.Context, in *bufio.Reader, errOut io.Writer, question string) (bool, error) {
	fmt.Fprintf(errOut, "%s [y/N] ", question)
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := in.ReadString('\n')
		ch <- answer{line, err}
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(errOut)
		return false, errInterrupted
	case a := <-ch:
		if a.err != nil && a.line == "" {
			return false, fmt.Errorf("no answer to the confirmation: %w", a.err)
		}
		switch strings.ToLower(strings.TrimSpace(a.line)) {
		case "y", "yes":
			return true, nil
		}
		return false, nil
	}
}
