package nodeops

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// ConntrackPersistDir is where fixes persist nf_conntrack_max on the node:
// the one node directory the node pod mounts writable.
const ConntrackPersistDir = kube.SysctlDir

// Step is one change a fix makes: what to tell the user, what the user must
// see before approving it (Detail lines, unescaped: the caller escapes
// them), and what it sets in the helper's fix request. A step with Refuse
// set is not run: the fix refuses it, saying why.
type Step struct {
	What   string
	Detail []string
	Apply  func(*protocol.FixRequest)
	Refuse string
}

// Fixer runs the steps a check's report calls for on a node, in the node
// pod the check ran in. The command supplies the dialogue.
type Fixer struct {
	// Plan turns the check's report into steps.
	Plan func(rep *kube.HelperReport) ([]Step, error)
	// DryRun shows the steps and the helper command, and runs nothing.
	DryRun bool
	// Show is called with what will change and what the user must see,
	// before the question (and, for dry runs, with the helper command).
	Show func(node string, what, detail []string, command []string)
	// Approve asks the user; nil approves everything.
	Approve func(ctx context.Context, node string, what []string) (bool, error)
	// Say tells the user something about the node (refused, declined).
	Say func(node, msg string)
}

// run plans and runs the fix; it returns the actions taken and whether to
// check again.
func (f *Fixer) run(ctx context.Context, node string, s Session, rep *kube.HelperReport, check protocol.CheckRequest) ([]protocol.Action, bool, error) {
	say := func(msg string) {
		if f.Say != nil {
			f.Say(node, msg)
		}
	}
	steps, err := f.Plan(rep)
	if err != nil {
		return nil, false, err
	}
	if len(steps) == 0 {
		return nil, false, nil
	}
	for _, st := range steps {
		if st.Refuse != "" {
			say("left unchanged: " + st.Refuse)
			return []protocol.Action{{Type: protocol.TypeAction, Action: st.What, Target: node, Result: protocol.ActionRefused, Message: st.Refuse}}, false, fmt.Errorf("%s", st.Refuse)
		}
	}
	req := protocol.DefaultFixRequest()
	req.Check = check
	var what, detail []string
	for _, st := range steps {
		st.Apply(&req)
		what = append(what, st.What)
		detail = append(detail, st.Detail...)
	}
	var command []string
	if f.DryRun {
		command = append([]string{kube.HelperPath}, req.Command()...)
	}
	if f.Show != nil {
		f.Show(node, what, detail, command)
	}
	if f.DryRun {
		return nil, false, nil
	}
	if f.Approve != nil {
		ok, err := f.Approve(ctx, node, what)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			say("left unchanged")
			return []protocol.Action{{Type: protocol.TypeAction, Action: "confirm", Target: node, Result: protocol.ActionSkipped, Message: "declined: nothing changed"}}, false, nil
		}
	}
	frep, err := s.Exec(ctx, req.Command(), req.Check.Stdin())
	var actions []protocol.Action
	if frep != nil {
		actions = frep.Actions
	}
	if err != nil {
		return actions, false, fmt.Errorf("fixing: %w", err)
	}
	var bad []string
	for _, a := range actions {
		if a.Result == protocol.ActionFailed || a.Result == protocol.ActionRefused {
			bad = append(bad, fmt.Sprintf("%s %s %s: %s", a.Action, a.Target, a.Result, a.Message))
		}
	}
	if len(bad) > 0 {
		return actions, true, fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return actions, true, nil
}

// PlanNodeFixes plans the node fixes: a down bridge comes up (bridge);
// nf_conntrack_max is raised to the recommended value when the table is
// warn/fail and below it (conntrack).
func PlanNodeFixes(bridge, conntrack bool) func(rep *kube.HelperReport) ([]Step, error) {
	return func(rep *kube.HelperReport) ([]Step, error) {
		var steps []Step
		for _, f := range rep.Findings {
			switch {
			case bridge && f.Check == protocol.CheckBridge && f.Severity == protocol.SeverityFail:
				var d protocol.BridgeData
				if err := f.DecodeData(&d); err != nil {
					return nil, err
				}
				if d.AdminUp != nil && !*d.AdminUp && d.Bridge != "" {
					name := d.Bridge
					steps = append(steps, Step{What: "bring bridge " + name + " up", Apply: func(r *protocol.FixRequest) { r.BridgeUp = name }})
				}
			case conntrack && f.Check == protocol.CheckConntrack && (f.Severity == protocol.SeverityFail || f.Severity == protocol.SeverityWarn):
				var d protocol.ConntrackData
				if err := f.DecodeData(&d); err != nil {
					return nil, err
				}
				if d.Max != nil && d.RecommendedMax > *d.Max {
					n := d.RecommendedMax
					steps = append(steps, Step{
						What: fmt.Sprintf("raise net.netfilter.nf_conntrack_max from %d to %d (now, and in %s/%s)", *d.Max, n, ConntrackPersistDir, protocol.ConntrackPersistFile),
						Apply: func(r *protocol.FixRequest) {
							r.ConntrackMax, r.PersistDir = n, ConntrackPersistDir
						},
					})
				}
			}
		}
		return steps, nil
	}
}

// StaleRuntimeUnreachable is how the stale check says it could not ask the
// runtime (the helper's checks.RuntimeUnreachable).
const StaleRuntimeUnreachable = "runtime not reachable: cannot tell stale from restarted"

// PlanKills plans ending the stale processes the check found, each shown
// with what identifies it (command line, container, pod, port, start time)
// and passed to the helper with the start time the user saw, so that only
// that process is signalled. Without the runtime, nothing can be called
// stale: the kill is refused.
func PlanKills(rep *kube.HelperReport) ([]Step, error) {
	var pids []string
	var kills []protocol.KillTarget
	var detail []string
	for _, f := range rep.Findings {
		if f.Check != protocol.CheckStale || (f.Severity != protocol.SeverityFail && f.Severity != protocol.SeverityWarn) {
			continue
		}
		var d protocol.StaleData
		if err := f.DecodeData(&d); err != nil {
			return nil, err
		}
		if d.RuntimeReachable != nil && !*d.RuntimeReachable {
			return []Step{{What: "kill", Refuse: fmt.Sprintf("--kill refused on pod %s: %s; pass --runtime-endpoint with the node's CRI socket", f.Subject, StaleRuntimeUnreachable)}}, nil
		}
		if d.PID <= 0 {
			continue
		}
		if d.StartTicks == 0 {
			return []Step{{What: "kill", Refuse: fmt.Sprintf("--kill refused: the helper did not report when process %d started, so it cannot be told from a process that reused its PID (use a helper image of the plugin's version)", d.PID)}}, nil
		}
		pids = append(pids, strconv.Itoa(d.PID))
		kills = append(kills, protocol.KillTarget{PID: d.PID, StartTicks: d.StartTicks})
		detail = append(detail, DescribeStale(f.Subject, d)...)
	}
	if len(kills) == 0 {
		return nil, nil
	}
	return []Step{{
		What:   fmt.Sprintf("end stale %s %s (SIGTERM, then SIGKILL)", plural(len(kills), "process", "processes"), strings.Join(pids, ", ")),
		Detail: detail,
		Apply:  func(r *protocol.FixRequest) { r.Kill = kills },
	}}, nil
}

// DescribeStale is what the user sees of one stale process before the
// question; the caller escapes it.
func DescribeStale(subject string, d protocol.StaleData) []string {
	or := func(s string) string {
		if s == "" {
			return "?"
		}
		return s
	}
	pod := d.Pod
	if pod == "" {
		pod = subject
	}
	port := "none"
	if d.Port > 0 {
		port = fmt.Sprintf("%s/%d", or(d.Protocol), d.Port)
	} else if len(d.Listeners) > 0 {
		var ps []string
		for _, l := range d.Listeners {
			ps = append(ps, fmt.Sprintf("%s/%d", l.Protocol, l.Port))
		}
		port = strings.Join(ps, ", ")
	}
	started := or(d.Started)
	if d.StartTicks > 0 {
		started += fmt.Sprintf(" (tick %d after boot)", d.StartTicks)
	}
	return []string{
		fmt.Sprintf("PID %d: %s", d.PID, strconv.Quote(d.Cmdline)),
		fmt.Sprintf("    container %s of pod %s (uid %s)", or(d.ContainerID), pod, or(d.PodUID)),
		fmt.Sprintf("    holds port %s; started %s", port, started),
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
