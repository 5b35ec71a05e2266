// Package dnsprobe is the helper's side of `netdiag-helper dns`: it reads
// the resolv.conf the pod's resolver reads, expands names with its search
// list the way glibc does, asks each hop (server) over UDP and TCP, and
// reports every query as a protocol.DNSProbe line, so the plugin can name
// the hop that fails.
//
// glibc behaviours it follows (resolv/res_init.c, resolv/res_query.c,
// resolv/res_send.c of glibc 2.3x; resolv.conf(5)):
//
//   - resolv.conf: a line starting with '#' or ';' is a comment; a keyword
//     must be followed by a space or a tab. At most 3 nameservers (MAXNS).
//     "domain" and "search" replace each other: the last one wins. options
//     accumulate over lines; ndots is capped at 15, timeout at 30,
//     attempts at 5; unknown options are ignored.
//   - Search domains: we keep the first 6 (glibc before 2.26 used no
//     more, kubelet warned past 6 until 1.28) and report the others as
//     ignored; glibc 2.26+ and musl use them all.
//   - Search (res_search): a name with a trailing dot is asked once, as
//     given. A name with at least ndots dots is asked as given first,
//     then with each search domain; one with fewer dots with each search
//     domain first, then as given (not with options no-tld-query when it
//     has no dot). A search domain "." is the name as given.
//   - How the walk goes on: the name as given asked first (enough dots)
//     moves to the search list whatever its outcome. Then NXDOMAIN, NOERROR without records (NODATA)
//     and SERVFAIL move to the next name; a timeout, REFUSED, FORMERR or
//     NOTIMP end the search list, and the name as given is still asked if
//     it was not yet ("stop searching up, but try the input name below in
//     case it's fully-qualified"); connection refused ends the lookup.
//     The first NOERROR answer with records ends it.
//   - Parallel A and AAAA (--load): both queries leave one UDP socket
//     back to back (the same source port: kubernetes#56903's conntrack
//     insert race); a missing answer is asked again after the timeout
//     (5 s by default), as glibc's send_dg does on its next attempt.
package dnsprobe
