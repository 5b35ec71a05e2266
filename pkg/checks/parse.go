package checks

// Parsers of the kernel's text files. Each file has a readX(path) that opens
// it and a parseX(io.Reader) that does the work, so the parsers are tested on
// fixture files under testdata/ and fuzzed.

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// maxLine bounds one line of a kernel file (a /proc/PID/cgroup line of a
// deeply nested systemd slice is the longest we expect).
const maxLine = 1 << 20

func newScanner(r io.Reader) *bufio.Scanner {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64*1024), maxLine)
	return s
}

// cgroupLine is one line of /proc/PID/cgroup: "ID:controllers:path".
type cgroupLine struct {
	ID          int
	Controllers []string
	Path        string
}

func readCgroup(path string) ([]cgroupLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCgroup(f)
}

// parseCgroup parses /proc/PID/cgroup (cgroup v1 lines name their
// controllers, the v2 line is "0::/path"). Malformed lines are errors.
func parseCgroup(r io.Reader) ([]cgroupLine, error) {
	var out []cgroupLine
	s := newScanner(r)
	for s.Scan() {
		line := s.Text()
		if line == "" {
			continue
		}
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("cgroup line %q: want ID:controllers:path", line)
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("cgroup line %q: want ID:controllers:path", line)
		}
		n, err := strconv.Atoi(id)
		if err != nil {
			return nil, fmt.Errorf("cgroup line %q: hierarchy ID is not a number", line)
		}
		var cs []string
		if ctrls != "" {
			cs = strings.Split(ctrls, ",")
		}
		out = append(out, cgroupLine{ID: n, Controllers: cs, Path: path})
	}
	return out, s.Err()
}

var (
	// podUIDPattern matches a pod UID: a UUID, or the 32 hex digits of a
	// static pod's config hash; systemd writes the dashes as underscores.
	podUIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}$|^[0-9a-fA-F]{32}$`)
	hex64         = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// normalizeUID lower-cases a pod UID and turns systemd's underscores back
// into dashes, so "pod1a2b_..." and "1A2B-..." compare equal.
func normalizeUID(uid string) string {
	return strings.ToLower(strings.ReplaceAll(uid, "_", "-"))
}

// normalizeContainerID strips the runtime scheme the API reports
// ("containerd://", "cri-o://", "docker://") and lower-cases the ID.
func normalizeContainerID(id string) string {
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	return strings.ToLower(strings.TrimSpace(id))
}

// parseCgroupPath finds the pod UID and the container ID in a cgroup path.
// It knows both kubelet cgroup drivers:
//
//	cgroupfs: /kubepods/besteffort/pod<uid>/<64 hex>
//	systemd:  /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
//
// and the runtimes' scope names cri-containerd-, crio- and docker-<id>.scope.
// CRI-O's conmon-<id> scopes are not containers and yield no container ID.
// Either result is empty when the path does not name it.
func parseCgroupPath(path string) (podUID, containerID string) {
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		if u := podUIDFromSegment(seg); u != "" {
			podUID = u
			containerID = "" // a container lives below its pod
			continue
		}
		if podUID == "" {
			continue
		}
		if id := containerIDFromSegment(seg); id != "" {
			containerID = id
		}
	}
	return podUID, containerID
}

func podUIDFromSegment(seg string) string {
	var cand string
	switch {
	case strings.HasSuffix(seg, ".slice"):
		i := strings.LastIndex(seg, "-pod")
		if i < 0 {
			return ""
		}
		cand = strings.TrimSuffix(seg[i+len("-pod"):], ".slice")
	case strings.HasPrefix(seg, "pod"):
		cand = seg[len("pod"):]
	default:
		return ""
	}
	if !podUIDPattern.MatchString(cand) {
		return ""
	}
	return normalizeUID(cand)
}

func containerIDFromSegment(seg string) string {
	if hex64.MatchString(seg) {
		return strings.ToLower(seg)
	}
	if !strings.HasSuffix(seg, ".scope") {
		return ""
	}
	s := strings.TrimSuffix(seg, ".scope")
	for _, p := range []string{"cri-containerd-", "crio-", "docker-"} {
		if id, ok := strings.CutPrefix(s, p); ok && hex64.MatchString(id) {
			return strings.ToLower(id)
		}
	}
	return ""
}

// socketEntry is one line of /proc/PID/net/{tcp,tcp6,udp,udp6}.
type socketEntry struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
	// State is the kernel's TCP state number (0x0A = LISTEN; unconnected
	// UDP sockets show 0x07, CLOSE).
	State uint8
	UID   uint32
	Inode uint64
}

// tcpListen is the TCP_LISTEN state in /proc/net/tcp.
const tcpListen = 0x0A

func readProcNet(path string) ([]socketEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProcNet(f)
}

// parseProcNet parses /proc/net/tcp, tcp6, udp or udp6. The first line is a
// header. Addresses are hex words in the kernel's (host) byte order.
func parseProcNet(r io.Reader) ([]socketEntry, error) {
	var out []socketEntry
	s := newScanner(r)
	first := true
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if first {
			first = false
			if strings.HasPrefix(line, "sl") {
				continue
			}
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 10 {
			return nil, fmt.Errorf("socket line %q: want at least 10 fields", line)
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf("socket line %q: local address: %w", line, err)
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, fmt.Errorf("socket line %q: remote address: %w", line, err)
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("socket line %q: state: %w", line, err)
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("socket line %q: uid: %w", line, err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("socket line %q: inode: %w", line, err)
		}
		out = append(out, socketEntry{Local: local, Remote: remote, State: uint8(st), UID: uint32(uid), Inode: inode})
	}
	return out, s.Err()
}

// parseHexAddrPort parses "0100007F:1F90" (IPv4) or a 32-digit IPv6 address
// and a hex port. Each 32-bit word of the address is in host byte order.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q: want ADDR:PORT", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port: %w", s, err)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%q: address is not 8 or 32 hex digits", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

func readMeminfo(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMeminfo(f)
}

// parseMeminfo parses /proc/meminfo into values in kB (the unit the file
// uses; the few unitless lines such as HugePages_Total are counts).
func parseMeminfo(r io.Reader) (map[string]uint64, error) {
	out := map[string]uint64{}
	s := newScanner(r)
	for s.Scan() {
		line := s.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("meminfo line %q: want KEY: VALUE", line)
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return nil, fmt.Errorf("meminfo line %q: no value", line)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("meminfo line %q: %w", line, err)
		}
		out[strings.TrimSpace(k)] = n
	}
	return out, s.Err()
}

// conntrackStat is /proc/net/stat/nf_conntrack summed over CPUs.
type conntrackStat struct {
	CPUs int
	// Totals holds each column summed over CPUs, except "entries" (the
	// global table size, repeated on every line), which is its maximum.
	Totals map[string]uint64
}

func readConntrackStat(path string) (conntrackStat, error) {
	f, err := os.Open(path)
	if err != nil {
		return conntrackStat{}, err
	}
	defer f.Close()
	return parseConntrackStat(f)
}

// parseConntrackStat parses /proc/net/stat/nf_conntrack: a header line
// naming the columns (they vary between kernels), then one line of hex
// values per CPU.
func parseConntrackStat(r io.Reader) (conntrackStat, error) {
	st := conntrackStat{Totals: map[string]uint64{}}
	s := newScanner(r)
	var cols []string
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 0 {
			continue
		}
		if cols == nil {
			cols = f
			continue
		}
		if len(f) != len(cols) {
			return conntrackStat{}, fmt.Errorf("nf_conntrack stat line %d has %d columns, the header names %d", st.CPUs+2, len(f), len(cols))
		}
		for i, v := range f {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				return conntrackStat{}, fmt.Errorf("nf_conntrack stat column %s: %q is not hex", cols[i], v)
			}
			if cols[i] == "entries" {
				st.Totals[cols[i]] = max(st.Totals[cols[i]], n)
			} else {
				st.Totals[cols[i]] += n
			}
		}
		st.CPUs++
	}
	if err := s.Err(); err != nil {
		return conntrackStat{}, err
	}
	if cols == nil {
		return conntrackStat{}, fmt.Errorf("nf_conntrack stat file is empty")
	}
	return st, nil
}

// kmsgRecord is one kernel log message.
type kmsgRecord struct {
	// Priority is the syslog priority (facility*8+level), -1 when unknown.
	Priority int
	Seq      uint64
	// Usec is the time since boot in microseconds, -1 when the line had no
	// timestamp.
	Usec    int64
	Message string
}

// parseKmsg parses kernel log text: /dev/kmsg records
// ("pri,seq,usec,flags[,...];message", continuation lines starting with a
// space are skipped) or plain dmesg lines ("[  123.456789] message", or no
// timestamp at all).
func parseKmsg(r io.Reader) ([]kmsgRecord, error) {
	var out []kmsgRecord
	s := newScanner(r)
	for s.Scan() {
		line := s.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, " ") {
			continue
		}
		out = append(out, parseKmsgLine(line))
	}
	return out, s.Err()
}

func parseKmsgLine(line string) kmsgRecord {
	rec := kmsgRecord{Priority: -1, Usec: -1, Message: line}
	if head, msg, ok := strings.Cut(line, ";"); ok {
		f := strings.Split(head, ",")
		if len(f) >= 3 {
			pri, err1 := strconv.Atoi(f[0])
			seq, err2 := strconv.ParseUint(f[1], 10, 64)
			usec, err3 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil && err3 == nil && pri >= 0 && usec >= 0 {
				return kmsgRecord{Priority: pri, Seq: seq, Usec: usec, Message: msg}
			}
		}
	}
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if ts, msg, ok := strings.Cut(rest, "]"); ok {
			if usec, ok := parseDmesgSeconds(strings.TrimSpace(ts)); ok {
				rec.Usec = usec
				rec.Message = strings.TrimPrefix(msg, " ")
			}
		}
	}
	return rec
}

// parseDmesgSeconds parses dmesg's "123.456789" seconds since boot.
func parseDmesgSeconds(s string) (int64, bool) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return 0, false
	}
	usec := n * 1_000_000
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return 0, false
		}
		for i := len(frac); i < 6; i++ {
			f *= 10
		}
		usec += int64(f)
	}
	return usec, true
}

// readUint reads a file holding one decimal number (a sysctl).
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func readUptime(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseUptime(f)
}

// parseUptime parses /proc/uptime: seconds since boot, then idle seconds.
func parseUptime(r io.Reader) (float64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("uptime file is empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("uptime %q is not a number of seconds", f[0])
	}
	return v, nil
}

// readCmdline returns /proc/PID/cmdline with its NUL separators turned into
// spaces.
func readCmdline(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return parseCmdline(b)
}

func parseCmdline(b []byte) string {
	return strings.TrimSpace(strings.Join(strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 }), " "))
}
