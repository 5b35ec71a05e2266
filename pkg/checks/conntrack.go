package checks

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// tableFullText is what the kernel logs when it drops a packet because the
// conntrack table is full.
const tableFullText = "nf_conntrack: table full, dropping packet"

// severityRank orders severities, ok lowest.
func severityRank(s protocol.Severity) int {
	switch s {
	case protocol.SeverityFail:
		return 3
	case protocol.SeverityWarn:
		return 2
	case protocol.SeverityInfo:
		return 1
	}
	return 0
}

// ago says how long ago, in the unit that reads best: "40 s", "12 min",
// "3 h 5 min".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	h := int(d.Hours())
	return fmt.Sprintf("%d h %d min", h, int(d.Minutes())-60*h)
}

// tableFullPast tells of "table full" messages within Config.Recent: how
// many, how long ago the last one was, and what can be said of the max
// then. The kernel does not log the max, so it is known to have been raised
// only when netdiag's persisted file is newer than the last message.
func tableFullPast(cfg Config, ks kmsgScan, pct uint64) string {
	msg := fmt.Sprintf("the kernel dropped packets: %d %q messages in the last %s", ks.Recent, tableFullText, cfg.Recent)
	if !ks.HasLast {
		return msg + " (undated: their age is unknown)"
	}
	msg += fmt.Sprintf(", last %s ago", ago(ks.LastAgo))
	last := cfg.Now().Add(-ks.LastAgo)
	persisted := filepath.Join(cfg.HostRoot, "etc", "sysctl.d", ConntrackPersistFile)
	if fi, err := os.Stat(persisted); err == nil && fi.ModTime().After(last) {
		msg += fmt.Sprintf("; nf_conntrack_max was raised since (by kubectl netdiag, %s ago)", ago(cfg.Now().Sub(fi.ModTime())))
	} else {
		msg += "; the max at that time is not known"
	}
	if pct < 50 {
		msg += fmt.Sprintf("; usage is now far below the max (%d%%)", pct)
	}
	return msg
}

// flowAddrs are the addresses of one conntrack entry (both directions,
// so NATed pod addresses count too).
type flowAddrs []netip.Addr

// kmsgScan is what the kernel log says about the conntrack table.
type kmsgScan struct {
	Events int
	// Recent counts the events within Config.Recent (events without a
	// timestamp count as recent: nothing says they are old).
	Recent int
	// LastAgo is how long ago the newest timestamped event was.
	LastAgo time.Duration
	HasLast bool
}

func scanTableFull(recs []kmsgRecord, uptime float64, haveUptime bool, recent time.Duration) kmsgScan {
	var s kmsgScan
	for _, r := range recs {
		if !strings.Contains(r.Message, tableFullText) {
			continue
		}
		s.Events++
		if r.Usec < 0 || !haveUptime {
			s.Recent++
			continue
		}
		ago := time.Duration((uptime - float64(r.Usec)/1e6) * float64(time.Second))
		if ago < 0 {
			ago = 0
		}
		if !s.HasLast || ago < s.LastAgo {
			s.LastAgo, s.HasLast = ago, true
		}
		if ago <= recent {
			s.Recent++
		}
	}
	return s
}

func checkConntrack(e *env, emit func(protocol.Finding)) error {
	cfg := e.cfg
	sysDir := filepath.Join(cfg.Proc, "sys", "net", "netfilter")
	count, err := readUint(filepath.Join(sysDir, "nf_conntrack_count"))
	if errors.Is(err, fs.ErrNotExist) {
		emit(protocol.Finding{
			Check:    CheckConntrack,
			Severity: protocol.SeverityInfo,
			Subject:  "node",
			Message:  "conntrack is not in use on this node (no " + filepath.Join(sysDir, "nf_conntrack_count") + ": the nf_conntrack module is not loaded)",
			Data:     protocol.EncodeData(protocol.ConntrackData{Loaded: ptr(false)}),
		})
		return nil
	}
	if err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	maxEntries, err := readUint(filepath.Join(sysDir, "nf_conntrack_max"))
	if err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}

	data := protocol.ConntrackData{Count: ptr(count), Max: ptr(maxEntries)}
	var notes []string

	var recommended uint64
	if mi, err := readMeminfo(filepath.Join(cfg.Proc, "meminfo")); err == nil && mi["MemTotal"] > 0 {
		recommended = mi["MemTotal"] / 32
		data.RecommendedMax = recommended
		data.MemTotalKB = mi["MemTotal"]
	} else {
		notes = append(notes, fmt.Sprintf("meminfo: %v", errOr(err, "no MemTotal")))
	}

	// Drops happening now: the per-CPU counters read twice, DropSample
	// apart. Counters since boot say nothing about now.
	statPath := filepath.Join(cfg.Proc, "net", "stat", "nf_conntrack")
	var st conntrackStat
	haveStat, haveDelta := false, false
	var delta map[string]uint64
	if s, err := readConntrackStat(statPath); err == nil {
		st, haveStat = s, true
		if cfg.DropSample > 0 {
			cfg.sleep(cfg.DropSample)
			if s2, err := readConntrackStat(statPath); err == nil {
				delta = map[string]uint64{}
				for _, k := range []string{"drop", "insert_failed", "early_drop"} {
					if s2.Totals[k] > s.Totals[k] {
						delta[k] = s2.Totals[k] - s.Totals[k]
					}
				}
				st, haveDelta = s2, true
				data.SampleSeconds = cfg.DropSample.Seconds()
				data.DropsDuringCheck = ptr(delta["drop"])
				data.InsertFailedDuringCheck = ptr(delta["insert_failed"])
				data.EarlyDropDuringCheck = ptr(delta["early_drop"])
			} else {
				notes = append(notes, fmt.Sprintf("per-CPU stats, second read: %v", err))
			}
		}
		data.Drop = ptr(st.Totals["drop"])
		data.InsertFailed = ptr(st.Totals["insert_failed"])
		data.EarlyDrop = ptr(st.Totals["early_drop"])
		data.CPUs = st.CPUs
	} else {
		notes = append(notes, fmt.Sprintf("per-CPU stats: %v", err))
	}

	var ks kmsgScan
	if cfg.Kmsg != "" {
		recs, err := readKmsg(cfg.Kmsg)
		if err != nil {
			notes = append(notes, fmt.Sprintf("kernel log %s: %v", cfg.Kmsg, err))
		} else {
			up, uerr := readUptime(filepath.Join(cfg.Proc, "uptime"))
			ks = scanTableFull(recs, up, uerr == nil, cfg.Recent)
			data.TableFullEvents = ptr(ks.Events)
			data.RecentTableFullEvents = ptr(ks.Recent)
			if ks.HasLast {
				data.LastTableFull = cfg.Now().Add(-ks.LastAgo).UTC().Format(time.RFC3339)
			}
		}
	}

	if cfg.Top > 0 {
		scope := e.podScope()
		var counts map[netip.Addr]uint32
		var err error
		if cfg.dumpConntrack != nil {
			var flows []flowAddrs
			if flows, err = cfg.dumpConntrack(); err == nil {
				counts = countFlows(flows, scope)
			}
		} else {
			counts, err = e.countConntrack(scope)
		}
		if err != nil {
			data.TopIPsError = err.Error()
		} else {
			data.TopIPs = topIPs(counts, cfg.Top, cfg.Pods)
			if scope == nil {
				data.TopIPsScope = "all"
			} else {
				data.TopIPsScope = "pods"
			}
		}
	}
	if len(notes) > 0 {
		data.Notes = notes
	}

	var pct uint64
	if maxEntries > 0 {
		pct = count * 100 / maxEntries
	}
	data.Percent = ptr(pct)
	msg := fmt.Sprintf("conntrack table %d%% full (%d of %d)", pct, count, maxEntries)
	sev := protocol.SeverityOK
	raise := func(to protocol.Severity) {
		if severityRank(to) > severityRank(sev) {
			sev = to
		}
	}
	switch {
	case pct >= 95:
		raise(protocol.SeverityFail)
	case pct >= 80:
		raise(protocol.SeverityWarn)
	}
	if haveDelta && delta["drop"]+delta["insert_failed"]+delta["early_drop"] > 0 {
		raise(protocol.SeverityFail)
		msg += fmt.Sprintf("; the kernel is dropping now: +%d drop, +%d insert_failed, +%d early_drop in %s", delta["drop"], delta["insert_failed"], delta["early_drop"], cfg.DropSample)
	}
	if ks.Recent > 0 {
		raise(protocol.SeverityWarn)
		msg += "; " + tableFullPast(cfg, ks, pct)
	}
	if sev == protocol.SeverityOK && haveStat && (st.Totals["drop"] > 0 || st.Totals["early_drop"] > 0 || st.Totals["insert_failed"] > 0) {
		if haveDelta {
			msg += fmt.Sprintf("; no drops during the check (%d drop, %d early_drop, %d insert_failed since boot)", st.Totals["drop"], st.Totals["early_drop"], st.Totals["insert_failed"])
		} else {
			msg += fmt.Sprintf("; since boot: %d drop, %d early_drop, %d insert_failed (not sampled twice: whether drops happen now is unknown)", st.Totals["drop"], st.Totals["early_drop"], st.Totals["insert_failed"])
		}
	}
	if sev == protocol.SeverityOK && ks.Events > ks.Recent {
		msg += fmt.Sprintf("; %d older %q messages in the kernel log", ks.Events-ks.Recent, tableFullText)
		if ks.HasLast {
			msg += fmt.Sprintf(" (last %s ago)", ago(ks.LastAgo))
		}
	}

	var remedy string
	if sev == protocol.SeverityWarn || sev == protocol.SeverityFail {
		if recommended > maxEntries {
			remedy = fmt.Sprintf("raise net.netfilter.nf_conntrack_max to %d (MemTotal/32) or spread the workload", recommended)
		} else {
			remedy = "nf_conntrack_max is already at MemTotal/32 or above: spread the workload, or find what opens so many connections (data.topIPs)"
		}
	}
	emit(protocol.Finding{Check: CheckConntrack, Severity: sev, Subject: "node", Message: msg, Remedy: remedy, Data: protocol.EncodeData(data)})
	return nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// countFlows counts, per address in scope (all addresses when scope is
// nil), the entries it appears in (once per entry).
func countFlows(flows []flowAddrs, scope func(netip.Addr) bool) map[netip.Addr]uint32 {
	c := newIPCounter(scope)
	for _, f := range flows {
		c.addEntry(f)
	}
	return c.counts
}

// topIPs returns the n addresses with the most entries, most first, ties
// by address (as text, the way the list shows them).
func topIPs(counts map[netip.Addr]uint32, n int, pods []PodInfo) []protocol.TopIP {
	if n <= 0 {
		return []protocol.TopIP{}
	}
	type addrCount struct {
		a netip.Addr
		n uint32
	}
	all := make([]addrCount, 0, len(counts))
	for a, c := range counts {
		all = append(all, addrCount{a, c})
	}
	// Cut by count first, so that only the addresses that can make the
	// list (those tied with the last place included) become text.
	slices.SortFunc(all, func(x, y addrCount) int { return cmp.Compare(y.n, x.n) })
	if len(all) > n {
		end := n
		for end < len(all) && all[end].n == all[n-1].n {
			end++
		}
		all = all[:end]
	}
	names := map[netip.Addr]string{}
	for _, p := range pods {
		if a, ok := netip.AddrFromSlice(p.IP); ok {
			names[a.Unmap()] = p.Label()
		}
	}
	out := make([]protocol.TopIP, 0, len(all))
	for _, c := range all {
		out = append(out, protocol.TopIP{IP: c.a.String(), Entries: int(c.n), Pod: names[c.a]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Entries != out[j].Entries {
			return out[i].Entries > out[j].Entries
		}
		return out[i].IP < out[j].IP
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// podScope says which addresses are pod addresses: those of cfg.Pods and
// cfg.PodIP, and those in cfg.PodCIDRs (or, without them, in the bridge's
// subnets). nil means nothing is known: count every address.
func (e *env) podScope() func(netip.Addr) bool {
	ips := map[netip.Addr]bool{}
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			ips[a.Unmap()] = true
		}
	}
	for _, p := range e.cfg.Pods {
		add(p.IP)
	}
	add(e.cfg.PodIP)
	var prefixes []netip.Prefix
	cidrs := e.cfg.PodCIDRs
	if len(cidrs) == 0 {
		cidrs = e.bridgeSubnets()
	}
	for _, c := range cidrs {
		if a, ok := netip.AddrFromSlice(c.IP); ok {
			ones, _ := c.Mask.Size()
			if a.Is4In6() {
				a = a.Unmap()
			}
			prefixes = append(prefixes, netip.PrefixFrom(a, ones).Masked())
		}
	}
	if len(ips) == 0 && len(prefixes) == 0 {
		return nil
	}
	return func(a netip.Addr) bool {
		if ips[a] {
			return true
		}
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}

// ptr returns a pointer to v, for the optional fields of data structs.
func ptr[T any](v T) *T { return &v }

// ConntrackStatTotals reads a net/stat/nf_conntrack file: each column
// summed over CPUs (netdiag-helper dns reads insert_failed and drop before
// and after its queries).
func ConntrackStatTotals(path string) (map[string]uint64, error) {
	st, err := readConntrackStat(path)
	return st.Totals, err
}
