package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// idleScanInterval is how often idle looks for other helper processes.
const idleScanInterval = 2 * time.Second

// idle sleeps until ctx ends (SIGTERM/SIGINT) or until timeout passed with
// no activity. Activity is another helper process in this PID namespace:
// `capture` and `check` are exec'd into the same container, so while one
// runs the container stays. Only helper processes count (same executable
// or same command name): in a pod that shares its PID namespace, or a node
// pod with hostPID, other processes are always there and would keep the
// container forever. A timeout of 0 never expires.
func idle(ctx context.Context, procRoot string, timeout time.Duration) {
	if timeout == 0 {
		<-ctx.Done()
		return
	}
	interval := idleScanInterval
	if timeout/2 < interval {
		interval = timeout / 2
	}
	if interval < 10*time.Millisecond {
		interval = 10 * time.Millisecond
	}
	self := os.Getpid()
	lastActive := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if otherHelperRunning(procRoot, self) {
				lastActive = now
			} else if now.Sub(lastActive) >= timeout {
				return
			}
		}
	}
}

// otherHelperRunning says whether a process other than self runs the same
// executable (or has the same command name) as self.
func otherHelperRunning(procRoot string, self int) bool {
	selfDir := filepath.Join(procRoot, strconv.Itoa(self))
	var selfExe syscall.Stat_t
	haveExe := syscall.Stat(filepath.Join(selfDir, "exe"), &selfExe) == nil
	selfComm, _ := os.ReadFile(filepath.Join(selfDir, "comm"))
	selfComm = bytes.TrimSpace(selfComm)

	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		var st syscall.Stat_t
		if haveExe && syscall.Stat(filepath.Join(dir, "exe"), &st) == nil {
			// A readiness probe (`active`) is no activity: it runs
			// every few seconds and would keep the pod forever.
			if st.Dev == selfExe.Dev && st.Ino == selfExe.Ino && helperCommand(dir) != "active" {
				return true
			}
			continue
		}
		// exe is unreadable (another user's process, or a kernel thread):
		// fall back to the command name.
		if len(selfComm) > 0 {
			comm, err := os.ReadFile(filepath.Join(dir, "comm"))
			if err == nil && bytes.Equal(bytes.TrimSpace(comm), selfComm) {
				return true
			}
		}
	}
	return false
}

// keepalive reads heartbeat bytes from in and returns when in ends (the
// plugin closed it: done on purpose), when no byte arrived for heartbeat
// (the plugin died: a killed kubectl gives no EOF), or when ctx ends. While
// it runs, it is the helper process that keeps a node pod's idle entrypoint
// from exiting. It says why it returned.
func keepalive(ctx context.Context, in io.Reader, heartbeat time.Duration) string {
	beats := make(chan struct{}, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		buf := make([]byte, 64)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				select {
				case beats <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(heartbeat)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return "signal"
		case <-ended:
			// A last byte may still sit in beats; EOF wins anyway.
			return "stdin-closed"
		case <-beats:
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(heartbeat)
		case <-timer.C:
			return "heartbeat"
		}
	}
}

// busyHelperRunning says whether a helper process other than self and other
// than idle or active ones (the entrypoint, a readiness probe) runs the
// same executable: a keepalive, capture, check or fix, i.e. a plugin is
// using this container.
func busyHelperRunning(procRoot string, self int) bool {
	return len(busyHelpers(procRoot, self)) > 0
}

// helperProc is one helper process of this container.
type helperProc struct {
	pid int
	cmd string
}

// busyHelpers lists the helper processes other than self running the same
// executable (so: in this container), except idle and active ones.
func busyHelpers(procRoot string, self int) []helperProc {
	var out []helperProc
	for _, p := range siblings(procRoot, self) {
		switch cmd := helperCommand(p.dir); cmd {
		case "", "idle", "active":
		default:
			out = append(out, helperProc{p.pid, cmd})
		}
	}
	return out
}

// helperProcDir is a process other than self that runs self's executable: a
// helper command of this container.
type helperProcDir struct {
	pid int
	dir string // procRoot/PID
}

// siblings lists the processes other than self that run the same
// executable as self.
func siblings(procRoot string, self int) []helperProcDir {
	var selfExe syscall.Stat_t
	if syscall.Stat(filepath.Join(procRoot, strconv.Itoa(self), "exe"), &selfExe) != nil {
		return nil
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var out []helperProcDir
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, "exe"), &st) != nil || st.Dev != selfExe.Dev || st.Ino != selfExe.Ino {
			continue
		}
		out = append(out, helperProcDir{pid, dir})
	}
	return out
}

// reapOrphans runs when a keepalive's plugin is gone (EOF or no heartbeat):
// unless another keepalive starts within wait (the plugin started a new
// one after a dropped connection), it ends the other helper commands of
// this container (a capture blocked writing to a stream nobody reads never
// sees its own heartbeat stop): SIGTERM, then SIGKILL after grace. It
// returns how many it ended.
func reapOrphans(procRoot string, wait, grace time.Duration) int {
	self := os.Getpid()
	deadline := time.Now().Add(wait)
	for {
		for _, p := range busyHelpers(procRoot, self) {
			if p.cmd == "keepalive" {
				return 0 // a successor holds the container
			}
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	orphans := busyHelpers(procRoot, self)
	for _, p := range orphans {
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
	}
	end := time.Now().Add(grace)
	for len(busyHelpers(procRoot, self)) > 0 && time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range busyHelpers(procRoot, self) {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	return len(orphans)
}

// helperCommand is the first argument of the process in dir (/proc/PID):
// the helper's command, "" when it cannot be read.
func helperCommand(dir string) string {
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return ""
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) < 2 {
		return ""
	}
	return string(args[1])
}
