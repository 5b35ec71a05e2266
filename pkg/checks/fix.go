package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// ConntrackPersistFile is the file `fix --conntrack-max` writes in
// --persist-dir.
const ConntrackPersistFile = "90-netdiag-conntrack.conf"

// DefaultKillGrace is how long `fix --kill` waits after SIGTERM before
// SIGKILL.
const DefaultKillGrace = 5 * time.Second

// FixConfig is what `netdiag-helper fix` was asked to do. The check flags
// (--proc, --host-root, --pod-uid, --known-containers, --runtime-endpoint,
// --pods-json, ...) are accepted too: --kill runs the stale check with them
// to confirm each PID before it signals it.
type FixConfig struct {
	BridgeUp     string
	ConntrackMax uint64
	PersistDir   string
	Kill         []int
	Grace        time.Duration
	Check        Config
}

// fixFlags are the flags that belong to fix itself (all take a value).
var fixFlags = map[string]bool{"--bridge-up": true, "--conntrack-max": true, "--persist-dir": true, "--kill": true, "--grace": true}

// splitFixArgs separates fix's own flags from the check flags.
func splitFixArgs(args []string) (fix, check []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		if !fixFlags[name] {
			check = append(check, a)
			continue
		}
		fix = append(fix, a)
		if !hasValue && i+1 < len(args) {
			i++
			fix = append(fix, args[i])
		}
	}
	return fix, check
}

func parseFixFlags(args []string, stdin io.Reader, usage io.Writer) (FixConfig, error) {
	fixArgs, checkArgs := splitFixArgs(args)
	cfg := FixConfig{Grace: DefaultKillGrace}
	fs := pflag.NewFlagSet("netdiag-helper fix", pflag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.BridgeUp, "bridge-up", "", "bring this bridge up")
	fs.Uint64Var(&cfg.ConntrackMax, "conntrack-max", 0, "set net.netfilter.nf_conntrack_max to N (never lowers it)")
	fs.StringVar(&cfg.PersistDir, "persist-dir", "", "also persist --conntrack-max in DIR/"+ConntrackPersistFile+" (a node path, below --host-root)")
	kill := fs.String("kill", "", "end these PIDs (comma-separated), each only if the stale check confirms it is a stale process of --pod-uid")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "how long to wait after SIGTERM before SIGKILL")
	if err := fs.Parse(fixArgs); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return FixConfig{}, err
		}
		return FixConfig{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if *kill != "" {
		for _, s := range strings.Split(*kill, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || pid <= 1 {
				return FixConfig{}, fmt.Errorf("%w: --kill: %q is not a PID", errUsage, s)
			}
			cfg.Kill = append(cfg.Kill, pid)
		}
	}
	if cfg.BridgeUp == "" && cfg.ConntrackMax == 0 && len(cfg.Kill) == 0 {
		return FixConfig{}, fmt.Errorf("%w: nothing to do: give --bridge-up, --conntrack-max or --kill", errUsage)
	}
	if cfg.PersistDir != "" {
		if cfg.ConntrackMax == 0 {
			return FixConfig{}, fmt.Errorf("%w: --persist-dir goes with --conntrack-max", errUsage)
		}
		if !filepath.IsAbs(cfg.PersistDir) || filepath.Clean(cfg.PersistDir) != cfg.PersistDir || strings.Contains(cfg.PersistDir, "..") {
			return FixConfig{}, fmt.Errorf("%w: --persist-dir must be a clean absolute path, got %q", errUsage, cfg.PersistDir)
		}
	}
	if cfg.Grace < 0 {
		return FixConfig{}, fmt.Errorf("%w: --grace must not be negative", errUsage)
	}
	check, err := parseFlags(checkArgs, stdin, usage)
	if err != nil {
		return FixConfig{}, err
	}
	if len(cfg.Kill) > 0 && check.PodUID == "" {
		return FixConfig{}, fmt.Errorf("%w: --kill needs --pod-uid: only stale processes of that pod are ended", errUsage)
	}
	cfg.Check = check
	return cfg, nil
}

// FixMain runs `netdiag-helper fix ARGS`: JSON lines on stdout, hello
// first, one {"type":"action"} line per change made, refused or failed, and
// done last. A usage error exits 2; a refused or failed action is a line,
// not an exit code.
func FixMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	enc := helloEncoder(stdout)
	cfg, err := parseFixFlags(args, stdin, stderr)
	if err != nil {
		return flagError(enc, stderr, "fix", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := 0
	emit := func(a protocol.Action) {
		a.Type = protocol.TypeAction
		if enc.Encode(a) == nil {
			n++
		}
	}
	RunFix(ctx, cfg, emit)
	if err := enc.Encode(protocol.Done{Type: protocol.TypeDone, Findings: n}); err != nil {
		return 1
	}
	return 0
}

// RunFix makes the changes and reports each as an action.
func RunFix(ctx context.Context, cfg FixConfig, emit func(protocol.Action)) {
	c := cfg.Check.withDefaults()
	if cfg.BridgeUp != "" {
		emit(bridgeUp(c, cfg.BridgeUp))
	}
	if cfg.ConntrackMax > 0 {
		emit(setConntrackMax(c, cfg.ConntrackMax))
		if cfg.PersistDir != "" {
			emit(persistConntrackMax(c, cfg.PersistDir, cfg.ConntrackMax))
		}
	}
	if len(cfg.Kill) > 0 {
		killStale(ctx, c, cfg.Kill, cfg.Grace, emit)
	}
}

func setConntrackMax(c Config, n uint64) protocol.Action {
	path := filepath.Join(c.Proc, "sys", "net", "netfilter", "nf_conntrack_max")
	a := protocol.Action{Action: "conntrack-max", Target: "net.netfilter.nf_conntrack_max", Data: map[string]any{"path": path, "requested": n}}
	cur, err := readUint(path)
	if err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("reading %s: %v", path, err)
		return a
	}
	a.Data["before"] = cur
	if cur >= n {
		a.Result, a.Message = protocol.ActionSkipped, fmt.Sprintf("nf_conntrack_max is already %d (>= %d): not lowered", cur, n)
		return a
	}
	if err := os.WriteFile(path, []byte(strconv.FormatUint(n, 10)+"\n"), 0o644); err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("writing %s: %v", path, err)
		return a
	}
	after, err := readUint(path)
	if err != nil || after != n {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("wrote %d to %s but it reads %d (%v)", n, path, after, err)
		return a
	}
	a.Data["after"] = after
	a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("nf_conntrack_max raised from %d to %d", cur, n)
	return a
}

func persistConntrackMax(c Config, dir string, n uint64) protocol.Action {
	file := filepath.Join(dir, ConntrackPersistFile)
	path := filepath.Join(c.HostRoot, file)
	a := protocol.Action{Action: "conntrack-persist", Target: file, Data: map[string]any{"file": file, "value": n}}
	content := fmt.Sprintf("# Written by kubectl netdiag node check --fix: the recommended conntrack table size (MemTotal/32).\nnet.netfilter.nf_conntrack_max = %d\n", n)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("creating %s: %v", dir, err)
		return a
	}
	tmp := path + ".netdiag-tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("writing %s: %v", file, err)
		return a
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("writing %s: %v", file, err)
		return a
	}
	a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("persisted net.netfilter.nf_conntrack_max = %d in %s", n, file)
	return a
}

// staleTarget is a process the stale check confirmed.
type staleTarget struct {
	PodUID, ContainerID string
}

// killStale runs the stale check, and ends only the requested PIDs that it
// reports as stale processes of the pod, each re-verified (same pod UID,
// same unknown container, same start time) right before every signal.
func killStale(ctx context.Context, c Config, pids []int, grace time.Duration, emit func(protocol.Action)) {
	check := c
	check.Checks = []string{CheckStale}
	confirmed := map[int]staleTarget{}
	err := Run(ctx, check, func(f protocol.Finding) {
		if f.Check != CheckStale || (f.Severity != protocol.SeverityWarn && f.Severity != protocol.SeverityFail) {
			return
		}
		pid, ok := f.Data["pid"].(int)
		if !ok {
			return
		}
		cid, _ := f.Data["containerID"].(string)
		uid, _ := f.Data["podUID"].(string)
		if cid != "" && uid != "" {
			confirmed[pid] = staleTarget{PodUID: uid, ContainerID: cid}
		}
	})
	for _, pid := range pids {
		a := protocol.Action{Action: "kill", Target: strconv.Itoa(pid), Data: map[string]any{"pid": pid}}
		t, ok := confirmed[pid]
		switch {
		case err != nil && !ok:
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("the stale check could not run (%v): pid %d not signalled", err, pid)
		case !ok:
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("pid %d is not a stale process of pod UID %s: not signalled", pid, normalizeUID(c.PodUID))
		case normalizeUID(t.PodUID) != normalizeUID(c.PodUID):
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("pid %d belongs to pod UID %s, not %s: not signalled", pid, t.PodUID, c.PodUID)
		default:
			a.Data["containerID"] = t.ContainerID
			a.Data["podUID"] = t.PodUID
			sig, err := endProcess(ctx, c.Proc, pid, t, grace)
			if sig != "" {
				a.Data["signal"] = sig
			}
			if err != nil {
				a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("pid %d: %v", pid, err)
			} else {
				a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("stale process %d of container %s ended (%s)", pid, shortID(t.ContainerID), sig)
			}
		}
		emit(a)
	}
}

// sameStale says whether pid is still the process of the stale container
// t that started at start.
func sameStale(proc string, pid int, t staleTarget, start uint64) bool {
	lines, err := readCgroup(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false
	}
	p, ok := podProcessFromCgroup(lines)
	if !ok || normalizeUID(p.PodUID) != normalizeUID(t.PodUID) || p.ContainerID != t.ContainerID {
		return false
	}
	s, state, err := procStart(proc, pid)
	return err == nil && s == start && state != "Z"
}

// procStart reads a process's start time (clock ticks after boot) and
// state from proc/PID/stat.
func procStart(proc string, pid int) (uint64, string, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3, starttime field 22.
	if len(f) < 20 {
		return 0, "", fmt.Errorf("malformed stat")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err
}

// gone says whether the process exited (missing, or a zombie).
func gone(proc string, pid int, start uint64) bool {
	s, state, err := procStart(proc, pid)
	return err != nil || s != start || state == "Z" || state == "X"
}

// endProcess sends SIGTERM, waits up to grace, then SIGKILL; each signal
// only after checking the PID is still the same stale process.
func endProcess(ctx context.Context, proc string, pid int, t staleTarget, grace time.Duration) (string, error) {
	start, _, err := procStart(proc, pid)
	if err != nil {
		return "", fmt.Errorf("already gone")
	}
	if !sameStale(proc, pid, t, start) {
		return "", fmt.Errorf("no longer a process of container %s: not signalled", shortID(t.ContainerID))
	}
	if err := signalProcess(pid, syscall.SIGTERM); err != nil {
		return "", fmt.Errorf("SIGTERM: %v", err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if gone(proc, pid, start) {
			return "SIGTERM", nil
		}
		select {
		case <-ctx.Done():
			return "SIGTERM", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if gone(proc, pid, start) {
		return "SIGTERM", nil
	}
	if !sameStale(proc, pid, t, start) {
		return "SIGTERM", nil
	}
	if err := signalProcess(pid, syscall.SIGKILL); err != nil {
		return "SIGTERM", fmt.Errorf("SIGKILL: %v", err)
	}
	for range 50 {
		if gone(proc, pid, start) {
			return "SIGKILL", nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "SIGKILL", fmt.Errorf("still running 5s after SIGKILL")
}
