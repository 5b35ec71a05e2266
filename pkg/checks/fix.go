package checks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// ConntrackPersistFile is the file `fix --conntrack-max` writes in
// --persist-dir.
const ConntrackPersistFile = protocol.ConntrackPersistFile

// DefaultKillGrace is how long `fix --kill` waits after SIGTERM before
// SIGKILL.
const DefaultKillGrace = protocol.DefaultKillGrace

// FixConfig is what `netdiag-helper fix` was asked to do. The check flags
// (--proc, --host-root, --pod-uid, --known-containers, --runtime-endpoint,
// --pods-json, ...) are accepted too, parsed by the same flag set (a value
// is never mistaken for a flag): --kill runs the stale check with them to
// confirm each PID before it signals it.
type FixConfig struct {
	BridgeUp     string
	ConntrackMax uint64
	PersistDir   string
	Kill         []int
	// KillStart is, per PID of Kill, the start time (clock ticks after
	// boot, data.startTicks of the stale finding) of the process the user
	// approved; a PID without one is not signalled.
	KillStart map[int]uint64
	Grace     time.Duration
	Check     Config
}

// FixConfigFrom turns a parsed fix request into the engine's FixConfig.
func FixConfigFrom(req protocol.FixRequest) (FixConfig, error) {
	check, err := ConfigFrom(req.Check)
	if err != nil {
		return FixConfig{}, err
	}
	cfg := FixConfig{BridgeUp: req.BridgeUp, ConntrackMax: req.ConntrackMax, PersistDir: req.PersistDir, Grace: req.Grace, Check: check, KillStart: map[int]uint64{}}
	for _, k := range req.Kill {
		cfg.Kill = append(cfg.Kill, k.PID)
		if k.StartTicks > 0 {
			cfg.KillStart[k.PID] = k.StartTicks
		}
	}
	return cfg, nil
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
		killStale(ctx, c, cfg.Kill, cfg.KillStart, cfg.Grace, emit)
	}
}

func setConntrackMax(c Config, n uint64) protocol.Action {
	var d protocol.ActionData
	a := setConntrackMaxInto(c, n, &d)
	a.Data = protocol.EncodeData(d)
	return a
}

func setConntrackMaxInto(c Config, n uint64, d *protocol.ActionData) protocol.Action {
	path := filepath.Join(c.Proc, "sys", "net", "netfilter", "nf_conntrack_max")
	a := protocol.Action{Action: "conntrack-max", Target: "net.netfilter.nf_conntrack_max"}
	d.Path, d.Requested = path, n
	cur, err := readUint(path)
	if err != nil {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf("reading %s: %v", path, err)
		return a
	}
	d.Before = ptr(cur)
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
	d.After = ptr(after)
	a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("nf_conntrack_max raised from %d to %d", cur, n)
	return a
}

// persistConntrackMax writes DIR/90-netdiag-conntrack.conf below the host
// root, and nothing else: a temp file with a unique name in DIR itself
// (O_EXCL|O_NOFOLLOW, so no file or link already there is followed or
// reused), fsynced, renamed into place, and DIR fsynced. DIR must exist
// (the node pod mounts only the node's /etc/sysctl.d writable).
func persistConntrackMax(c Config, dir string, n uint64) protocol.Action {
	a := persistConntrackMaxInto(c, dir, n)
	a.Data = protocol.EncodeData(protocol.ActionData{File: a.Target, Value: n})
	return a
}

func persistConntrackMaxInto(c Config, dir string, n uint64) protocol.Action {
	file := filepath.Join(dir, ConntrackPersistFile)
	hostDir := filepath.Join(c.HostRoot, dir)
	path := filepath.Join(hostDir, ConntrackPersistFile)
	a := protocol.Action{Action: "conntrack-persist", Target: file}
	content := fmt.Sprintf("# Written by kubectl netdiag node check --fix: the recommended conntrack table size (MemTotal/32).\nnet.netfilter.nf_conntrack_max = %d\n", n)
	fail := func(format string, args ...any) protocol.Action {
		a.Result, a.Message = protocol.ActionFailed, fmt.Sprintf(format, args...)
		return a
	}
	if fi, err := os.Lstat(hostDir); err != nil {
		return fail("%s on the node: %v (nf_conntrack_max was raised, but not persisted)", dir, err)
	} else if !fi.IsDir() {
		return fail("%s on the node is not a directory (nf_conntrack_max was raised, but not persisted)", dir)
	}
	tmp, f, err := createUniqueTemp(hostDir, "."+ConntrackPersistFile+".netdiag-")
	if err != nil {
		return fail("writing %s: %v", file, err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmp)
		}
	}()
	_, werr := f.WriteString(content)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fail("writing %s: %v", file, werr)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail("writing %s: %v", file, err)
	}
	done = true
	syncDir(hostDir)
	a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("persisted net.netfilter.nf_conntrack_max = %d in %s", n, file)
	return a
}

// createUniqueTemp creates a new file in dir, opened O_EXCL|O_NOFOLLOW with
// a random name after prefix.
func createUniqueTemp(dir, prefix string) (string, *os.File, error) {
	for range 16 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, err
		}
		name := filepath.Join(dir, prefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return name, f, nil
	}
	return "", nil, fmt.Errorf("no unique temporary name in %s", dir)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// staleTarget is a process the stale check confirmed.
type staleTarget struct {
	PodUID, ContainerID string
}

// killStale runs the stale check, and ends only the requested PIDs that it
// reports as stale processes of the pod and whose start time is the one
// the user approved. Each process is held by a pidfd from before its last
// check to its last signal, so a PID reused meanwhile is never signalled.
// The processes are ended concurrently: many stuck ones take one grace
// period, not one each.
func killStale(ctx context.Context, c Config, pids []int, approved map[int]uint64, grace time.Duration, emit func(protocol.Action)) {
	check := c
	check.Checks = []string{CheckStale}
	confirmed := map[int]staleTarget{}
	var rtErr string
	err := Run(ctx, check, func(f protocol.Finding) {
		if f.Check != CheckStale || (f.Severity != protocol.SeverityWarn && f.Severity != protocol.SeverityFail) {
			return
		}
		var d protocol.StaleData
		if err := f.DecodeData(&d); err != nil {
			return
		}
		if d.RuntimeReachable != nil && !*d.RuntimeReachable {
			rtErr = d.RuntimeError
			if rtErr == "" {
				rtErr = "unknown error"
			}
			return
		}
		pid, cid, uid := d.PID, d.ContainerID, d.PodUID
		if pid <= 0 {
			return
		}
		if cid != "" && uid != "" {
			confirmed[pid] = staleTarget{PodUID: uid, ContainerID: cid}
		}
	})
	actions := make([]protocol.Action, len(pids))
	var wg sync.WaitGroup
	for i, pid := range pids {
		a := protocol.Action{Action: "kill", Target: strconv.Itoa(pid)}
		d := protocol.ActionData{PID: pid}
		t, ok := confirmed[pid]
		start, haveStart := approved[pid]
		if haveStart {
			d.ApprovedStartTicks = ptr(start)
		}
		switch {
		case rtErr != "":
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("%s (%s): pid %d not signalled", RuntimeUnreachable, rtErr, pid)
		case err != nil && !ok:
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("the stale check could not run (%v): pid %d not signalled", err, pid)
		case !ok:
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("pid %d is not a stale process of pod UID %s: not signalled", pid, normalizeUID(c.PodUID))
		case normalizeUID(t.PodUID) != normalizeUID(c.PodUID):
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("pid %d belongs to pod UID %s, not %s: not signalled", pid, t.PodUID, c.PodUID)
		case !haveStart:
			a.Result, a.Message = protocol.ActionRefused, fmt.Sprintf("pid %d: no approved start time (give --kill PID:STARTTICKS, the data.startTicks of the stale finding the user approved): not signalled", pid)
		default:
			d.ContainerID = t.ContainerID
			d.PodUID = t.PodUID
			wg.Add(1)
			go func(i int, pid int, t staleTarget, a protocol.Action, d protocol.ActionData) {
				defer wg.Done()
				sig, res, err := endProcess(ctx, c.Proc, pid, t, start, grace)
				d.Signal = sig
				a.Data = protocol.EncodeData(d)
				switch {
				case err != nil:
					a.Result, a.Message = res, fmt.Sprintf("pid %d: %v", pid, err)
				default:
					a.Result, a.Message = protocol.ActionDone, fmt.Sprintf("stale process %d of container %s ended (%s)", pid, shortID(t.ContainerID), sig)
				}
				actions[i] = a
			}(i, pid, t, a, d)
			continue
		}
		a.Data = protocol.EncodeData(d)
		actions[i] = a
	}
	wg.Wait()
	for _, a := range actions {
		emit(a)
	}
}

// sameStale says whether pid is still a process of the stale container t
// that started at start.
func sameStale(proc string, pid int, t staleTarget, start uint64) error {
	lines, err := readCgroup(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return fmt.Errorf("already gone")
	}
	p, ok := podProcessFromCgroup(lines)
	if !ok || normalizeUID(p.PodUID) != normalizeUID(t.PodUID) || p.ContainerID != t.ContainerID {
		return fmt.Errorf("no longer a process of container %s: not signalled", shortID(t.ContainerID))
	}
	s, state, err := procStart(proc, pid)
	switch {
	case err != nil || state == "Z" || state == "X":
		return fmt.Errorf("already gone")
	case s != start:
		return fmt.Errorf("started at tick %d, not at tick %d as the process the user approved (the PID was reused): not signalled", s, start)
	}
	return nil
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

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time (100 on
// every Linux architecture Kubernetes runs on).
const clockTicks = 100

// startedAt turns a start time in clock ticks after boot into wall-clock
// time, from the boot time in proc/stat.
func startedAt(proc string, ticks uint64) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return time.Time{}, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			bt, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(bt, 0).Add(time.Duration(ticks) * time.Second / clockTicks), true
		}
	}
	return time.Time{}, false
}

// endProcess holds pid by a pidfd, checks that it is still the stale
// process the user approved (same pod, container and start time), then
// sends SIGTERM through the pidfd, waits up to grace for it to exit, and
// sends SIGKILL the same way. The result says how an error counts:
// refused (nothing was signalled) or failed.
func endProcess(ctx context.Context, proc string, pid int, t staleTarget, start uint64, grace time.Duration) (string, string, error) {
	pf, err := openPidfd(pid)
	if err != nil {
		return "", protocol.ActionRefused, err
	}
	defer pf.Close()
	// Read /proc after the pidfd is open, then make sure the process it
	// holds is still there: what was read was that process.
	if err := sameStale(proc, pid, t, start); err != nil {
		return "", protocol.ActionRefused, err
	}
	if err := pf.Signal(0); err != nil {
		return "", protocol.ActionRefused, fmt.Errorf("already gone")
	}
	if err := pf.Signal(syscall.SIGTERM); err != nil {
		return "", protocol.ActionFailed, fmt.Errorf("SIGTERM: %v", err)
	}
	exited, err := pf.Wait(ctx, grace)
	if exited {
		return "SIGTERM", "", nil
	}
	if err != nil {
		return "SIGTERM", protocol.ActionFailed, err
	}
	if err := pf.Signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return "SIGTERM", "", nil
		}
		return "SIGTERM", protocol.ActionFailed, fmt.Errorf("SIGKILL: %v", err)
	}
	if exited, _ := pf.Wait(context.WithoutCancel(ctx), 5*time.Second); exited {
		return "SIGKILL", "", nil
	}
	return "SIGKILL", protocol.ActionFailed, fmt.Errorf("still running 5s after SIGKILL")
}
