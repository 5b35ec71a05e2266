// Package protocol holds the wire types shared by the plugin and the helper.
//
// The helper speaks JSON lines: `check` writes them on stdout, `capture`
// writes them on stderr (its stdout carries the pcap bytes). Every line has a
// "type". Field names are a contract relied on outside this project: add
// fields, never rename them.
package protocol

import (
	"encoding/json"
	"fmt"
)

// Version is the protocol version the helper announces in its hello line.
// The plugin refuses a helper with a different major protocol.
const Version = 1

// Message types.
const (
	TypeHello   = "hello"
	TypeReady   = "ready"
	TypeStats   = "stats"
	TypeError   = "error"
	TypeFinding = "finding"
	TypeDone    = "done"
	// TypeProgress lines come from a capture asked for them with
	// --progress, every that long while it runs.
	TypeProgress = "progress"
)

// Hello is the first line of every helper run (and the only line of
// `netdiag-helper version`).
type Hello struct {
	Type     string `json:"type"`
	Protocol int    `json:"protocol"`
	Helper   string `json:"helper"`
}

// Ready says a capture's socket is open with its filter attached: packets
// from now on are captured.
type Ready struct {
	Type      string `json:"type"`
	Interface string `json:"interface"`
	LinkType  string `json:"linkType"`
	Snaplen   int    `json:"snaplen"`
	Filter    string `json:"filter,omitempty"`
	Format    string `json:"format"`
}

// Stats is the last stderr line of a capture.
type Stats struct {
	Type        string `json:"type"`
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
	KernelDrops uint64 `json:"kernelDrops"`
	// Reason says why the capture stopped: count, duration, max-bytes,
	// signal, stdin-eof, heartbeat, stdout-closed or error.
	Reason          string  `json:"reason"`
	Interface       string  `json:"interface"`
	DurationSeconds float64 `json:"durationSeconds"`
	// PreFilterDropped counts packets that reached the socket before its
	// filter was attached and were discarded unwritten.
	PreFilterDropped uint64 `json:"preFilterDropped,omitempty"`
}

// Progress is a capture's running count, written on stderr every
// CaptureRequest.Progress while it runs (never unless asked): what the
// stats line will say so far.
type Progress struct {
	Type        string `json:"type"`
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
	KernelDrops uint64 `json:"kernelDrops"`
	// DurationSeconds is the time since the capture started.
	DurationSeconds float64 `json:"durationSeconds"`
}

// Error reports a failure; the helper exits non-zero after it.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Severity of a finding.
type Severity string

const (
	SeverityOK   Severity = "ok"
	SeverityInfo Severity = "info"
	SeverityWarn Severity = "warn"
	SeverityFail Severity = "fail"
)

// Finding is one result of `netdiag-helper check`.
type Finding struct {
	Type     string   `json:"type"`
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	Subject  string   `json:"subject"`
	Message  string   `json:"message"`
	Remedy   string   `json:"remedy,omitempty"`
	// Data is the JSON of the check's data struct (ConntrackData,
	// StaleData, ...); DecodeData reads it.
	Data json.RawMessage `json:"data,omitempty"`
}

// Done is the last line of a check run; a stream without it was cut short.
type Done struct {
	Type     string `json:"type"`
	Findings int    `json:"findings"`
}

// Line is any helper line, decoded far enough to dispatch on its type.
type Line struct {
	Type string
	Raw  json.RawMessage
}

// ParseLine decodes one JSON line and its type.
func ParseLine(b []byte) (Line, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Line{}, fmt.Errorf("helper wrote a line that is not JSON: %q", truncate(b, 200))
	}
	if head.Type == "" {
		return Line{}, fmt.Errorf("helper wrote a line without a type: %q", truncate(b, 200))
	}
	return Line{Type: head.Type, Raw: append(json.RawMessage(nil), b...)}, nil
}

// Decode unmarshals the line into v.
func (l Line) Decode(v any) error {
	return json.Unmarshal(l.Raw, v)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// TypeAction is the type of the lines `netdiag-helper fix` writes, one per
// change it made (or refused to make).
const TypeAction = "action"

// Action results.
const (
	ActionDone    = "done"
	ActionSkipped = "skipped"
	ActionRefused = "refused"
	ActionFailed  = "failed"
)

// Action is one change `netdiag-helper fix` made to the node, or refused or
// failed to make.
type Action struct {
	Type    string `json:"type"`
	Action  string `json:"action"`
	Target  string `json:"target"`
	Result  string `json:"result"`
	Message string `json:"message"`
	// Data is the JSON of an ActionData.
	Data json.RawMessage `json:"data,omitempty"`
}
