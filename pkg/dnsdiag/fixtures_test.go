package dnsdiag

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseCorefile(t *testing.T) {
	for _, tt := range []struct {
		file     string
		blocks   int
		forward  []string
		upstream []protocol.DNSServer
	}{
		{"Corefile.kubeadm", 1, []string{"/etc/resolv.conf"}, []protocol.DNSServer{{Hop: HopUpstream, Addr: "192.0.2.53"}}},
		{"Corefile.stubdomains", 2, []string{"tls://9.9.9.9", "8.8.8.8:53"}, []protocol.DNSServer{{Hop: HopUpstream, Addr: "9.9.9.9"}, {Hop: HopUpstream, Addr: "8.8.8.8:53"}}},
		{"Corefile.noforward", 1, nil, nil},
	} {
		blocks := ParseCorefile(readFixture(t, tt.file))
		if len(blocks) != tt.blocks {
			t.Errorf("%s: %d blocks, want %d: %+v", tt.file, len(blocks), tt.blocks, blocks)
		}
		got := RootForward(blocks)
		if d := cmp.Diff(tt.forward, got); d != "" {
			t.Errorf("%s: root forward (-want +got):\n%s", tt.file, d)
		}
		node := &protocol.ResolvConf{Nameservers: []string{"192.0.2.53"}}
		if d := cmp.Diff(tt.upstream, upstreamServers(got, node)); d != "" {
			t.Errorf("%s: upstream servers (-want +got):\n%s", tt.file, d)
		}
	}
	stub := ParseCorefile(readFixture(t, "Corefile.stubdomains"))
	if d := cmp.Diff([]Forward{{From: ".", To: []string{"10.150.0.1"}}}, stub[0].Forwards); d != "" {
		t.Errorf("stub domain forward (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"errors", "kubernetes", "forward", "cache"}, stub[1].Plugins); d != "" {
		t.Errorf("root block plugins (-want +got):\n%s", d)
	}
}

func TestMatchLogs(t *testing.T) {
	hits := MatchLogs("coredns-a", readFixture(t, "coredns.log"), 2)
	var got [][2]string
	for _, h := range hits {
		got = append(got, [2]string{h.Kind, h.Line[:40]})
	}
	want := [][2]string{
		{LogIOTimeout, "[ERROR] plugin/errors: 2 www.example.tes"},
		{LogIOTimeout, "[ERROR] plugin/errors: 2 other.example.t"},
		{LogServfail, `[INFO] 10.244.0.5:40300 - 6621 "A IN www`},
		{LogServfail, `[INFO] 10.244.0.5:40301 - 6622 "AAAA IN `},
		{LogLoop, `[FATAL] plugin/loop: Loop (127.0.0.1:559`},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hits (-want +got):\n%s", d)
	}
	for line, want := range map[string]string{
		`[INFO] 10.244.0.5:1 - 1 "A IN web.default.svc.cluster.local. udp 47 false 512" NXDOMAIN qr,aa,rd 140 0.0001s`: "",
		`[INFO] plugin/reload: Running configuration SHA512 = 1`:                                                       "",
		`[ERROR] plugin/errors: 2 x. A: dial tcp 10.0.0.1:53: i/o timeout`:                                             LogIOTimeout,
		`[FATAL] plugin/loop: Loop (127.0.0.1:1 -> :53) detected for zone "."`:                                         LogLoop,
	} {
		if got := MatchLogLine(line); got != want {
			t.Errorf("MatchLogLine(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestExpectedResolvConf(t *testing.T) {
	node := &protocol.ResolvConf{Nameservers: []string{"192.0.2.53"}, Search: []string{"corp.example"}, Options: []string{"timeout:2"}}
	for _, tt := range []struct {
		name string
		pod  PodDNS
		want protocol.ResolvConf
	}{
		{"ClusterFirst", PodDNS{Namespace: "shop", DNSPolicy: "ClusterFirst"},
			protocol.ResolvConf{Nameservers: []string{"10.96.0.10"}, Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Ndots: 5, Options: []string{"ndots:5"}}},
		{"hostNetwork with ClusterFirst is Default", PodDNS{Namespace: "shop", DNSPolicy: "ClusterFirst", HostNetwork: true},
			protocol.ResolvConf{Nameservers: []string{"192.0.2.53"}, Search: []string{"corp.example"}, Ndots: 1, Options: []string{"timeout:2"}}},
		{"ClusterFirstWithHostNet", PodDNS{Namespace: "shop", DNSPolicy: "ClusterFirstWithHostNet", HostNetwork: true, Options: []string{"ndots:2"}},
			protocol.ResolvConf{Nameservers: []string{"10.96.0.10"}, Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Ndots: 2, Options: []string{"ndots:2"}}},
		{"None", PodDNS{Namespace: "shop", DNSPolicy: "None", Nameservers: []string{"1.1.1.1", "1.0.0.1", "9.9.9.9", "8.8.8.8"}, Searches: []string{"a", "b", "c", "d", "e", "f", "g"}},
			protocol.ResolvConf{Nameservers: []string{"1.1.1.1", "1.0.0.1", "9.9.9.9", "8.8.8.8"}, Search: []string{"a", "b", "c", "d", "e", "f", "g"}, Ndots: 1, Ignored: []string{"nameserver 8.8.8.8", "search g"}}},
	} {
		got := ExpectedResolvConf(tt.pod, []string{"10.96.0.10"}, "cluster.local", node)
		tt.want.Type, tt.want.Path = protocol.TypeResolvConf, "(computed from the pod spec)"
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
	if got := DomainOf("", []string{"shop.svc.k8s.example", "svc.k8s.example"}); got != "k8s.example" {
		t.Errorf("DomainOf = %q", got)
	}
	if got := DomainOf("corp.local", nil); got != "corp.local" {
		t.Errorf("DomainOf kubelet = %q", got)
	}
}

func TestParseConfigz(t *testing.T) {
	domain, dns, resolv := parseConfigz([]byte(`{"kubeletconfig":{"clusterDomain":"cluster.local","clusterDNS":["169.254.20.10"],"resolvConf":"/run/systemd/resolve/resolv.conf"}}`))
	if domain != "cluster.local" || len(dns) != 1 || dns[0] != "169.254.20.10" || resolv != "/run/systemd/resolve/resolv.conf" {
		t.Errorf("parseConfigz = %q %q %q", domain, dns, resolv)
	}
}

func TestParseHelperOutput(t *testing.T) {
	hello := `{"type":"hello","protocol":1,"helper":"v0"}`
	ok := hello + "\n" +
		`{"type":"resolvconf","path":"/etc/resolv.conf","nameservers":["10.96.0.10"],"search":["default.svc.cluster.local"],"ndots":5}` + "\n" +
		`{"type":"dnsprobe","hop":"clusterip","server":"10.96.0.10","proto":"udp","name":"a.","query":"a.","qtype":"A","rcode":"NOERROR","answers":["10.0.0.1"],"latencyMicroseconds":800}` + "\n" +
		`{"type":"dnsload","server":"10.96.0.10","lookups":10,"answered":10,"p50Ms":1,"p99Ms":2,"maxMs":3}` + "\n" +
		`{"type":"conntrackcounters","insertFailedBefore":1,"insertFailedAfter":2,"dropBefore":0,"dropAfter":0}` + "\n" +
		`{"type":"done","findings":0}` + "\n"
	out, err := ParseHelperOutput([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if out.ResolvConf == nil || out.ResolvConf.Ndots != 5 || len(out.Probes) != 1 || out.Probes[0].Rcode != "NOERROR" || out.Load == nil || out.Load.Lookups != 10 || out.Conntrack == nil || out.Conntrack.InsertFailedAfter != 2 {
		t.Errorf("parsed %+v", out)
	}
	for in, want := range map[string]string{
		"": "the helper wrote nothing",
		hello + "\n" + `{"type":"dnsprobe","hop":"x"}` + "\n":                                     "cut short (no done line)",
		hello + "\n" + `{"type":"error","message":"no such file"}` + "\n":                         "the helper failed: no such file",
		`{"type":"hello","protocol":99,"helper":"v9"}` + "\n":                                     "speaks protocol 99",
		`{"type":"dnsprobe","hop":"x"}` + "\n":                                                    "first line",
		hello + "\n" + `{"type":"dnsprobe","latencyMicroseconds":"x"}` + "\n" + `{"type":"done"}`: "decoding the helper's dnsprobe line",
	} {
		_, err := ParseHelperOutput([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
