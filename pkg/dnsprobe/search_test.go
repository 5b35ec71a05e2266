package dnsprobe

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

var k8sSearch = []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}

func names(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestExpand(t *testing.T) {
	for _, tt := range []struct {
		name       string
		search     []string
		ndots      int
		noTLDQuery bool
		want       []string
	}{
		// ndots:5: google.com has 1 dot, so every search domain is
		// asked before the name itself: 4 names, 8 queries for A+AAAA.
		{"google.com", k8sSearch, 5, false, []string{
			"google.com.default.svc.cluster.local.", "google.com.svc.cluster.local.", "google.com.cluster.local.", "google.com.",
		}},
		// the trailing dot: asked once
		{"google.com.", k8sSearch, 5, false, []string{"google.com."}},
		// enough dots: as given first, then the search list
		{"a.b.c.d.e.com", k8sSearch, 5, false, []string{
			"a.b.c.d.e.com.", "a.b.c.d.e.com.default.svc.cluster.local.", "a.b.c.d.e.com.svc.cluster.local.", "a.b.c.d.e.com.cluster.local.",
		}},
		{"google.com", k8sSearch, 1, false, []string{
			"google.com.", "google.com.default.svc.cluster.local.", "google.com.svc.cluster.local.", "google.com.cluster.local.",
		}},
		// a service name: found on the first search domain
		{"kubernetes", k8sSearch, 5, false, []string{
			"kubernetes.default.svc.cluster.local.", "kubernetes.svc.cluster.local.", "kubernetes.cluster.local.", "kubernetes.",
		}},
		// no-tld-query: a single label is never asked as given
		{"kubernetes", k8sSearch, 5, true, []string{
			"kubernetes.default.svc.cluster.local.", "kubernetes.svc.cluster.local.", "kubernetes.cluster.local.",
		}},
		{"kubernetes.default", k8sSearch, 5, true, []string{
			"kubernetes.default.default.svc.cluster.local.", "kubernetes.default.svc.cluster.local.", "kubernetes.default.cluster.local.", "kubernetes.default.",
		}},
		// no search list
		{"host", nil, 1, false, []string{"host."}},
		{"host", nil, 1, true, []string{"host."}},
		// "." on the search list is the name as given, at its place
		{"host", []string{"a.example", ".", "b.example"}, 1, false, []string{"host.a.example.", "host.", "host.b.example."}},
		// search domains written with dots around them
		{"host", []string{".a.example."}, 1, false, []string{"host.a.example.", "host."}},
	} {
		got := names(Expand(tt.name, tt.search, tt.ndots, tt.noTLDQuery))
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("Expand(%q, ndots %d, no-tld-query %v) (-want +got):\n%s", tt.name, tt.ndots, tt.noTLDQuery, d)
		}
	}
}

func TestQueries(t *testing.T) {
	// The classic: ndots:5 in a pod makes a lookup of google.com send 8
	// queries (4 names, A and AAAA) before the answer, 2 with the dot.
	if got := Queries("google.com", k8sSearch, 5, false, true); got != 8 {
		t.Errorf("google.com, ndots 5, A+AAAA: %d queries, want 8", got)
	}
	if got := Queries("google.com", k8sSearch, 5, false, false); got != 4 {
		t.Errorf("google.com, ndots 5, A: %d queries, want 4", got)
	}
	if got := Queries("google.com.", k8sSearch, 5, false, true); got != 2 {
		t.Errorf("google.com., A+AAAA: %d queries, want 2", got)
	}
	// a pod with the maximum of 6 search domains: 7 names, 14 queries
	six := []string{"a", "b", "c", "d", "e", "f"}
	if got := Queries("google.com", six, 5, false, true); got != 14 {
		t.Errorf("6 search domains: %d queries, want 14", got)
	}
	if cs := Expand("kubernetes", k8sSearch, 5, false); !cs[3].AsIs || cs[0].AsIs {
		t.Errorf("AsIs marks: %+v", cs)
	}
}
