package checks

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// podProcess is a process whose cgroup names a pod.
type podProcess struct {
	PID         int
	PodUID      string
	ContainerID string // empty for a process in the pod's own cgroup
	Cgroup      string
	Cmdline     string
}

// scanPodProcesses reads proc/*/cgroup and groups the processes by the pod
// UID their cgroup names. Processes that exit during the scan are skipped.
func scanPodProcesses(proc string) (map[string][]podProcess, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	out := map[string][]podProcess{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		lines, err := readCgroup(filepath.Join(proc, e.Name(), "cgroup"))
		if err != nil {
			continue // gone, or not readable: nothing to say about it
		}
		p, ok := podProcessFromCgroup(lines)
		if !ok {
			continue
		}
		p.PID = pid
		p.Cmdline = readCmdline(filepath.Join(proc, e.Name(), "cmdline"))
		out[p.PodUID] = append(out[p.PodUID], p)
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].PID < ps[j].PID })
	}
	return out, nil
}

// podProcessFromCgroup picks the pod and container a process belongs to from
// its cgroup lines: the first line naming a container wins, else the first
// naming a pod.
func podProcessFromCgroup(lines []cgroupLine) (podProcess, bool) {
	var found podProcess
	ok := false
	for _, l := range lines {
		uid, cid := parseCgroupPath(l.Path)
		if uid == "" {
			continue
		}
		if cid != "" {
			return podProcess{PodUID: uid, ContainerID: cid, Cgroup: l.Path}, true
		}
		if !ok {
			found, ok = podProcess{PodUID: uid, Cgroup: l.Path}, true
		}
	}
	return found, ok
}

// podPIDsFromCgroupfs is the fallback when no /proc entry names the pod: the
// cgroup.procs files of pod<uid> directories below sys/fs/cgroup.
func podPIDsFromCgroupfs(sys, uid string) []int {
	root := filepath.Join(sys, "fs", "cgroup")
	uid = normalizeUID(uid)
	var pids []int
	seen := map[int]bool{}
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if strings.Count(rel, string(filepath.Separator)) > 6 {
			return fs.SkipDir
		}
		if podUIDFromSegment(d.Name()) != uid {
			return nil
		}
		_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil && !seen[n] {
					seen[n] = true
					pids = append(pids, n)
				}
			}
			return nil
		})
		return fs.SkipDir
	})
	sort.Ints(pids)
	return pids
}

// listener is a socket a process owns, from its network namespace's
// /proc/PID/net tables.
type listener = protocol.Listener

// socketInodes returns the inodes of the sockets in proc/PID/fd.
func socketInodes(proc string, pid int) (map[uint64]bool, error) {
	dir := filepath.Join(proc, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if n, ok := parseSocketLink(target); ok {
			out[n] = true
		}
	}
	return out, nil
}

// parseSocketLink parses an fd symlink target "socket:[12345]".
func parseSocketLink(s string) (uint64, bool) {
	rest, ok := strings.CutPrefix(s, "socket:[")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}

// processListeners lists the listening TCP sockets and bound UDP sockets the
// process holds: the entries of its namespace's tables whose inode is one of
// its fds.
func processListeners(proc string, pid int) ([]listener, error) {
	inodes, err := socketInodes(proc, pid)
	if err != nil {
		return nil, err
	}
	var out []listener
	var errs []error
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		ents, err := readProcNet(filepath.Join(proc, strconv.Itoa(pid), "net", proto))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			if !inodes[e.Inode] || e.Inode == 0 {
				continue
			}
			tcp := strings.HasPrefix(proto, "tcp")
			if tcp && e.State != tcpListen {
				continue
			}
			if !tcp && e.Local.Port() == 0 {
				continue
			}
			out = append(out, listener{
				Protocol: strings.TrimSuffix(proto, "6"),
				Address:  e.Local.Addr().String(),
				Port:     int(e.Local.Port()),
				Inode:    e.Inode,
			})
		}
	}
	return out, errors.Join(errs...)
}
