// Package report renders check results as a table, JSON or YAML, and turns
// them into the plugin's exit code: 0 when nothing failed, 3 when a check
// reported fail, 1 on error.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

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
type NodeResult struct {
	Node     string
	Findings []protocol.Finding
	Actions  []protocol.Action
	// Err is set when the run on the node failed (findings may still be
	// partial).
	Err error
}

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

// Render writes the results to w in format; colour is used in the table
// only when useColor is set (see UseColor).
func Render(w io.Writer, format string, results []NodeResult, useColor bool) error {
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
		return renderTable(w, results, useColor)
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

func renderTable(w io.Writer, results []NodeResult, useColor bool) error {
	headers := []string{"CHECK", "SEVERITY", "SUBJECT", "MESSAGE"}
	colors := severityColors()
	for i, nr := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "NODE %s\n", nr.Node)
		rows := make([][]string, 0, len(nr.Findings))
		for _, f := range nr.Findings {
			rows = append(rows, []string{f.Check, string(f.Severity), f.Subject, f.Message})
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
		for k, r := range rows {
			f := nr.Findings[k]
			var sev *color.Color
			if useColor {
				sev = colors[f.Severity]
			}
			writeRow(w, r, widths, sev)
			if f.Remedy != "" && (f.Severity == protocol.SeverityFail || f.Severity == protocol.SeverityWarn) {
				fmt.Fprintf(w, "%s  remedy: %s\n", strings.Repeat(" ", widths[0]), f.Remedy)
			}
		}
		for _, a := range nr.Actions {
			fmt.Fprintf(w, "ACTION %s %s: %s (%s)\n", a.Action, a.Target, a.Message, a.Result)
		}
		if nr.Err != nil {
			msg := "error: " + nr.Err.Error()
			if useColor {
				msg = colors[protocol.SeverityFail].Sprint(msg)
			}
			fmt.Fprintln(w, msg)
		} else if len(rows) == 0 {
			fmt.Fprintln(w, "no findings")
		}
	}
	return nil
}

func writeRow(w io.Writer, cells []string, widths []int, sev *color.Color) {
	var b strings.Builder
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
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
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

// ExitCodeOf is the exit code for err: 0 for nil, the code of an
// ExitError, 1 otherwise.
func ExitCodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitInternal
}
