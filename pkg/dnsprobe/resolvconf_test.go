package dnsprobe

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseResolvConf(t *testing.T) {
	for _, tt := range []struct {
		file string
		want Conf
	}{
		{"kubernetes.conf", Conf{
			Nameservers: []string{"10.96.0.10"},
			Search:      []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Ndots:       5, Timeout: 5, Attempts: 2, Options: []string{"ndots:5"},
		}},
		{"everything.conf", Conf{
			Nameservers: []string{"10.0.0.1", "fd00::53", "10.0.0.2"},
			Search:      []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example"},
			Ndots:       15, Timeout: 3, Attempts: 5,
			Rotate: true, SingleRequest: true, SingleRequestReopen: true, UseVC: true,
			Options: []string{"ndots:20", "timeout:3", "attempts:9", "rotate", "single-request", "single-request-reopen", "use-vc", "edns0", "frobnicate", "ndots:x"},
			Ignored: []string{
				"nameserver nope: not an IP address",
				"nameserver 10.0.0.3: past the resolver's limit of 3 nameservers",
				"option frobnicate: unknown to glibc",
				"option ndots:x: not a number",
				"sortlist 10.0.0.0/255.0.0.0: only orders addresses",
				`line 12 "nameserver10.0.0.9": not understood by the resolver`,
				`line 13 "  # an indented line is no comment to glibc": not understood by the resolver`,
				"search g.example: past 6 search domains (glibc before 2.26 ignores it, newer glibc and musl use it; kubelet warned past 6 before 1.28)",
				"search h.example: past 6 search domains (glibc before 2.26 ignores it, newer glibc and musl use it; kubelet warned past 6 before 1.28)",
			},
		}},
		{"domain-last.conf", Conf{Nameservers: []string{"192.0.2.53"}, Search: []string{"corp.example"}, Ndots: 1, Timeout: 5, Attempts: 2}},
		{"search-last.conf", Conf{Search: []string{"one.example", "two.example"}, Ndots: 1, Timeout: 5, Attempts: 2}},
		{"empty.conf", DefaultConf()},
	} {
		got, err := readResolvConf(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.file, d)
		}
	}
}

func TestResolvConfLine(t *testing.T) {
	c, err := readResolvConf("testdata/empty.conf")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Line("/etc/resolv.conf")
	// empty lists are [] on the wire, not null
	if l.Nameservers == nil || l.Search == nil || l.Ndots != 1 || l.TimeoutSeconds != 5 || l.Attempts != 2 {
		t.Errorf("line of an empty resolv.conf = %+v", l)
	}
}
