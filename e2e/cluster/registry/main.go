// Command registry is the local cluster's OCI registry: go-containerregistry's
// in-memory registry served over plain HTTP on the loopback address, so that
// the e2e tests can push a release's helper image and let the kubelet pull it
// by digest, as it would from a real registry. Everything it holds is lost
// when it stops, with the cluster.
//
//	registry --addr 127.0.0.1:5000 --blobs DIR
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "listen address; keep it on loopback")
	blobs := flag.String("blobs", "", "directory for blobs (default: memory)")
	flag.Parse()
	if err := run(*addr, *blobs); err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		os.Exit(1)
	}
}

func run(addr, blobs string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--addr %q: serve on a loopback address only", addr)
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	opts := []registry.Option{registry.Logger(logger)}
	if blobs != "" {
		if err := os.MkdirAll(blobs, 0o700); err != nil {
			return err
		}
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))
	}
	srv := &http.Server{Addr: addr, Handler: registry.New(opts...), ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		_ = srv.Close()
	}()
	logger.Printf("serving on http://%s", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
