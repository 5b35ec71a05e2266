package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// VersionError is a helper that speaks another protocol than the plugin.
// Both sides refuse it: the fields and flags of one protocol version mean
// nothing certain in another.
type VersionError struct {
	Helper, Plugin int
	// HelperVersion is the helper's own version, when it said.
	HelperVersion string
}

func (e *VersionError) Error() string {
	helper := "the helper image"
	if e.HelperVersion != "" {
		helper += " (" + e.HelperVersion + ")"
	}
	return fmt.Sprintf("%s speaks protocol %d, this plugin speaks protocol %d: use the helper image of this plugin's version (--image, or KUBECTL_NETDIAG_IMAGE)", helper, e.Helper, e.Plugin)
}

// CheckHello applies the version policy to a helper's hello.
func CheckHello(h Hello) error {
	if h.Protocol != Version {
		return &VersionError{Helper: h.Protocol, Plugin: Version, HelperVersion: h.Helper}
	}
	return nil
}

// ErrNotJSON marks a line that is not one of the helper's JSON lines (a
// runtime or libc message on stderr, say).
var ErrNotJSON = errors.New("not a helper JSON line")

// Message is one decoded helper line: Type says which field is set.
type Message struct {
	Type    string
	Raw     json.RawMessage
	Hello   *Hello
	Ready   *Ready
	Stats   *Stats
	Error   *Error
	Finding *Finding
	Action  *Action
	Done    *Done
	// dns lines
	ResolvConf *ResolvConf
	DNSProbe   *DNSProbe
	DNSLoad    *DNSLoad
	Conntrack  *ConntrackCounters
}

// Decoder reads a helper's JSON lines, one at a time, the same way for
// captures (stderr) and checks and fixes (stdout): the first line must be
// a hello of this plugin's protocol, nothing may follow done, and each
// line decodes into its type. Unknown types are passed through (Raw) for
// newer helpers of the same protocol.
type Decoder struct {
	// Hello is the helper's hello, once seen.
	Hello *Hello
	done  bool
}

// Decode decodes one line (without its newline). Lines that are not JSON
// objects with a type are ErrNotJSON.
func (d *Decoder) Decode(line []byte) (Message, error) {
	line = bytes.TrimSpace(line)
	l, err := ParseLine(line)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	m := Message{Type: l.Type, Raw: l.Raw}
	if d.done {
		return m, fmt.Errorf("the helper wrote a %q line after done", l.Type)
	}
	if d.Hello == nil && l.Type != TypeHello {
		return m, fmt.Errorf("the helper's first line is %q, not hello", l.Type)
	}
	var target any
	switch l.Type {
	case TypeHello:
		m.Hello = &Hello{}
		target = m.Hello
	case TypeReady:
		m.Ready = &Ready{}
		target = m.Ready
	case TypeStats:
		m.Stats = &Stats{}
		target = m.Stats
	case TypeError:
		m.Error = &Error{}
		target = m.Error
	case TypeFinding:
		m.Finding = &Finding{}
		target = m.Finding
	case TypeAction:
		m.Action = &Action{}
		target = m.Action
	case TypeDone:
		m.Done = &Done{}
		target = m.Done
	case TypeResolvConf:
		m.ResolvConf = &ResolvConf{}
		target = m.ResolvConf
	case TypeDNSProbe:
		m.DNSProbe = &DNSProbe{}
		target = m.DNSProbe
	case TypeDNSLoad:
		m.DNSLoad = &DNSLoad{}
		target = m.DNSLoad
	case TypeConntrackCounters:
		m.Conntrack = &ConntrackCounters{}
		target = m.Conntrack
	default:
		return m, nil
	}
	if err := l.Decode(target); err != nil {
		return m, fmt.Errorf("decoding the helper's %s line: %v", l.Type, err)
	}
	switch l.Type {
	case TypeHello:
		if d.Hello != nil {
			return m, fmt.Errorf("the helper said hello twice")
		}
		d.Hello = m.Hello
		if err := CheckHello(*m.Hello); err != nil {
			return m, err
		}
	case TypeDone:
		d.done = true
	}
	return m, nil
}

// Done says whether the done line was seen.
func (d *Decoder) Done() bool { return d.done }

// ErrCutShort says a helper's output lacked its hello or done line, or
// broke a rule of the stream.
var ErrCutShort = errors.New("the helper's report was cut short")

// DecodeOutput decodes a helper's whole stdout (check, fix, dns) with one
// Decoder, calling each for every message, and returns the error line's
// message, if any. A helper of another protocol is a *VersionError; a line
// that is not JSON, a stream out of order or without its done line wraps
// ErrCutShort (or says the helper wrote nothing).
func DecodeOutput(b []byte, each func(Message) error) (helperError string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	var dec Decoder
	n := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		n++
		m, err := dec.Decode(line)
		var verr *VersionError
		switch {
		case errors.As(err, &verr):
			return helperError, err
		case errors.Is(err, ErrNotJSON):
			return helperError, fmt.Errorf("the helper wrote a line that is not JSON: %q", truncate(line, 200))
		case err != nil:
			return helperError, fmt.Errorf("%w: %v", ErrCutShort, err)
		}
		if m.Error != nil {
			helperError = m.Error.Message
		}
		if err := each(m); err != nil {
			return helperError, err
		}
	}
	if err := sc.Err(); err != nil {
		return helperError, fmt.Errorf("reading the helper's report: %w", err)
	}
	switch {
	case n == 0:
		return helperError, fmt.Errorf("%w: the helper wrote nothing", ErrCutShort)
	case !dec.Done() && helperError != "":
		return helperError, fmt.Errorf("%w: %s", ErrCutShort, helperError)
	case !dec.Done():
		return helperError, fmt.Errorf("%w (no done line)", ErrCutShort)
	}
	return helperError, nil
}
