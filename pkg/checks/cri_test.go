//go:build linux

package checks

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers the two CRI calls the stale check makes.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{
		{Id: strings.ToUpper(sandboxID), Metadata: &runtimeapi.PodSandboxMetadata{Uid: fixtureUID}},
	}}, nil
}

func (fakeRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: knownID}}}, nil
}

// serveCRI serves the fake runtime on HOSTROOT/run/containerd/containerd.sock.
func serveCRI(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "run", "containerd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "containerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, fakeRuntime{})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return root
}

func TestCRIListerDefaultSocket(t *testing.T) {
	root := serveCRI(t)
	st, err := criLister(Config{HostRoot: root})(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Containers[knownID] || st.Sandboxes[sandboxID] != fixtureUID || !strings.HasSuffix(st.Endpoint, "run/containerd/containerd.sock") {
		t.Errorf("got %+v", st)
	}
	// --runtime-endpoint is a node path below the host root.
	if _, err := criLister(Config{HostRoot: root, RuntimeEndpoint: "unix:///run/containerd/containerd.sock"})(context.Background()); err != nil {
		t.Errorf("--runtime-endpoint: %v", err)
	}
	if _, err := criLister(Config{HostRoot: root, RuntimeEndpoint: "/run/crio/crio.sock"})(context.Background()); err == nil {
		t.Error("a missing --runtime-endpoint answered")
	}
	if _, err := criLister(Config{HostRoot: t.TempDir()})(context.Background()); err == nil {
		t.Error("no socket, no error")
	}
}

// The stale check over a real CRI socket: its sandbox and container are live.
func TestRunStaleOverCRI(t *testing.T) {
	cfg := staleConfig(t)
	cfg.HostRoot = serveCRI(t)
	fs := runChecks(t, cfg)
	checkStaleFindings(t, fs)
	for _, f := range fs {
		if strings.Contains(f.Message, "not reachable") {
			t.Errorf("runtime reported unreachable: %s", f.Message)
		}
	}
}
