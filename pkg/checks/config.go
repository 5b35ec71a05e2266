// Package checks is the engine behind `netdiag-helper check`: it looks at a
// node's bridge, neighbour table, pod veths, MTUs, conntrack table and
// processes, and reports what it finds as protocol.Finding values. See
// DESIGN.md, "What each check does".
//
// Every file is read below injected roots (Config.Proc, Config.Sys,
// Config.Kmsg, Config.HostRoot) so the parsers and the file-based checks run
// on fixture trees in tests; the network checks use netlink in the network
// namespace Config.NetNS (the current one by default).
package checks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Check names, in the order they run.
const (
	CheckBridge    = "bridge"
	CheckVeth      = "veth"
	CheckARP       = "arp"
	CheckMTU       = "mtu"
	CheckConntrack = "conntrack"
	CheckStale     = "stale"
)

// AllChecks lists every check in the order Run runs them.
var AllChecks = []string{CheckBridge, CheckVeth, CheckARP, CheckMTU, CheckConntrack, CheckStale}

// Defaults.
const (
	DefaultTop    = 10
	DefaultRecent = time.Hour
	// DefaultDropSample is the gap between the conntrack check's two
	// reads of the drop counters.
	DefaultDropSample = time.Second
)

// PodInfo describes one pod on the node, as the plugin knows it from the API.
// It is passed with --pods-json (a JSON array of these objects) or --pod.
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

// Config is what `netdiag-helper check` was asked to do.
type Config struct {
	// Proc, Sys: where procfs and sysfs are mounted (/proc, /sys).
	Proc, Sys string
	// Kmsg is the kernel log to scan: /dev/kmsg (read without blocking up
	// to its current end) or a text file of kmsg records or dmesg lines.
	Kmsg string
	// HostRoot is the node's / (runtime sockets are looked up below it).
	HostRoot string
	// NetNS is the network namespace file of the node's network
	// (/proc/1/ns/net, /run/netns/X); empty means the current one.
	NetNS string
	// Checks to run; empty means all that apply.
	Checks []string
	// Bridge is the pod bridge; empty means auto-detect (cbr0, cni0,
	// docker0, then any bridge).
	Bridge string
	// PodIP, PodUID name the pod a pod-scoped check looks at.
	PodIP  net.IP
	PodUID string
	// Port is the port whose holder the stale check names (0: none).
	Port int
	// ExpectedMTU is the pod MTU the network should have (0: derive it
	// from the uplink's MTU minus the overlay's overhead).
	ExpectedMTU int
	// KnownContainers are container IDs the API reports for the pod.
	KnownContainers []string
	// Pods are the node's pods, for the arp check and node-wide runs.
	Pods []PodInfo
	// PodCIDRs scope the conntrack top-IP list; empty means the bridge's
	// subnets (and the IPs of Pods).
	PodCIDRs []*net.IPNet
	// RuntimeEndpoint is the CRI socket (a node path, looked up below
	// HostRoot, or unix:///path); empty means try containerd's and
	// CRI-O's default sockets.
	RuntimeEndpoint string
	// Top is how many IPs the conntrack check lists by entries; 0 skips
	// the conntrack table dump.
	Top int
	// Recent is how far back a "table full" kernel message makes the
	// conntrack check warn; older ones are counted and reported.
	Recent time.Duration
	// DropSample is how long the conntrack check waits between its two
	// reads of the per-CPU drop counters (0: DefaultDropSample; negative:
	// read once, and say drops now cannot be told).
	DropSample time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ARPWait bounds how long the arp check waits for answers to its
	// probes (0: DefaultARPWait).
	ARPWait time.Duration

	// runtime, when set, replaces the CRI client (tests).
	runtime runtimeLister
	// prober, when set, replaces the raw-socket neighbour prober
	// (tests).
	prober neighProber
	// sleep, when set, replaces time.Sleep between the two reads of the
	// conntrack counters (tests change the fixture there).
	sleep func(time.Duration)
	// dumpConntrack, when set, replaces the netlink conntrack dump
	// (tests).
	dumpConntrack func() ([]flowAddrs, error)
}

// errUsage marks errors in the command line.
var errUsage = errors.New("usage")

// checkFlags are the check's flags registered on a flag set, with what
// they parse into; finish validates them into the Config.
type checkFlags struct {
	cfg      *Config
	checks   *[]string
	podIP    *string
	podsJSON *string
	pods     *[]string
	cidrs    *[]string
}

// addCheckFlags registers the check's flags on fs, writing into cfg.
func addCheckFlags(fs *pflag.FlagSet, cfg *Config) *checkFlags {
	cf := &checkFlags{cfg: cfg}
	cf.checks = fs.StringSlice("checks", nil, "checks to run: "+strings.Join(AllChecks, ",")+" (default all that apply)")
	fs.StringVar(&cfg.Proc, "proc", "/proc", "procfs root")
	fs.StringVar(&cfg.Sys, "sys", "/sys", "sysfs root")
	fs.StringVar(&cfg.Kmsg, "kmsg", "/dev/kmsg", "kernel log to scan (/dev/kmsg or a file of kmsg records or dmesg lines)")
	fs.StringVar(&cfg.HostRoot, "host-root", "", "the node's root filesystem, for runtime sockets (default /host when it exists, else /)")
	fs.StringVar(&cfg.NetNS, "netns", "", "network namespace file of the node's network (default: the current one)")
	fs.StringVar(&cfg.Bridge, "bridge", "", "pod bridge (default: auto-detect cbr0, cni0, docker0, then any bridge)")
	cf.podIP = fs.String("pod-ip", "", "IP of the pod to check")
	fs.StringVar(&cfg.PodUID, "pod-uid", "", "UID of the pod to check")
	fs.IntVar(&cfg.Port, "port", 0, "port whose holder the stale check names")
	fs.IntVar(&cfg.ExpectedMTU, "expected-mtu", 0, "pod MTU the network should have (default: uplink MTU minus overlay overhead)")
	fs.StringSliceVar(&cfg.KnownContainers, "known-containers", nil, "container IDs the API reports for the pod")
	cf.podsJSON = fs.String("pods-json", "", `file with a JSON array of the node's pods ({"namespace","name","uid","ip","mac","containers"}); "-" reads standard input`)
	cf.pods = fs.StringArray("pod", nil, "a pod on the node as NAMESPACE/NAME,UID,IP[,MAC] (repeatable)")
	cf.cidrs = fs.StringSlice("pod-cidr", nil, "pod CIDRs scoping the conntrack top-IP list (default: the bridge's subnets)")
	fs.StringVar(&cfg.RuntimeEndpoint, "runtime-endpoint", "", "CRI socket (node path below --host-root, or unix:///path; default: containerd's, CRI-O's, k3s', microk8s' and cri-dockerd's sockets)")
	fs.IntVar(&cfg.Top, "top", DefaultTop, "how many IPs the conntrack check lists by entries (0: skip the table dump)")
	fs.DurationVar(&cfg.Recent, "recent", DefaultRecent, `how recent a "table full" kernel message must be to make the conntrack check warn`)
	fs.DurationVar(&cfg.DropSample, "drop-sample", DefaultDropSample, "how long the conntrack check watches the per-CPU drop counters (at most 10s; 0: read them once)")
	return cf
}

// parseFlags turns `netdiag-helper check` arguments into a Config; a
// --pods-json of "-" is read from stdin.
func parseFlags(args []string, stdin io.Reader, usage io.Writer) (Config, error) {
	cfg := Config{}
	fs := pflag.NewFlagSet("netdiag-helper check", pflag.ContinueOnError)
	fs.SetOutput(usage)
	cf := addCheckFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if err := cf.finish(stdin); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// finish validates the parsed check flags and fills cf.cfg.
func (cf *checkFlags) finish(stdin io.Reader) error {
	cfg := cf.cfg
	for _, c := range *cf.checks {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !isCheck(c) {
			return fmt.Errorf("%w: --checks: unknown check %q (known: %s)", errUsage, c, strings.Join(AllChecks, ","))
		}
		cfg.Checks = append(cfg.Checks, c)
	}
	if *cf.podIP != "" {
		cfg.PodIP = net.ParseIP(*cf.podIP)
		if cfg.PodIP == nil {
			return fmt.Errorf("%w: --pod-ip %q is not an IP address", errUsage, *cf.podIP)
		}
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return fmt.Errorf("%w: --port %d is not a port", errUsage, cfg.Port)
	}
	if cfg.ExpectedMTU < 0 {
		return fmt.Errorf("%w: --expected-mtu must not be negative", errUsage)
	}
	if cfg.Top < 0 {
		return fmt.Errorf("%w: --top must not be negative", errUsage)
	}
	switch {
	case cfg.DropSample < 0 || cfg.DropSample > 10*time.Second:
		return fmt.Errorf("%w: --drop-sample must be between 0 and 10s, got %s", errUsage, cfg.DropSample)
	case cfg.DropSample == 0:
		cfg.DropSample = -1 // read once
	}
	if *cf.podsJSON != "" {
		var r io.Reader = stdin
		if *cf.podsJSON != "-" {
			f, err := os.Open(*cf.podsJSON)
			if err != nil {
				return fmt.Errorf("%w: --pods-json: %v", errUsage, err)
			}
			defer f.Close()
			r = f
		}
		if err := json.NewDecoder(r).Decode(&cfg.Pods); err != nil {
			return fmt.Errorf("%w: --pods-json: not a JSON array of pods: %v", errUsage, err)
		}
	}
	for _, p := range *cf.pods {
		pi, err := parsePodFlag(p)
		if err != nil {
			return fmt.Errorf("%w: --pod %q: %v", errUsage, p, err)
		}
		cfg.Pods = append(cfg.Pods, pi)
	}
	for _, c := range *cf.cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("%w: --pod-cidr %q is not a CIDR", errUsage, c)
		}
		cfg.PodCIDRs = append(cfg.PodCIDRs, n)
	}
	if cfg.HostRoot == "" {
		cfg.HostRoot = "/"
		if fi, err := os.Stat("/host"); err == nil && fi.IsDir() {
			cfg.HostRoot = "/host"
		}
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

func isCheck(name string) bool {
	for _, c := range AllChecks {
		if c == name {
			return true
		}
	}
	return false
}

// withDefaults fills what a Config built by hand (tests) leaves empty.
func (c Config) withDefaults() Config {
	if c.Proc == "" {
		c.Proc = "/proc"
	}
	if c.Sys == "" {
		c.Sys = "/sys"
	}
	if c.HostRoot == "" {
		c.HostRoot = "/"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Recent == 0 {
		c.Recent = DefaultRecent
	}
	if c.DropSample == 0 {
		c.DropSample = DefaultDropSample
	}
	if c.sleep == nil {
		c.sleep = time.Sleep
	}
	if c.ARPWait <= 0 {
		c.ARPWait = DefaultARPWait
	}
	return c
}

// wants says whether the check was asked for (explicitly or by default).
func (c Config) wants(name string) (wanted, explicit bool) {
	if len(c.Checks) == 0 {
		return true, false
	}
	for _, n := range c.Checks {
		if n == name {
			return true, true
		}
	}
	return false, false
}

// targets are the pods the pod-scoped checks (veth, mtu, arp, stale) look
// at: the one named by --pod-ip/--pod-uid (merged with its entry in Pods when
// one matches), then the others in Pods.
func (c Config) targets() []PodInfo {
	var out []PodInfo
	var self *PodInfo
	if c.PodIP != nil || c.PodUID != "" {
		p := PodInfo{IP: c.PodIP, UID: c.PodUID, Containers: c.KnownContainers}
		out = append(out, p)
		self = &out[0]
	}
	for _, p := range c.Pods {
		if self != nil && ((p.UID != "" && normalizeUID(p.UID) == normalizeUID(self.UID)) || (p.IP != nil && p.IP.Equal(self.IP))) {
			if self.UID == "" {
				self.UID = p.UID
			}
			if self.IP == nil {
				self.IP = p.IP
			}
			self.Namespace, self.Name = p.Namespace, p.Name
			if self.MAC == "" {
				self.MAC = p.MAC
			}
			self.Containers = append(self.Containers, p.Containers...)
			continue
		}
		out = append(out, p)
	}
	return out
}
