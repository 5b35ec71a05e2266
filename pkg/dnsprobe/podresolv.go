package dnsprobe

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// helperName is the helper's binary: its own processes are skipped when
// looking for the pod's.
const helperName = "netdiag-helper"

// autoResolvConf finds the pod's resolv.conf from the helper's ephemeral
// container, which shares the PID namespace of the target container but
// has its own root: first /etc/resolv.conf as the pod's processes see it
// (PROC/PID/root/etc/resolv.conf, lowest PID first, the helper's own
// processes skipped), then the helper's own (ownPath), which the runtime
// mounts from the pod sandbox's file into every container of the pod. It
// returns the path it read, what it parsed, and why each path tried
// before could not be read.
//
// Reading another process's root needs ptrace read access: the same uid
// and no capability the reader lacks, or CAP_SYS_PTRACE. The helper's
// ephemeral container runs as root with NET_RAW and NET_ADMIN only, so it
// reads the root of an application that runs as root with every
// capability dropped, and no other.
func autoResolvConf(proc, ownPath string, self int) (string, Conf, []string, error) {
	var tried []string
	for _, pid := range pids(proc) {
		if pid == self || isHelper(proc, pid) {
			continue
		}
		path := filepath.Join(proc, strconv.Itoa(pid), "root", "etc", "resolv.conf")
		c, err := readResolvConf(path)
		if err == nil {
			return path, c, tried, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %s", path, reason(err)))
	}
	c, err := readResolvConf(ownPath)
	if err == nil {
		return ownPath, c, tried, nil
	}
	tried = append(tried, fmt.Sprintf("%s: %s", ownPath, reason(err)))
	return "", Conf{}, tried, fmt.Errorf("no resolv.conf could be read (tried %d)", len(tried))
}

func reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission denied (reading another process's root needs the same uid and capabilities, or CAP_SYS_PTRACE)"
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	}
	return err.Error()
}

func pids(proc string) []int {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// isHelper tells whether pid runs the helper (cmdline is readable
// without ptrace access).
func isHelper(proc string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(b, []byte{0})
	return filepath.Base(string(argv0)) == helperName
}
