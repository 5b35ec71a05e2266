package main

import (
	"bytes"
	"context"
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
			if st.Dev == selfExe.Dev && st.Ino == selfExe.Ino {
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
