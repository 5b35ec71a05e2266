package dnsprobe

import "strings"

// Candidate is one name a lookup asks, in order.
type Candidate struct {
	// Name is fully qualified (trailing dot).
	Name string
	// AsIs is the name as given (not a search domain's).
	AsIs bool
	// BeforeSearch is the name as given asked before the search list
	// (it has ndots dots or more): whatever its outcome short of an
	// answer, the search list comes next.
	BeforeSearch bool
}

// Expand is the ordered list of names glibc's res_search asks for name
// with this search list and ndots (see the package doc). A name with a
// trailing dot, or any name when expand is false, is asked once.
func Expand(name string, search []string, ndots int, noTLDQuery bool) []Candidate {
	if strings.HasSuffix(name, ".") {
		return []Candidate{{Name: name, AsIs: true}}
	}
	asIs := Candidate{Name: name + ".", AsIs: true}
	dots := strings.Count(name, ".")
	var out []Candidate
	triedAsIs := false
	if dots >= ndots {
		first := asIs
		first.BeforeSearch = true
		out = append(out, first)
		triedAsIs = true
	}
	rootOnList := false
	for _, d := range search {
		d = strings.TrimSuffix(strings.TrimPrefix(d, "."), ".")
		if d == "" {
			// "." on the search list: the name as given.
			rootOnList = true
			if !triedAsIs {
				out = append(out, asIs)
				triedAsIs = true
			}
			continue
		}
		out = append(out, Candidate{Name: name + "." + d + "."})
	}
	if !triedAsIs && !rootOnList && (dots > 0 || len(search) == 0 || !noTLDQuery) {
		out = append(out, asIs)
	}
	return out
}

// Queries is how many queries a lookup of name sends when every name of
// its expansion fails (NXDOMAIN): one per name, twice that for a
// getaddrinfo lookup that asks A and AAAA.
func Queries(name string, search []string, ndots int, noTLDQuery, aAndAAAA bool) int {
	n := len(Expand(name, search, ndots, noTLDQuery))
	if aAndAAAA {
		n *= 2
	}
	return n
}
