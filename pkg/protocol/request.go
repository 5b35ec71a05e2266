package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The helper's commands take typed requests. The plugin builds a request
// and turns it into argv with Args (every value in --name=value form, so a
// value is never taken for a flag, and no shell ever sees it); the helper
// parses argv back into the same struct with ParseXRequest. Flag names are
// part of the contract: add flags, never rename them.

// UsageError is a command line the helper refuses (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// IsUsage says whether err is a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// PodInfo describes one pod on the node, as the plugin knows it from the
// API: CheckRequest.Pods, sent as --pods-json on standard input.
type PodInfo struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid,omitempty"`
	IP        net.IP `json:"ip,omitempty"`
	// MAC is the pod eth0's MAC when the caller knows it; the checks read
	// the real one from the pod's network namespace when they can.
	MAC string `json:"mac,omitempty"`
	// Containers are the container IDs the API reports for the pod
	// (status.containerStatuses[].containerID, with or without the
	// "containerd://" scheme).
	Containers []string `json:"containers,omitempty"`
}

// Label names the pod in findings: "ns/name", else its IP, else its UID.
func (p PodInfo) Label() string {
	switch {
	case p.Name != "" && p.Namespace != "":
		return p.Namespace + "/" + p.Name
	case p.Name != "":
		return p.Name
	case p.IP != nil:
		return p.IP.String()
	default:
		return "pod " + p.UID
	}
}

// Capture defaults and limits.
const (
	// DefaultSnaplen is tcpdump's default (and maximum) snapshot length.
	DefaultSnaplen = 262144
	// MaxSnaplen is the largest snapshot length accepted.
	MaxSnaplen = 262144
	// DefaultInterface is the pod's interface.
	DefaultInterface = "eth0"
	FormatPcap       = "pcap"
	FormatPcapNG     = "pcapng"
)

// CaptureRequest is `netdiag-helper capture`.
type CaptureRequest struct {
	Interface string
	// Filter is a tcpdump (pcap-filter) expression.
	Filter  string
	Snaplen int
	// Count, Duration and MaxBytes stop the capture; 0 means no limit.
	Count    int64
	Duration time.Duration
	MaxBytes int64
	// Format is FormatPcap or FormatPcapNG.
	Format string
	// Netns is a network namespace file to capture in; "" is the
	// helper's own.
	Netns string
	// Heartbeat stops the capture when no byte arrived on stdin for this
	// long; 0 disables it.
	Heartbeat time.Duration
	// ID names the capture across the segments of a resumed capture.
	ID string
	// Takeover first ends the container's other helpers with the same ID
	// (the segment whose stream broke): never two writers for one
	// capture.
	Takeover bool
	// Progress asks for a progress line on stderr this often while the
	// capture runs; 0 (the default) writes none.
	Progress time.Duration
}

// DefaultCaptureRequest is a capture of eth0, whole packets, pcap.
func DefaultCaptureRequest() CaptureRequest {
	return CaptureRequest{Interface: DefaultInterface, Snaplen: DefaultSnaplen, Format: FormatPcap}
}

func (r *CaptureRequest) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&r.Interface, "interface", "i", r.Interface, "interface to capture on")
	fs.StringVarP(&r.Filter, "filter", "f", r.Filter, "tcpdump (pcap-filter) expression, compiled by libpcap and attached in the kernel")
	fs.IntVarP(&r.Snaplen, "snaplen", "s", r.Snaplen, "bytes kept of each packet")
	fs.Int64VarP(&r.Count, "count", "c", r.Count, "stop after N packets (0: no limit)")
	fs.DurationVar(&r.Duration, "duration", r.Duration, "stop after this long, e.g. 30s (0: no limit)")
	fs.Int64Var(&r.MaxBytes, "max-bytes", r.MaxBytes, "stop before the packet data written exceeds N bytes (0: no limit)")
	fs.StringVar(&r.Format, "format", r.Format, "output format: pcap or pcapng")
	fs.StringVar(&r.Netns, "netns", r.Netns, "capture inside this network namespace, e.g. /proc/PID/ns/net")
	fs.DurationVar(&r.Heartbeat, "heartbeat", r.Heartbeat, "stop when no byte arrives on stdin for this long (0: off)")
	fs.StringVar(&r.ID, "id", r.ID, "names this capture across the segments of a resumed capture")
	fs.BoolVar(&r.Takeover, "takeover", r.Takeover, "first end this container's other helpers with the same --id (the segment whose stream broke)")
	fs.DurationVar(&r.Progress, "progress", r.Progress, "write a progress JSON line (packets, bytes, kernel drops) on stderr this often, e.g. 1s (0: none)")
}

// Validate checks the request; its messages name the flag.
func (r CaptureRequest) Validate() error {
	switch {
	case r.Interface == "":
		return usagef("--interface must not be empty")
	case r.Snaplen <= 0 || r.Snaplen > MaxSnaplen:
		return usagef("--snaplen must be between 1 and %d, not %d", MaxSnaplen, r.Snaplen)
	case r.Count < 0:
		return usagef("--count must not be negative, not %d", r.Count)
	case r.Duration < 0:
		return usagef("--duration must not be negative, not %s", r.Duration)
	case r.MaxBytes < 0:
		return usagef("--max-bytes must not be negative, not %d", r.MaxBytes)
	case r.Heartbeat < 0:
		return usagef("--heartbeat must not be negative, not %s", r.Heartbeat)
	case r.Format != FormatPcap && r.Format != FormatPcapNG:
		return usagef("--format must be pcap or pcapng, not %q", r.Format)
	case r.Progress < 0:
		return usagef("--progress must not be negative, not %s", r.Progress)
	case r.Takeover && r.ID == "":
		return usagef("--takeover needs --id: only the segments of one capture are ended")
	}
	return nil
}

// Args is the request's argv after "capture".
func (r CaptureRequest) Args() []string {
	d := DefaultCaptureRequest()
	var a args
	a.str("interface", r.Interface, "")
	a.str("filter", r.Filter, "")
	a.int("snaplen", int64(r.Snaplen), 0)
	a.int("count", r.Count, 0)
	a.dur("duration", r.Duration, 0)
	a.int("max-bytes", r.MaxBytes, 0)
	a.str("format", r.Format, "")
	a.str("netns", r.Netns, d.Netns)
	a.dur("heartbeat", r.Heartbeat, 0)
	a.str("id", r.ID, "")
	if r.Takeover {
		a = append(a, "--takeover")
	}
	a.dur("progress", r.Progress, 0)
	return a
}

// Command is the helper command line: "capture" and Args.
func (r CaptureRequest) Command() []string { return append([]string{"capture"}, r.Args()...) }

// NewCaptureFlags registers the capture flags on fs, defaults set, and
// returns the request they parse into.
func NewCaptureFlags(fs *pflag.FlagSet) *CaptureRequest {
	r := DefaultCaptureRequest()
	r.addFlags(fs)
	return &r
}

// ParseCaptureRequest parses `capture` arguments and validates them.
func ParseCaptureRequest(argv []string) (CaptureRequest, error) {
	fs := pflag.NewFlagSet("capture", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r := NewCaptureFlags(fs)
	if err := parseFlagSet(fs, argv); err != nil {
		return CaptureRequest{}, err
	}
	return *r, r.Validate()
}

// Check defaults.
const (
	DefaultTop        = 10
	DefaultRecent     = time.Hour
	DefaultDropSample = time.Second
	// MaxDropSample bounds --drop-sample.
	MaxDropSample = 10 * time.Second
)

// CheckRequest is `netdiag-helper check` (and the check part of `fix`).
type CheckRequest struct {
	// Checks to run; empty means all that apply.
	Checks []string
	// Proc, Sys: where procfs and sysfs are mounted.
	Proc, Sys string
	// Kmsg is the kernel log to scan: /dev/kmsg or a file of kmsg records
	// or dmesg lines.
	Kmsg string
	// HostRoot is the node's / ("" : /host when it exists, else /).
	HostRoot string
	// NetNS is the network namespace file of the node's network ("": the
	// helper's own).
	NetNS string
	// Bridge is the pod bridge ("": auto-detect).
	Bridge string
	// PodIP, PodUID name the pod a pod-scoped check looks at.
	PodIP  string
	PodUID string
	// Port is the port whose holder the stale check names (0: none).
	Port int
	// ExpectedMTU is the pod MTU the network should have (0: the uplink's
	// minus the overlay's overhead).
	ExpectedMTU int
	// KnownContainers are the container IDs the API reports for the pod.
	KnownContainers []string
	// Pods are the node's pods: sent as --pods-json on standard input
	// (Stdin).
	Pods []PodInfo
	// PodCIDRs scope the conntrack top-IP list ("": the bridge's subnets).
	PodCIDRs []string
	// RuntimeEndpoint is the CRI socket ("": the usual sockets).
	RuntimeEndpoint string
	// Top is how many IPs the conntrack check lists (0: no table dump).
	Top int
	// Recent is how recent a "table full" message makes conntrack warn.
	Recent time.Duration
	// DropSample is how long conntrack watches the drop counters (0:
	// read them once).
	DropSample time.Duration
	// DNSIP is the kube-dns Service's ClusterIP the dns check asks (""
	// : the dns check is skipped).
	DNSIP string
	// DNSEndpoints are the ready CoreDNS endpoint IPs behind DNSIP.
	DNSEndpoints []string
	// NodeLocalIP is the node-local DNS cache's address when the node
	// has one (169.254.20.10), "" when it has none.
	NodeLocalIP string
	// DNSName is the name the dns check asks for (""
	// kubernetes.default.svc.ClusterDomain).
	DNSName string
	// ClusterDomain is the cluster's DNS domain ("": cluster.local).
	ClusterDomain string
	// DNSSkipReason, when set, skips the dns check with this reason (the
	// plugin found nothing to ask).
	DNSSkipReason string
}

// DefaultCheckRequest is every check with the helper's defaults.
func DefaultCheckRequest() CheckRequest {
	return CheckRequest{Proc: "/proc", Sys: "/sys", Kmsg: "/dev/kmsg", Top: DefaultTop, Recent: DefaultRecent, DropSample: DefaultDropSample}
}

// checkParse holds what the check flags parse into besides the request.
type checkParse struct {
	r        *CheckRequest
	podsJSON string
	pods     []string
	podIP    string
}

func (r *CheckRequest) addFlags(fs *pflag.FlagSet) *checkParse {
	cp := &checkParse{r: r}
	fs.StringSliceVar(&r.Checks, "checks", r.Checks, "checks to run: "+strings.Join(CheckNames(), ",")+" (default all that apply)")
	fs.StringVar(&r.Proc, "proc", r.Proc, "procfs root")
	fs.StringVar(&r.Sys, "sys", r.Sys, "sysfs root")
	fs.StringVar(&r.Kmsg, "kmsg", r.Kmsg, "kernel log to scan (/dev/kmsg or a file of kmsg records or dmesg lines)")
	fs.StringVar(&r.HostRoot, "host-root", r.HostRoot, "the node's root filesystem, for runtime sockets (default /host when it exists, else /)")
	fs.StringVar(&r.NetNS, "netns", r.NetNS, "network namespace file of the node's network (default: the current one)")
	fs.StringVar(&r.Bridge, "bridge", r.Bridge, "pod bridge (default: auto-detect cbr0, cni0, docker0, then any bridge)")
	fs.StringVar(&cp.podIP, "pod-ip", r.PodIP, "IP of the pod to check")
	fs.StringVar(&r.PodUID, "pod-uid", r.PodUID, "UID of the pod to check")
	fs.IntVar(&r.Port, "port", r.Port, "port whose holder the stale check names")
	fs.IntVar(&r.ExpectedMTU, "expected-mtu", r.ExpectedMTU, "pod MTU the network should have (default: uplink MTU minus overlay overhead)")
	fs.StringSliceVar(&r.KnownContainers, "known-containers", r.KnownContainers, "container IDs the API reports for the pod")
	fs.StringVar(&cp.podsJSON, "pods-json", "", `file with a JSON array of the node's pods ({"namespace","name","uid","ip","mac","containers"}); "-" reads standard input`)
	fs.StringArrayVar(&cp.pods, "pod", nil, "a pod on the node as NAMESPACE/NAME,UID,IP[,MAC] (repeatable)")
	fs.StringSliceVar(&r.PodCIDRs, "pod-cidr", r.PodCIDRs, "pod CIDRs scoping the conntrack top-IP list (default: the bridge's subnets)")
	fs.StringVar(&r.RuntimeEndpoint, "runtime-endpoint", r.RuntimeEndpoint, "CRI socket (node path below --host-root, or unix:///path; default: containerd's, CRI-O's, k3s', microk8s' and cri-dockerd's sockets)")
	fs.IntVar(&r.Top, "top", r.Top, "how many IPs the conntrack check lists by entries (0: skip the table dump)")
	fs.DurationVar(&r.Recent, "recent", r.Recent, `how recent a "table full" kernel message must be to make the conntrack check warn`)
	fs.DurationVar(&r.DropSample, "drop-sample", r.DropSample, "how long the conntrack check watches the per-CPU drop counters (at most 10s; 0: read them once)")
	fs.StringVar(&r.DNSIP, "dns-ip", r.DNSIP, "the kube-dns Service's ClusterIP the dns check asks (default: none, the dns check is skipped)")
	fs.StringSliceVar(&r.DNSEndpoints, "dns-endpoints", r.DNSEndpoints, "the ready CoreDNS endpoint IPs behind --dns-ip")
	fs.StringVar(&r.NodeLocalIP, "nodelocal-ip", r.NodeLocalIP, "the node-local DNS cache's address, when the node has one (e.g. 169.254.20.10)")
	fs.StringVar(&r.DNSName, "dns-name", r.DNSName, "the name the dns check asks for (default kubernetes.default.svc.CLUSTER-DOMAIN)")
	fs.StringVar(&r.ClusterDomain, "cluster-domain", r.ClusterDomain, "the cluster's DNS domain (default cluster.local)")
	fs.StringVar(&r.DNSSkipReason, "dns-skip-reason", r.DNSSkipReason, "skip the dns check, giving this reason")
	return cp
}

// finish validates what was parsed; a --pods-json of "-" is read from
// stdin.
func (cp *checkParse) finish(stdin io.Reader) error {
	r := cp.r
	checks, err := ParseCheckList(r.Checks)
	if err != nil {
		return usagef("%v", err)
	}
	r.Checks = checks
	if cp.podIP != "" && net.ParseIP(cp.podIP) == nil {
		return usagef("--pod-ip %q is not an IP address", cp.podIP)
	}
	r.PodIP = cp.podIP
	switch {
	case r.Port < 0 || r.Port > 65535:
		return usagef("--port %d is not a port", r.Port)
	case r.ExpectedMTU < 0:
		return usagef("--expected-mtu must not be negative")
	case r.Top < 0:
		return usagef("--top must not be negative")
	case r.Recent < 0:
		return usagef("--recent must not be negative")
	case r.DropSample < 0 || r.DropSample > MaxDropSample:
		return usagef("--drop-sample must be between 0 and 10s, got %s", r.DropSample)
	case r.DNSIP != "" && net.ParseIP(r.DNSIP) == nil:
		return usagef("--dns-ip %q is not an IP address", r.DNSIP)
	case r.NodeLocalIP != "" && net.ParseIP(r.NodeLocalIP) == nil:
		return usagef("--nodelocal-ip %q is not an IP address", r.NodeLocalIP)
	}
	for _, ip := range r.DNSEndpoints {
		if net.ParseIP(ip) == nil {
			return usagef("--dns-endpoints: %q is not an IP address", ip)
		}
	}
	if cp.podsJSON != "" {
		var in io.Reader = stdin
		if cp.podsJSON != "-" {
			f, err := os.Open(cp.podsJSON)
			if err != nil {
				return usagef("--pods-json: %v", err)
			}
			defer f.Close()
			in = f
		}
		if in == nil {
			return usagef("--pods-json -: no standard input")
		}
		pods := []PodInfo{}
		if err := json.NewDecoder(in).Decode(&pods); err != nil {
			return usagef("--pods-json: not a JSON array of pods: %v", err)
		}
		if pods == nil {
			return usagef("--pods-json: not a JSON array of pods: null")
		}
		r.Pods = append(pods, r.Pods...)
	}
	for _, p := range cp.pods {
		pi, err := parsePodFlag(p)
		if err != nil {
			return usagef("--pod %q: %v", p, err)
		}
		r.Pods = append(r.Pods, pi)
	}
	for i, c := range r.PodCIDRs {
		c = strings.TrimSpace(c)
		if _, _, err := net.ParseCIDR(c); err != nil {
			return usagef("--pod-cidr %q is not a CIDR", c)
		}
		r.PodCIDRs[i] = c
	}
	return nil
}

// parsePodFlag parses NAMESPACE/NAME,UID,IP[,MAC]; empty fields are allowed
// (",UID," names a pod by UID alone).
func parsePodFlag(s string) (PodInfo, error) {
	f := strings.Split(s, ",")
	if len(f) < 3 || len(f) > 4 {
		return PodInfo{}, fmt.Errorf("want NAMESPACE/NAME,UID,IP[,MAC]")
	}
	var p PodInfo
	if f[0] != "" {
		ns, name, ok := strings.Cut(f[0], "/")
		if !ok {
			return PodInfo{}, fmt.Errorf("want NAMESPACE/NAME first")
		}
		p.Namespace, p.Name = ns, name
	}
	p.UID = f[1]
	if f[2] != "" {
		p.IP = net.ParseIP(f[2])
		if p.IP == nil {
			return PodInfo{}, fmt.Errorf("%q is not an IP address", f[2])
		}
	}
	if len(f) == 4 && f[3] != "" {
		mac, err := net.ParseMAC(f[3])
		if err != nil {
			return PodInfo{}, fmt.Errorf("%q is not a MAC address", f[3])
		}
		p.MAC = mac.String()
	}
	return p, nil
}

// Args is the request's argv after "check"; the pods go on standard input
// (Stdin) with --pods-json=-.
func (r CheckRequest) Args() []string {
	d := DefaultCheckRequest()
	var a args
	a.list("checks", r.Checks)
	a.str("proc", r.Proc, d.Proc)
	a.str("sys", r.Sys, d.Sys)
	a.str("kmsg", r.Kmsg, d.Kmsg)
	a.str("host-root", r.HostRoot, "")
	a.str("netns", r.NetNS, "")
	a.str("bridge", r.Bridge, "")
	a.str("pod-ip", r.PodIP, "")
	a.str("pod-uid", r.PodUID, "")
	a.int("port", int64(r.Port), 0)
	a.int("expected-mtu", int64(r.ExpectedMTU), 0)
	a.list("known-containers", r.KnownContainers)
	if r.Pods != nil {
		a = append(a, "--pods-json=-")
	}
	a.list("pod-cidr", r.PodCIDRs)
	a.str("runtime-endpoint", r.RuntimeEndpoint, "")
	a.int("top", int64(r.Top), int64(d.Top))
	a.dur("recent", r.Recent, d.Recent)
	a.dur("drop-sample", r.DropSample, d.DropSample)
	a.str("dns-ip", r.DNSIP, "")
	a.list("dns-endpoints", r.DNSEndpoints)
	a.str("nodelocal-ip", r.NodeLocalIP, "")
	a.str("dns-name", r.DNSName, "")
	a.str("cluster-domain", r.ClusterDomain, "")
	a.str("dns-skip-reason", r.DNSSkipReason, "")
	return a
}

// Stdin is what the helper reads on standard input: the pods' JSON, or
// nil without pods.
func (r CheckRequest) Stdin() []byte {
	if r.Pods == nil {
		return nil
	}
	b, err := json.Marshal(r.Pods)
	if err != nil {
		panic(fmt.Sprintf("protocol: encoding pods: %v", err))
	}
	return b
}

// Command is the helper command line: "check" and Args.
func (r CheckRequest) Command() []string { return append([]string{"check"}, r.Args()...) }

// ParseCheckRequest parses `check` arguments; usage gets --help.
func ParseCheckRequest(argv []string, stdin io.Reader, usage io.Writer) (CheckRequest, error) {
	r := DefaultCheckRequest()
	fs := newFlagSet("netdiag-helper check", usage)
	cp := r.addFlags(fs)
	if err := parseFlagSet(fs, argv); err != nil {
		return CheckRequest{}, err
	}
	if err := cp.finish(stdin); err != nil {
		return CheckRequest{}, err
	}
	return r, nil
}

// DefaultKillGrace is how long `fix --kill` waits after SIGTERM before
// SIGKILL.
const DefaultKillGrace = 5 * time.Second

// ConntrackPersistFile is the file `fix --conntrack-max` writes in
// --persist-dir.
const ConntrackPersistFile = "90-netdiag-conntrack.conf"

// KillTarget is one process `fix --kill` may end: its PID and the start
// time the user approved (clock ticks after boot, StaleData.StartTicks).
type KillTarget struct {
	PID        int
	StartTicks uint64
}

// FixRequest is `netdiag-helper fix`: the changes, and the check request
// that --kill runs again to confirm each process before it is signalled.
type FixRequest struct {
	BridgeUp     string
	ConntrackMax uint64
	// PersistDir also persists ConntrackMax in
	// PersistDir/ConntrackPersistFile (a node path, below HostRoot).
	PersistDir string
	Kill       []KillTarget
	Grace      time.Duration
	Check      CheckRequest
}

// DefaultFixRequest changes nothing.
func DefaultFixRequest() FixRequest {
	return FixRequest{Grace: DefaultKillGrace, Check: DefaultCheckRequest()}
}

// Args is the request's argv after "fix": the fix's flags, then the
// check's (one flag set parses both).
func (r FixRequest) Args() []string {
	var a args
	a.str("bridge-up", r.BridgeUp, "")
	a.uint("conntrack-max", r.ConntrackMax)
	a.str("persist-dir", r.PersistDir, "")
	if len(r.Kill) > 0 {
		ks := make([]string, len(r.Kill))
		for i, k := range r.Kill {
			ks[i] = strconv.Itoa(k.PID)
			if k.StartTicks > 0 {
				ks[i] += ":" + strconv.FormatUint(k.StartTicks, 10)
			}
		}
		a = append(a, "--kill="+strings.Join(ks, ","))
	}
	a.dur("grace", r.Grace, DefaultKillGrace)
	return append(a, r.Check.Args()...)
}

// Command is the helper command line: "fix" and Args.
func (r FixRequest) Command() []string { return append([]string{"fix"}, r.Args()...) }

// ParseFixRequest parses `fix` arguments; usage gets --help.
func ParseFixRequest(argv []string, stdin io.Reader, usage io.Writer) (FixRequest, error) {
	r := DefaultFixRequest()
	fs := newFlagSet("netdiag-helper fix", usage)
	fs.StringVar(&r.BridgeUp, "bridge-up", "", "bring this bridge up")
	fs.Uint64Var(&r.ConntrackMax, "conntrack-max", 0, "set net.netfilter.nf_conntrack_max to N (never lowers it)")
	fs.StringVar(&r.PersistDir, "persist-dir", "", "also persist --conntrack-max in DIR/"+ConntrackPersistFile+" (a node path, below --host-root)")
	kill := fs.String("kill", "", "end these processes, PID:STARTTICKS,... (the start time the stale check reported), each only if the stale check confirms it is a stale process of --pod-uid started then")
	fs.DurationVar(&r.Grace, "grace", r.Grace, "how long to wait after SIGTERM before SIGKILL")
	cp := r.Check.addFlags(fs)
	if err := parseFlagSet(fs, argv); err != nil {
		return FixRequest{}, err
	}
	if *kill != "" {
		ks, err := parseKillList(*kill)
		if err != nil {
			return FixRequest{}, err
		}
		r.Kill = ks
	}
	if r.BridgeUp == "" && r.ConntrackMax == 0 && len(r.Kill) == 0 {
		return FixRequest{}, usagef("nothing to do: give --bridge-up, --conntrack-max or --kill")
	}
	if r.PersistDir != "" {
		if r.ConntrackMax == 0 {
			return FixRequest{}, usagef("--persist-dir goes with --conntrack-max")
		}
		if !filepath.IsAbs(r.PersistDir) || filepath.Clean(r.PersistDir) != r.PersistDir || strings.Contains(r.PersistDir, "..") {
			return FixRequest{}, usagef("--persist-dir must be a clean absolute path, got %q", r.PersistDir)
		}
	}
	if r.Grace < 0 {
		return FixRequest{}, usagef("--grace must not be negative")
	}
	if err := cp.finish(stdin); err != nil {
		return FixRequest{}, err
	}
	if len(r.Kill) > 0 && r.Check.PodUID == "" {
		return FixRequest{}, usagef("--kill needs --pod-uid: only stale processes of that pod are ended")
	}
	return r, nil
}

// parseKillList parses --kill: PID[:STARTTICKS],...
func parseKillList(v string) ([]KillTarget, error) {
	var out []KillTarget
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		p, st, hasStart := strings.Cut(s, ":")
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 1 {
			return nil, usagef("--kill: %q is not a PID (want PID[:STARTTICKS],...)", s)
		}
		k := KillTarget{PID: pid}
		if hasStart {
			n, err := strconv.ParseUint(st, 10, 64)
			if err != nil || n == 0 {
				return nil, usagef("--kill: %q: the start time after the colon must be the clock ticks the stale check reports in data.startTicks", s)
			}
			k.StartTicks = n
		}
		out = append(out, k)
	}
	return out, nil
}

// newFlagSet is a flag set whose --help goes to usage.
func newFlagSet(name string, usage io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	if usage == nil {
		usage = io.Discard
	}
	fs.SetOutput(usage)
	return fs
}

// parseFlagSet parses argv: --help is pflag.ErrHelp, anything else wrong
// a UsageError; no positional arguments.
func parseFlagSet(fs *pflag.FlagSet, argv []string) error {
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// args builds argv: one --name=value per flag that differs from its
// default.
type args []string

func (a *args) str(name, v, dflt string) {
	if v != dflt {
		*a = append(*a, "--"+name+"="+v)
	}
}

func (a *args) int(name string, v, dflt int64) {
	if v != dflt {
		*a = append(*a, "--"+name+"="+strconv.FormatInt(v, 10))
	}
}

func (a *args) uint(name string, v uint64) {
	if v != 0 {
		*a = append(*a, "--"+name+"="+strconv.FormatUint(v, 10))
	}
}

func (a *args) dur(name string, v, dflt time.Duration) {
	if v != dflt {
		*a = append(*a, "--"+name+"="+v.String())
	}
}

func (a *args) list(name string, v []string) {
	if len(v) > 0 {
		*a = append(*a, "--"+name+"="+strings.Join(v, ","))
	}
}
