// Package report renders check results as a table, JSON or YAML, and turns
// them into the plugin's exit code: 0 when nothing failed, 3 when a check
// reported fail, 1 on error.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/nodeops"

	"github.com/fatih/color"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitInternal = 1
	ExitFailed   = 3
)

// Formats accepted by -o.
var Formats = []string{"table", "json", "yaml"}

// NodeResult is what one node's run produced.
type NodeResult = nodeops.Result

// Finding is a finding with the node it was found on.
type Finding struct {
	Node string `json:"node"`
	protocol.Finding
}

// Action is a change made (or refused) on a node.
type Action struct {
	Node string `json:"node"`
	protocol.Action
}

// NodeError is a node whose run failed.
type NodeError struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}

// Report is the machine-readable output (-o json|yaml).
type Report struct {
	Findings []Finding   `json:"findings"`
	Actions  []Action    `json:"actions,omitempty"`
	Errors   []NodeError `json:"errors,omitempty"`
}

// Build flattens node results into a Report, nodes in the order given.
func Build(results []NodeResult) Report {
	r := Report{Findings: []Finding{}}
	for _, nr := range results {
		for _, f := range nr.Findings {
			r.Findings = append(r.Findings, Finding{Node: nr.Node, Finding: f})
		}
		for _, a := range nr.Actions {
			r.Actions = append(r.Actions, Action{Node: nr.Node, Action: a})
		}
		if nr.Err != nil {
			r.Errors = append(r.Errors, NodeError{Node: nr.Node, Error: nr.Err.Error()})
		}
	}
	return r
}

// ValidFormat checks -o.
func ValidFormat(f string) error {
	for _, ok := range Formats {
		if f == ok {
			return nil
		}
	}
	return fmt.Errorf("-o must be one of %s, got %q", strings.Join(Formats, ", "), f)
}

// Options say how the table shows the results.
type Options struct {
	// Color colours severities (see UseColor).
	Color bool
	// TopIPs shows the conntrack check's top IPs (data.topIPs) as a
	// sub-table under its finding: the user asked for them (--top).
	TopIPs bool
}

// Render writes the results to w in format; opts shape the table (json and
// yaml carry everything anyway).
func Render(w io.Writer, format string, results []NodeResult, opts Options) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(Build(results))
	case "yaml":
		b, err := yaml.Marshal(Build(results))
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "table", "":
		return renderTable(w, results, opts)
	}
	return ValidFormat(format)
}

// UseColor decides colour for one stream: only when that stream is a
// terminal and NO_COLOR is unset.
func UseColor(isTerminal bool) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	return isTerminal
}

// severityColors are the severity colours, forced on: the decision was made
// for this stream by the caller (fatih/color's global switch looks at
// os.Stdout only).
func severityColors() map[protocol.Severity]*color.Color {
	m := map[protocol.Severity]*color.Color{
		protocol.SeverityOK:   color.New(color.FgGreen),
		protocol.SeverityInfo: color.New(color.FgCyan),
		protocol.SeverityWarn: color.New(color.FgYellow, color.Bold),
		protocol.SeverityFail: color.New(color.FgRed, color.Bold),
	}
	for _, c := range m {
		c.EnableColor()
	}
	return m
}

func renderTable(w io.Writer, results []NodeResult, opts Options) error {
	headers := []string{"CHECK", "SEVERITY", "SUBJECT", "MESSAGE"}
	colors := severityColors()
	for i, nr := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "NODE %s\n", Escape(nr.Node))
		rows := make([][]string, 0, len(nr.Findings))
		for _, f := range nr.Findings {
			rows = append(rows, []string{Escape(f.Check), Escape(string(f.Severity)), Escape(f.Subject), Escape(f.Message)})
		}
		widths := make([]int, 3)
		for j := range widths {
			widths[j] = len(headers[j])
			for _, r := range rows {
				if len(r[j]) > widths[j] {
					widths[j] = len(r[j])
				}
			}
		}
		if len(rows) > 0 {
			writeRow(w, headers, widths, nil)
		}
		indent := strings.Repeat(" ", widths[0]+2)
		for k, r := range rows {
			f := nr.Findings[k]
			var sev *color.Color
			if opts.Color {
				sev = colors[f.Severity]
			}
			writeRow(w, r, widths, sev)
			if f.Remedy != "" && (f.Severity == protocol.SeverityFail || f.Severity == protocol.SeverityWarn) {
				fmt.Fprintf(w, "%sremedy: %s\n", indent, Escape(f.Remedy))
			}
			if opts.TopIPs && f.Check == "conntrack" {
				writeTopIPs(w, indent, f)
			}
		}
		for _, a := range nr.Actions {
			fmt.Fprintf(w, "ACTION %s %s: %s (%s)\n", Escape(a.Action), Escape(a.Target), Escape(a.Message), Escape(string(a.Result)))
		}
		if nr.Err != nil {
			msg := "error: " + Escape(nr.Err.Error())
			if opts.Color {
				msg = colors[protocol.SeverityFail].Sprint(msg)
			}
			fmt.Fprintln(w, msg)
		} else if len(rows) == 0 {
			fmt.Fprintln(w, "no findings")
		}
	}
	if len(results) > 0 {
		fmt.Fprintln(w)
		for _, nr := range results {
			fmt.Fprintln(w, Summary(nr, opts.Color))
		}
	}
	return nil
}

// writeTopIPs writes the conntrack check's top IPs as an indented table
// (IP, POD, ENTRIES), or why there are none.
func writeTopIPs(w io.Writer, indent string, f protocol.Finding) {
	var data protocol.ConntrackData
	if err := f.DecodeData(&data); err != nil {
		fmt.Fprintf(w, "%stop IPs: %s\n", indent, Escape(err.Error()))
		return
	}
	if data.TopIPsError != "" {
		fmt.Fprintf(w, "%stop IPs: %s\n", indent, Escape(data.TopIPsError))
		return
	}
	if data.TopIPsScope == "" {
		return // not asked for
	}
	top := data.TopIPs
	what := "pod IP"
	if data.TopIPsScope == "all" {
		what = "IP"
	}
	if len(top) == 0 {
		fmt.Fprintf(w, "%sno %s has conntrack entries\n", indent, what)
		return
	}
	rows := [][]string{{"IP", "POD", "ENTRIES"}}
	for _, t := range top {
		pod := Escape(t.Pod)
		if pod == "" {
			pod = "-"
		}
		rows = append(rows, []string{t.IP, pod, strconv.Itoa(t.Entries)})
	}
	widths := make([]int, 2)
	for _, r := range rows {
		for j := range widths {
			widths[j] = max(widths[j], len(r[j]))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		writeCells(&b, r, widths, nil)
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// Summary is the one-line verdict on a node's run: "NODE: 6 checks, all
// ok", "NODE: 1 fail (conntrack), 1 warn (mtu)"; colour only when color is
// set.
func Summary(nr NodeResult, color bool) string {
	colors := severityColors()
	paint := func(sev protocol.Severity, s string) string {
		if color {
			return colors[sev].Sprint(s)
		}
		return s
	}
	count := map[protocol.Severity]int{}
	names := map[protocol.Severity][]string{}
	var checks []string
	for _, f := range nr.Findings {
		count[f.Severity]++
		if !slices.Contains(names[f.Severity], f.Check) {
			names[f.Severity] = append(names[f.Severity], Escape(f.Check))
		}
		if !slices.Contains(checks, f.Check) {
			checks = append(checks, Escape(f.Check))
		}
	}
	part := func(sev protocol.Severity) string {
		return paint(sev, fmt.Sprintf("%d %s", count[sev], sev)) + " (" + strings.Join(names[sev], ", ") + ")"
	}
	var parts []string
	for _, sev := range []protocol.Severity{protocol.SeverityFail, protocol.SeverityWarn} {
		if count[sev] > 0 {
			parts = append(parts, part(sev))
		}
	}
	var line string
	switch {
	case len(nr.Findings) == 0 && nr.Err != nil:
		return nr.Node + ": " + paint(protocol.SeverityFail, "error") + ", nothing checked"
	case len(nr.Findings) == 0:
		return nr.Node + ": no findings"
	case len(parts) > 0:
		if count[protocol.SeverityInfo] > 0 {
			parts = append(parts, part(protocol.SeverityInfo))
		}
		line = strings.Join(parts, ", ")
	default:
		line = fmt.Sprintf("%d %s, %s", len(checks), plural(len(checks), "check", "checks"), paint(protocol.SeverityOK, "all ok"))
		if count[protocol.SeverityInfo] > 0 {
			line += "; " + part(protocol.SeverityInfo)
		}
	}
	if nr.Err != nil {
		line += ", then an " + paint(protocol.SeverityFail, "error")
	}
	return nr.Node + ": " + line
}

func writeRow(w io.Writer, cells []string, widths []int, sev *color.Color) {
	var b strings.Builder
	writeCells(&b, cells, widths, sev)
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
}

// writeCells pads every cell but the last to its column's width plus two
// spaces; sev colours the second cell.
func writeCells(b *strings.Builder, cells []string, widths []int, sev *color.Color) {
	for j, c := range cells {
		if j == len(cells)-1 {
			b.WriteString(c)
			break
		}
		pad := strings.Repeat(" ", widths[j]-len(c)+2)
		if j == 1 && sev != nil {
			c = sev.Sprint(c)
		}
		b.WriteString(c)
		b.WriteString(pad)
	}
}

// ExitError is an error with the plugin's exit code.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// ExitCode is the process exit code.
func (e *ExitError) ExitCode() int { return e.Code }

// Outcome is the error Run returns for the results: nil when nothing
// failed, an ExitError with code 3 when a check reported fail, and an error
// (exit code 1) when a node's run failed.
func Outcome(results []NodeResult) error {
	var errNodes []string
	failed := 0
	failedNodes := map[string]bool{}
	for _, nr := range results {
		if nr.Err != nil {
			errNodes = append(errNodes, fmt.Sprintf("%s: %v", nr.Node, nr.Err))
		}
		for _, f := range nr.Findings {
			if f.Severity == protocol.SeverityFail {
				failed++
				failedNodes[nr.Node] = true
			}
		}
	}
	if len(errNodes) > 0 {
		sort.Strings(errNodes)
		if len(errNodes) == 1 {
			return &ExitError{Code: ExitInternal, Msg: errNodes[0]}
		}
		return &ExitError{Code: ExitInternal, Msg: fmt.Sprintf("%d nodes could not be checked:\n  %s", len(errNodes), strings.Join(errNodes, "\n  "))}
	}
	if failed > 0 {
		return &ExitError{Code: ExitFailed, Msg: fmt.Sprintf("%d %s failed on %d %s", failed, plural(failed, "check", "checks"), len(failedNodes), plural(len(failedNodes), "node", "nodes"))}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
