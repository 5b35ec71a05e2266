package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// takeOver ends the other helper processes of this container that carry
// the argument --id=ID: the earlier segment of a capture whose exec stream
// broke, which the plugin resumes with a new helper. SIGTERM, then SIGKILL
// after grace; it returns once they are gone (or after grace and one more
// second), with how many there were. No two helpers write for one capture.
func takeOver(procRoot, id string, grace time.Duration) int {
	if id == "" {
		return 0
	}
	self := os.Getpid()
	find := func() []int { return processesWithArg(procRoot, self, "--id="+id) }
	prev := find()
	for _, pid := range prev {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	end := time.Now().Add(grace)
	for len(find()) > 0 && time.Now().Before(end) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range find() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	end = time.Now().Add(time.Second)
	for len(find()) > 0 && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
	return len(prev)
}

// processesWithArg lists the processes other than self that run this
// executable (so: in this container) with arg among their arguments.
func processesWithArg(procRoot string, self int, arg string) []int {
	var out []int
	for _, p := range siblings(procRoot, self) {
		cmdline, err := os.ReadFile(filepath.Join(p.dir, "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0}) {
			if string(a) == arg {
				out = append(out, p.pid)
				break
			}
		}
	}
	return out
}
