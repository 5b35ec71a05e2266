package checks

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// killFixture is a /proc tree where a real child process (so a pidfd can
// hold it) appears in a container cgroup of pod fixtureUID, with its real
// stat line.
type killFixture struct {
	proc, host string
	cmd        *exec.Cmd
	cid        string
	start      uint64
}

func newKillFixture(t *testing.T, args ...string) *killFixture {
	t.Helper()
	if len(args) == 0 {
		args = []string{"sleep", "60"}
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	k := &killFixture{proc: t.TempDir(), host: t.TempDir(), cmd: cmd, cid: strings.Repeat("ab", 32)}
	pid := cmd.Process.Pid
	dir := filepath.Join(k.proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "stat"), stat, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::/kubepods/besteffort/pod"+fixtureUID+"/"+k.cid+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(args, "\x00")+"\x00"), 0o644)
	k.start, _, err = procStart(k.proc, pid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *killFixture) alive() bool {
	return syscall.Kill(k.cmd.Process.Pid, 0) == nil && !exited(k.cmd.Process.Pid)
}

// exited: gone or a zombie.
func exited(pid int) bool {
	_, state, err := procStart("/proc", pid)
	return err != nil || state == "Z"
}

func (k *killFixture) run(t *testing.T, runtime runtimeLister, kill string) []protocol.Action {
	t.Helper()
	cfg, err := parseFixFlags([]string{"--kill", kill, "--grace", "2s", "--pod-uid", fixtureUID, "--proc", k.proc, "--host-root", k.host}, strings.NewReader(""), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Check.runtime = runtime
	var actions []protocol.Action
	RunFix(context.Background(), cfg, func(a protocol.Action) { actions = append(actions, a) })
	return actions
}

func runtimeKnowing(ids ...string) runtimeLister {
	return func(context.Context) (runtimeState, error) {
		st := runtimeState{Endpoint: "fake", Containers: map[string]bool{}, Sandboxes: map[string]string{}}
		for _, id := range ids {
			st.Containers[id] = true
		}
		return st, nil
	}
}

func (k *killFixture) pidStart(delta int) string {
	return strconv.Itoa(k.cmd.Process.Pid) + ":" + strconv.FormatUint(k.start+uint64(delta), 10)
}

func TestFixKillApprovedStaleProcess(t *testing.T) {
	k := newKillFixture(t)
	actions := k.run(t, runtimeKnowing(), k.pidStart(0))
	if len(actions) != 1 || actions[0].Result != protocol.ActionDone || asJSON(t, actions[0].Data)["signal"] != "SIGTERM" {
		t.Fatalf("actions %+v", actions)
	}
	if k.alive() {
		t.Error("the approved stale process still runs")
	}
}

// Refusals: nothing is signalled.
func TestFixKillRefuses(t *testing.T) {
	k := newKillFixture(t)
	pid := strconv.Itoa(k.cmd.Process.Pid)
	for _, tc := range []struct {
		name    string
		runtime runtimeLister
		kill    string
		want    string
	}{
		{"no runtime", func(context.Context) (runtimeState, error) {
			return runtimeState{}, errNoRuntime
		}, k.pidStart(0), RuntimeUnreachable + " (no container runtime socket found): pid " + pid + " not signalled"},
		{"runtime knows it", runtimeKnowing(k.cid), k.pidStart(0), "pid " + pid + " is not a stale process of pod UID " + fixtureUID + ": not signalled"},
		{"no start time", runtimeKnowing(), pid, "pid " + pid + ": no approved start time"},
		{"other start time", runtimeKnowing(), k.pidStart(1), "the PID was reused): not signalled"},
		{"not in the pod", runtimeKnowing(), "4343:1", "pid 4343 is not a stale process of pod UID " + fixtureUID + ": not signalled"},
	} {
		actions := k.run(t, tc.runtime, tc.kill)
		if len(actions) != 1 || actions[0].Result != protocol.ActionRefused || !strings.Contains(actions[0].Message, tc.want) {
			t.Errorf("%s: actions %+v, want refused: %q", tc.name, actions, tc.want)
		}
		if !k.alive() {
			t.Fatalf("%s: the process was signalled", tc.name)
		}
	}
}

// SIGTERM ignored: SIGKILL after the grace period; many such processes
// are ended concurrently, in about one grace period.
func TestFixKillConcurrentSIGKILL(t *testing.T) {
	var ks []*killFixture
	var list []string
	proc := t.TempDir()
	for range 4 {
		k := newKillFixture(t, "sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60")
		ks = append(ks, k)
		list = append(list, k.pidStart(0))
		// One /proc tree for them all.
		src := filepath.Join(k.proc, strconv.Itoa(k.cmd.Process.Pid))
		if err := os.Rename(src, filepath.Join(proc, filepath.Base(src))); err != nil {
			t.Fatal(err)
		}
	}
	ks[0].proc = proc
	time.Sleep(200 * time.Millisecond) // let the shells set their traps
	t0 := time.Now()
	actions := ks[0].run(t, runtimeKnowing(), strings.Join(list, ","))
	took := time.Since(t0)
	if len(actions) != 4 {
		t.Fatalf("actions %+v", actions)
	}
	for i, a := range actions {
		if a.Result != protocol.ActionDone || asJSON(t, a.Data)["signal"] != "SIGKILL" || a.Target != strconv.Itoa(ks[i].cmd.Process.Pid) {
			t.Errorf("action %d: %+v", i, a)
		}
		if ks[i].alive() {
			t.Errorf("pid %d still runs", ks[i].cmd.Process.Pid)
		}
	}
	t.Logf("4 processes ignoring SIGTERM, 2s grace: ended in %s", took)
	if took > 5*time.Second {
		t.Errorf("ending 4 processes with a 2s grace took %s: not concurrent", took)
	}
}
