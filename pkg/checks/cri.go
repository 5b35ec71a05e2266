package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultRuntimeSockets are tried, below the host root, when no
// --runtime-endpoint is given.
var defaultRuntimeSockets = []string{
	"run/containerd/containerd.sock",
	"run/crio/crio.sock",
	"run/k3s/containerd/containerd.sock",           // k3s, RKE2
	"var/snap/microk8s/common/run/containerd.sock", // microk8s
	"run/cri-dockerd.sock",                         // cri-dockerd
	"var/run/containerd/containerd.sock",
	"var/run/crio/crio.sock",
	"var/run/cri-dockerd.sock",
}

// runtimeState is what the container runtime knows: every container and
// every pod sandbox, in any state.
type runtimeState struct {
	Endpoint   string
	Containers map[string]bool
	// Sandboxes maps a sandbox ID to its pod UID.
	Sandboxes map[string]string
}

// runtimeLister asks the runtime for its state.
type runtimeLister func(ctx context.Context) (runtimeState, error)

// errNoRuntime says no runtime socket was found.
var errNoRuntime = errors.New("no container runtime socket found")

// criLister returns a lister that talks CRI to the configured endpoint, or
// to the first default socket that exists below the host root.
func criLister(cfg Config) runtimeLister {
	return func(ctx context.Context) (runtimeState, error) {
		var candidates []string
		if cfg.RuntimeEndpoint != "" {
			p := strings.TrimPrefix(cfg.RuntimeEndpoint, "unix://")
			candidates = append(candidates, filepath.Join(cfg.HostRoot, p))
			if cfg.HostRoot != "/" {
				candidates = append(candidates, p)
			}
		} else {
			for _, s := range defaultRuntimeSockets {
				candidates = append(candidates, filepath.Join(cfg.HostRoot, s))
			}
		}
		var errs []error
		for _, sock := range candidates {
			fi, err := os.Stat(sock)
			if err != nil || fi.Mode()&os.ModeSocket == 0 {
				continue
			}
			st, err := listCRI(ctx, sock)
			if err == nil {
				return st, nil
			}
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return runtimeState{}, errors.Join(errs...)
		}
		if cfg.RuntimeEndpoint != "" {
			return runtimeState{}, fmt.Errorf("%w: --runtime-endpoint %s is not a socket below %s", errNoRuntime, cfg.RuntimeEndpoint, cfg.HostRoot)
		}
		return runtimeState{}, fmt.Errorf("%w below %s (tried %s)", errNoRuntime, cfg.HostRoot, strings.Join(defaultRuntimeSockets, ", "))
	}
}

func listCRI(ctx context.Context, sock string) (runtimeState, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return runtimeState{}, fmt.Errorf("runtime socket %s: %w", sock, err)
	}
	defer conn.Close()
	c := runtimeapi.NewRuntimeServiceClient(conn)
	st := runtimeState{Endpoint: sock, Containers: map[string]bool{}, Sandboxes: map[string]string{}}
	sbs, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return runtimeState{}, fmt.Errorf("runtime socket %s: ListPodSandbox: %w", sock, err)
	}
	for _, s := range sbs.GetItems() {
		st.Sandboxes[normalizeContainerID(s.GetId())] = normalizeUID(s.GetMetadata().GetUid())
	}
	cs, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return runtimeState{}, fmt.Errorf("runtime socket %s: ListContainers: %w", sock, err)
	}
	for _, ct := range cs.GetContainers() {
		st.Containers[normalizeContainerID(ct.GetId())] = true
	}
	return st, nil
}
