//go:build linux

package main

// The contract between plugin and helper, end to end without root: the
// helper's real command line runs on fixture trees, and its output goes
// straight into the plugin's decoder and fix planner. A field renamed or
// dropped on either side fails here, not on a node.

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

const (
	fixtureUID = "7c0a6f5e-8d2b-4c1e-9f3a-2b5d6e7f8a90"
	sandboxID  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	knownID    = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	staleID    = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

// copyTree copies a fixture tree of pkg/checks into a temp dir; a file
// named fds becomes the fd directory of symlinks it lists.
func copyTree(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join("..", "pkg", "checks", "testdata", name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() != "fds" {
			return os.WriteFile(dst, b, 0o644)
		}
		fdDir := filepath.Join(filepath.Dir(dst), "fd")
		if err := os.MkdirAll(fdDir, 0o755); err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if fd, target, ok := strings.Cut(sc.Text(), " "); ok {
				if err := os.Symlink(target, filepath.Join(fdDir, fd)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// helper runs the helper's command line (the binary's run) and decodes its
// stdout the way the plugin does.
func helper(t *testing.T, command []string, stdin []byte) *kube.HelperReport {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(command, streams{in: bytes.NewReader(stdin), out: &out, err: &errb})
	if code != exitOK {
		t.Fatalf("%q: exit %d\nstdout %s\nstderr %s", command, code, out.String(), errb.String())
	}
	rep, err := kube.ParseHelperReport(out.Bytes())
	if err != nil {
		t.Fatalf("%q: the plugin cannot read the helper's report: %v\n%s", command, err, out.String())
	}
	return rep
}

func severityOf(rep *kube.HelperReport, check string) protocol.Severity {
	for _, f := range rep.Findings {
		if f.Check == check {
			return f.Severity
		}
	}
	return ""
}

// The conntrack fix, whole: the helper's warn finding plans a raise to
// MemTotal/32, the plugin's fix request runs on the same tree, and the
// check reads ok after it.
func TestContractConntrackFix(t *testing.T) {
	proc := copyTree(t, "proc-conntrack")
	host := t.TempDir()
	if err := os.MkdirAll(filepath.Join(host, "etc", "sysctl.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	check := protocol.DefaultCheckRequest()
	check.Checks = []string{protocol.CheckConntrack}
	check.Proc, check.HostRoot, check.Kmsg = proc, host, filepath.Join(t.TempDir(), "no-kmsg")
	check.DropSample, check.Top = 0, 0
	check.Pods = []protocol.PodInfo{}

	rep := helper(t, check.Command(), check.Stdin())
	if got := severityOf(rep, protocol.CheckConntrack); got != protocol.SeverityWarn {
		t.Fatalf("conntrack at 91%%: %q, want warn: %+v", got, rep.Findings)
	}
	steps, err := nodeops.PlanNodeFixes(true, true)(rep)
	if err != nil || len(steps) != 1 {
		t.Fatalf("planned %+v, %v; want one conntrack step", steps, err)
	}
	fix := protocol.DefaultFixRequest()
	fix.Check = check
	steps[0].Apply(&fix)
	if fix.ConntrackMax != 25165824/32 || fix.PersistDir != nodeops.ConntrackPersistDir {
		t.Fatalf("fix request %+v: want nf_conntrack_max MemTotal/32 = 786432 persisted in %s", fix, nodeops.ConntrackPersistDir)
	}
	if err := os.MkdirAll(filepath.Join(host, fix.PersistDir), 0o755); err != nil {
		t.Fatal(err)
	}
	frep := helper(t, fix.Command(), fix.Check.Stdin())
	if len(frep.Actions) != 2 || frep.Actions[0].Result != protocol.ActionDone || frep.Actions[1].Result != protocol.ActionDone {
		t.Fatalf("actions %+v", frep.Actions)
	}
	var d protocol.ActionData
	if err := frep.Actions[0].DecodeData(&d); err != nil || d.After == nil || *d.After != 786432 || d.Before == nil || *d.Before != 262144 {
		t.Errorf("conntrack-max action data %+v (%v)", d, err)
	}
	if got := severityOf(helper(t, check.Command(), check.Stdin()), protocol.CheckConntrack); got != protocol.SeverityOK {
		t.Errorf("after the fix: %q, want ok", got)
	}
}

// fakeCRI knows the fixture pod's sandbox and one of its containers.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (fakeCRI) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{
		{Id: sandboxID, Metadata: &runtimeapi.PodSandboxMetadata{Uid: fixtureUID}},
	}}, nil
}

func (fakeCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: knownID}}}, nil
}

// The stale kill, planned from the helper's real findings: each stale
// process with the start time the helper read, the port holder first.
// Nothing is signalled (the fixture PIDs are real PIDs on this machine).
func TestContractStaleKillPlan(t *testing.T) {
	proc := copyTree(t, "proc-stale")
	host := t.TempDir()
	sock := filepath.Join(host, "run", "containerd", "containerd.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, fakeCRI{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	check := protocol.DefaultCheckRequest()
	check.Checks = []string{protocol.CheckStale}
	check.Proc, check.Sys, check.HostRoot = proc, t.TempDir(), host
	check.PodUID, check.Port = fixtureUID, 6379
	rep := helper(t, check.Command(), check.Stdin())
	if got := severityOf(rep, protocol.CheckStale); got != protocol.SeverityFail {
		t.Fatalf("stale: %q, want fail: %+v", got, rep.Findings)
	}
	steps, err := nodeops.PlanKills(rep)
	if err != nil || len(steps) != 1 || steps[0].Refuse != "" {
		t.Fatalf("planned %+v, %v", steps, err)
	}
	fix := protocol.DefaultFixRequest()
	fix.Check = check
	steps[0].Apply(&fix)
	if len(fix.Kill) != 2 || fix.Kill[0].PID != 300 || fix.Kill[1].PID != 600 || fix.Kill[0].StartTicks == 0 || fix.Kill[1].StartTicks == 0 {
		t.Fatalf("kills %+v: want PIDs 300 and 600, each with its start time", fix.Kill)
	}
	detail := strings.Join(steps[0].Detail, "\n")
	for _, want := range []string{"PID 300: \"redis-server *:6379\"", "container " + staleID, "holds port tcp/6379"} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, detail)
		}
	}
	// The helper reads the plugin's fix request back as it was sent.
	got, err := protocol.ParseFixRequest(fix.Args(), bytes.NewReader(fix.Check.Stdin()), nil)
	if err != nil || len(got.Kill) != 2 || got.Kill[0] != fix.Kill[0] || got.Check.PodUID != fixtureUID {
		t.Errorf("fix request read back as %+v (%v)", got, err)
	}

	// Without the runtime, the kill is refused by the planner itself.
	check.HostRoot = t.TempDir()
	check.RuntimeEndpoint = "unix:///run/none.sock"
	steps, err = nodeops.PlanKills(helper(t, check.Command(), check.Stdin()))
	if err != nil || len(steps) != 1 || !strings.Contains(steps[0].Refuse, nodeops.StaleRuntimeUnreachable) {
		t.Errorf("without a runtime: %+v, %v", steps, err)
	}
}
