package dnsdiag

import (
	"regexp"
	"strings"
)

// Known CoreDNS failures in its log lines.
const (
	LogLoop      = "loop"
	LogIOTimeout = "i/o timeout"
	LogServfail  = "SERVFAIL"
)

// LogHit is a CoreDNS log line that names a known failure.
type LogHit struct {
	Pod  string `json:"pod"`
	Kind string `json:"kind"`
	Line string `json:"line"`
}

var (
	loopRE     = regexp.MustCompile(`(?i)\bLoop \(.*\) detected\b`)
	ioTimeout  = regexp.MustCompile(`\bi/o timeout\b`)
	servfailRE = regexp.MustCompile(`\bSERVFAIL\b`)
)

// MatchLogLine says which known failure a CoreDNS log line names: a
// forwarding loop ("[FATAL] plugin/loop: Loop (127.0.0.1:55953 ->
// :53) detected for zone "."), an upstream that does not answer ("read
// udp ...: i/o timeout") or a SERVFAIL answer (the log plugin's lines
// and the errors plugin's). "" for any other line.
func MatchLogLine(line string) string {
	switch {
	case loopRE.MatchString(line):
		return LogLoop
	case ioTimeout.MatchString(line):
		return LogIOTimeout
	case servfailRE.MatchString(line):
		return LogServfail
	}
	return ""
}

// MatchLogs returns the lines of one pod's log that name a known failure,
// at most perKind of each kind (the last ones: the most recent).
func MatchLogs(pod, log string, perKind int) []LogHit {
	byKind := map[string][]LogHit{}
	var order []string
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		kind := MatchLogLine(line)
		if kind == "" {
			continue
		}
		if _, seen := byKind[kind]; !seen {
			order = append(order, kind)
		}
		byKind[kind] = append(byKind[kind], LogHit{Pod: pod, Kind: kind, Line: line})
	}
	var out []LogHit
	for _, k := range order {
		hits := byKind[k]
		if perKind > 0 && len(hits) > perKind {
			hits = hits[len(hits)-perKind:]
		}
		out = append(out, hits...)
	}
	return out
}
