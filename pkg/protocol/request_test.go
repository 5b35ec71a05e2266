package protocol

import (
	"bytes"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// everyFieldDiffers fails unless every field of got (recursively through
// structs) differs from the same field of dflt: a round trip that left a
// field at its default would prove nothing about that field.
func everyFieldDiffers(t *testing.T, path string, got, dflt reflect.Value) {
	t.Helper()
	for i := 0; i < got.NumField(); i++ {
		f := got.Type().Field(i)
		g, d := got.Field(i), dflt.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			everyFieldDiffers(t, path+f.Name+".", g, d)
			continue
		}
		if reflect.DeepEqual(g.Interface(), d.Interface()) {
			t.Errorf("%s%s is left at its default: the round trip does not cover it", path, f.Name)
		}
	}
}

func fullCheckRequest() CheckRequest {
	return CheckRequest{
		Checks: []string{"arp", "stale"}, Proc: "/host/proc", Sys: "/host/sys", Kmsg: "/tmp/kmsg",
		HostRoot: "/host", NetNS: "/proc/1/ns/net", Bridge: "cni0", PodIP: "10.244.0.7", PodUID: "u-1",
		Port: 6379, ExpectedMTU: 1410, KnownContainers: []string{"containerd://abc", "def"},
		Pods:     []PodInfo{{Namespace: "shop", Name: "web", UID: "u-1", IP: net.ParseIP("10.244.0.7").To4(), MAC: "02:42:ac:11:00:02", Containers: []string{"containerd://abc"}}},
		PodCIDRs: []string{"10.244.0.0/24", "fd00::/64"}, RuntimeEndpoint: "unix:///run/crio/crio.sock",
		Top: 0, Recent: 10 * time.Minute, DropSample: 0,
		DNSIP: "10.96.0.10", DNSEndpoints: []string{"10.244.0.3", "fd00::3"}, NodeLocalIP: "169.254.20.10",
		DNSName: "kubernetes.default.svc.corp.local", ClusterDomain: "corp.local", DNSSkipReason: "no kube-dns Service in kube-system",
	}
}

func TestCheckRequestRoundTrip(t *testing.T) {
	for name, r := range map[string]CheckRequest{
		"defaults":            DefaultCheckRequest(),
		"full":                fullCheckRequest(),
		"no pods on the node": {Proc: "/proc", Sys: "/sys", Kmsg: "/dev/kmsg", Top: 10, Recent: time.Hour, DropSample: time.Second, Pods: []PodInfo{}},
		"no pods":             {Proc: "/proc", Sys: "/sys", Kmsg: "/dev/kmsg", Top: 3, Recent: time.Hour, DropSample: 2 * time.Second, PodIP: "fd00::7"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseCheckRequest(r.Args(), bytes.NewReader(r.Stdin()), nil)
			if err != nil {
				t.Fatalf("parsing %q: %v", r.Args(), err)
			}
			if d := cmp.Diff(r, got); d != "" {
				t.Errorf("round trip of %q (-sent +parsed):\n%s", r.Args(), d)
			}
		})
	}
	everyFieldDiffers(t, "", reflect.ValueOf(fullCheckRequest()), reflect.ValueOf(DefaultCheckRequest()))
}

func fullFixRequest() FixRequest {
	return FixRequest{
		BridgeUp: "cbr0", ConntrackMax: 1 << 20, PersistDir: "/etc/sysctl.d",
		Kill:  []KillTarget{{PID: 4242, StartTicks: 123456}, {PID: 77, StartTicks: 9}},
		Grace: 2 * time.Second, Check: fullCheckRequest(),
	}
}

func TestFixRequestRoundTrip(t *testing.T) {
	r := fullFixRequest()
	got, err := ParseFixRequest(r.Args(), bytes.NewReader(r.Check.Stdin()), nil)
	if err != nil {
		t.Fatalf("parsing %q: %v", r.Args(), err)
	}
	if d := cmp.Diff(r, got); d != "" {
		t.Errorf("round trip of %q (-sent +parsed):\n%s", r.Args(), d)
	}
	everyFieldDiffers(t, "", reflect.ValueOf(r), reflect.ValueOf(DefaultFixRequest()))
}

func fullCaptureRequest() CaptureRequest {
	return CaptureRequest{
		Interface: "veth1a2b", Filter: "-tcp port 80 and not host ::ffff:10.0.0.1", Snaplen: 96,
		Count: 10, Duration: 90 * time.Second, MaxBytes: 1 << 20, Format: FormatPcapNG,
		Netns: "/proc/42/ns/net", Heartbeat: 10 * time.Second, ID: "k7x2q", Takeover: true,
		Progress: 500 * time.Millisecond,
	}
}

func TestCaptureRequestRoundTrip(t *testing.T) {
	for name, r := range map[string]CaptureRequest{"defaults": DefaultCaptureRequest(), "full": fullCaptureRequest()} {
		got, err := ParseCaptureRequest(r.Args())
		if err != nil {
			t.Fatalf("%s: parsing %q: %v", name, r.Args(), err)
		}
		if d := cmp.Diff(r, got); d != "" {
			t.Errorf("%s: round trip of %q (-sent +parsed):\n%s", name, r.Args(), d)
		}
	}
	everyFieldDiffers(t, "", reflect.ValueOf(fullCaptureRequest()), reflect.ValueOf(DefaultCaptureRequest()))
}

// A value that looks like a flag stays a value.
func TestArgsValuesAreNeverFlags(t *testing.T) {
	r := DefaultCheckRequest()
	r.Bridge = "--pod-uid=x"
	got, err := ParseCheckRequest(r.Args(), nil, nil)
	if err != nil || got.Bridge != "--pod-uid=x" || got.PodUID != "" {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestParseRefusals(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{"--checks", "nope"}, `unknown check "nope"`},
		{[]string{"--pod-ip", "x"}, `--pod-ip "x" is not an IP address`},
		{[]string{"--port", "70000"}, "--port 70000 is not a port"},
		{[]string{"--drop-sample", "11s"}, "--drop-sample must be between 0 and 10s"},
		{[]string{"--pod-cidr", "10.0.0.0"}, `--pod-cidr "10.0.0.0" is not a CIDR`},
		{[]string{"--pod", "redis-0,uid"}, "want NAMESPACE/NAME,UID,IP[,MAC]"},
		{[]string{"--pod", "default/r,uid,10.0.0.1,zz"}, `"zz" is not a MAC address`},
		{[]string{"--pods-json", "-"}, "not a JSON array of pods"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, err := ParseCheckRequest(tt.argv, strings.NewReader("{"), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !IsUsage(err) {
			t.Errorf("%q: error %v, want a usage error with %q", tt.argv, err, tt.want)
		}
	}
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{nil, "nothing to do"},
		{[]string{"--persist-dir=/etc/sysctl.d", "--bridge-up=cbr0"}, "--persist-dir goes with --conntrack-max"},
		{[]string{"--conntrack-max=9", "--persist-dir=etc"}, "clean absolute path"},
		{[]string{"--kill=1"}, `"1" is not a PID`},
		{[]string{"--kill=12:0", "--pod-uid=u"}, "the start time after the colon"},
		{[]string{"--kill=12:5"}, "--kill needs --pod-uid"},
		{[]string{"--bridge-up=cbr0", "--grace=-1s"}, "--grace must not be negative"},
	} {
		_, err := ParseFixRequest(tt.argv, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !IsUsage(err) {
			t.Errorf("fix %q: error %v, want a usage error with %q", tt.argv, err, tt.want)
		}
	}
	for _, r := range []CaptureRequest{{Snaplen: 0}, {Interface: "eth0", Snaplen: 1, Format: "pcap", Takeover: true}, {Interface: "eth0", Snaplen: 1, Format: "pcapx"}, {Interface: "eth0", Snaplen: 1, Format: "pcap", Count: -1}, {Interface: "eth0", Snaplen: 1, Format: "pcap", Progress: -time.Second}} {
		if err := r.Validate(); err == nil || !IsUsage(err) {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestCheckRegistry(t *testing.T) {
	names := CheckNames()
	if strings.Join(names, ",") != "bridge,veth,arp,mtu,conntrack,stale,dns" {
		t.Errorf("checks %v", names)
	}
	// Every flag a check names is a flag of the check request.
	fs := newFlagSet("x", nil)
	r := DefaultCheckRequest()
	r.addFlags(fs)
	for _, c := range Checks {
		if c.Summary == "" {
			t.Errorf("%s has no summary", c.Name)
		}
		for _, f := range c.Flags {
			if fs.Lookup(f) == nil {
				t.Errorf("check %s names flag --%s, which check does not have", c.Name, f)
			}
		}
	}
	got, err := ParseCheckList([]string{" arp", "", "stale", "arp"})
	if err != nil || strings.Join(got, ",") != "arp,stale" {
		t.Errorf("ParseCheckList = %v, %v", got, err)
	}
}

func fullDNSRequest() DNSRequest {
	return DNSRequest{
		Names: []string{"kubernetes.default", "example.test."}, Expand: false, Type: "AAAA",
		Servers:   []DNSServer{{Hop: "resolv.conf", Addr: "10.96.0.10"}, {Hop: "upstream", Addr: "[fd00::53]:5353"}},
		Protocols: []string{"tcp"}, Timeout: 500 * time.Millisecond, ResolvConf: "/proc/1/root/etc/resolv.conf",
		Load: 200, Rate: 20, ConntrackProc: "/host/proc",
		Search: []string{"default.svc.cluster.local", "svc.cluster.local"}, Ndots: 5, MaxTime: 30 * time.Second,
	}
}

func TestDNSRequestRoundTrip(t *testing.T) {
	for name, r := range map[string]DNSRequest{"full": fullDNSRequest(), "names only": func() DNSRequest {
		r := DefaultDNSRequest()
		r.Names = []string{"a.b"}
		return r
	}()} {
		got, err := ParseDNSRequest(r.Args(), nil)
		if err != nil {
			t.Fatalf("%s: parsing %q: %v", name, r.Args(), err)
		}
		if d := cmp.Diff(r, got); d != "" {
			t.Errorf("%s: round trip of %q (-sent +parsed):\n%s", name, r.Args(), d)
		}
	}
	everyFieldDiffers(t, "", reflect.ValueOf(fullDNSRequest()), reflect.ValueOf(DefaultDNSRequest()))
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{nil, "nothing to do"},
		{[]string{"--name=a", "--server=x"}, `--server "x": want HOP=IP[:PORT]`},
		{[]string{"--name=a", "--server=hop=nope"}, `"nope" is not an IP address`},
		{[]string{"--name=a", "--type=MX"}, "--type must be A or AAAA"},
		{[]string{"--name=a", "--proto=sctp"}, `"sctp" is not udp or tcp`},
		{[]string{"--name=a", "--load=5"}, "--load needs a --name and a --server"},
		{[]string{"--name=a", "--ndots=16"}, "--ndots must be between 0 and 15"},
		{[]string{"--name=a", "--search="}, `--search "" is not a DNS name`},
		{[]string{"--name=a", "--server=h=10.0.0.1", "--load=1000", "--rate=50"}, "--load 1000 sends 2000 queries: at --rate 50 that takes 40s, longer than --max-time 10s"},
	} {
		if _, err := ParseDNSRequest(tt.argv, nil); err == nil || !strings.Contains(err.Error(), tt.want) || !IsUsage(err) {
			t.Errorf("%q: %v, want %q", tt.argv, err, tt.want)
		}
	}
	if got := (DNSServer{Hop: "h", Addr: "10.0.0.1"}).HostPort(); got != "10.0.0.1:53" {
		t.Errorf("HostPort = %s", got)
	}
}
