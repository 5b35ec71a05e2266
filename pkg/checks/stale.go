package checks

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// processes returns the processes of a pod, scanning /proc once per run.
func (e *env) processes(uid string) ([]podProcess, error) {
	if !e.scanned {
		e.procs, e.procsErr = scanPodProcesses(e.cfg.Proc)
		e.scanned = true
	}
	if e.procsErr != nil {
		return nil, e.procsErr
	}
	return e.procs[normalizeUID(uid)], nil
}

// runtime asks the container runtime once per run.
func (e *env) runtimeState(ctx context.Context) (runtimeState, error) {
	if !e.rtAsked {
		l := e.cfg.runtime
		if l == nil {
			l = criLister(e.cfg)
		}
		e.rt, e.rtErr = l(ctx)
		e.rtAsked = true
	}
	return e.rt, e.rtErr
}

// isPauseCmdline says whether a command line is a pod sandbox's pause
// process.
func isPauseCmdline(cmdline string) bool {
	f := strings.Fields(cmdline)
	return len(f) > 0 && filepath.Base(f[0]) == "pause"
}

// knownSet holds container IDs; an abbreviated ID of 12 or more hex digits
// matches a full one.
type knownSet map[string]bool

func (k knownSet) has(id string) bool {
	if k[id] {
		return true
	}
	for known := range k {
		if len(known) >= 12 && strings.HasPrefix(id, known) {
			return true
		}
	}
	return false
}

func checkStale(ctx context.Context, e *env, emit func(protocol.Finding)) error {
	cfg := e.cfg
	var targets []PodInfo
	for _, t := range cfg.targets() {
		if t.UID != "" {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		emit(skipped(CheckStale, "needs --pod-uid (or --pods-json/--pod entries with UIDs)"))
		return nil
	}
	rt, rtErr := e.runtimeState(ctx)
	if rtErr != nil {
		emit(protocol.Finding{
			Check:    CheckStale,
			Severity: protocol.SeverityInfo,
			Subject:  "node",
			Message:  fmt.Sprintf("container runtime not reachable (%v): relying on --known-containers, and taking processes named pause as pod sandboxes", rtErr),
			Remedy:   "pass --runtime-endpoint with the node's CRI socket for an authoritative answer",
			Data:     map[string]any{"runtimeError": rtErr.Error()},
		})
	}
	for _, t := range targets {
		if err := stalePod(e, t, rt, rtErr, emit); err != nil {
			return err
		}
	}
	return nil
}

func stalePod(e *env, t PodInfo, rt runtimeState, rtErr error, emit func(protocol.Finding)) error {
	cfg := e.cfg
	uid := normalizeUID(t.UID)
	procs, err := e.processes(uid)
	if err != nil {
		return fmt.Errorf("stale: scanning %s: %w", cfg.Proc, err)
	}
	subject := t.Label()
	if len(procs) == 0 {
		emit(protocol.Finding{
			Check:    CheckStale,
			Severity: protocol.SeverityInfo,
			Subject:  subject,
			Message:  fmt.Sprintf("no process on this node runs in a cgroup of pod UID %s (is the pod on this node?)", uid),
			Data:     map[string]any{"podUID": uid},
		})
		return nil
	}

	known := knownSet{}
	for _, id := range t.Containers {
		if id = normalizeContainerID(id); id != "" {
			known[id] = true
		}
	}
	fromAPI := len(known)
	if rtErr == nil {
		for id := range rt.Containers {
			known[id] = true
		}
		for id := range rt.Sandboxes {
			known[id] = true
		}
	}
	if fromAPI == 0 && rtErr != nil {
		// Nothing to compare with: list what runs, say what holds the
		// port, and claim nothing.
		var list []map[string]any
		var holder map[string]any
		for _, p := range procs {
			ls, _ := processListeners(cfg.Proc, p.PID)
			list = append(list, map[string]any{"pid": p.PID, "containerID": p.ContainerID, "cmdline": p.Cmdline, "listeners": ls})
			if h := portHolder(ls, cfg.Port); h != nil && holder == nil {
				holder = map[string]any{"pid": p.PID, "containerID": p.ContainerID, "cmdline": p.Cmdline, "port": h.Port, "protocol": h.Protocol, "address": h.Address}
			}
		}
		data := map[string]any{"podUID": uid, "processes": list}
		if holder != nil {
			data["portHolder"] = holder
		}
		emit(protocol.Finding{
			Check:    CheckStale,
			Severity: protocol.SeverityInfo,
			Subject:  subject,
			Message:  fmt.Sprintf("cannot tell stale processes from live ones: no --known-containers and no runtime socket; %d processes run in pod UID %s", len(procs), uid),
			Remedy:   "pass --known-containers with the pod's container IDs, or --runtime-endpoint",
			Data:     data,
		})
		return nil
	}

	var stale []podProcess
	var sandboxes []int
	var holder map[string]any
	containers := map[string]bool{}
	for _, p := range procs {
		if p.ContainerID == "" {
			continue // the pod's own cgroup, not a container's
		}
		containers[p.ContainerID] = true
		if known.has(p.ContainerID) {
			if cfg.Port > 0 && holder == nil {
				ls, _ := processListeners(cfg.Proc, p.PID)
				if h := portHolder(ls, cfg.Port); h != nil {
					holder = map[string]any{"pid": p.PID, "containerID": p.ContainerID, "cmdline": p.Cmdline, "port": h.Port, "protocol": h.Protocol, "address": h.Address}
				}
			}
			continue
		}
		if rtErr != nil && isPauseCmdline(p.Cmdline) {
			sandboxes = append(sandboxes, p.PID)
			continue
		}
		stale = append(stale, p)
	}

	for _, p := range stale {
		ls, lerr := processListeners(cfg.Proc, p.PID)
		data := map[string]any{
			"pid":         p.PID,
			"cmdline":     p.Cmdline,
			"containerID": p.ContainerID,
			"podUID":      uid,
			"cgroup":      p.Cgroup,
			"listeners":   ls,
		}
		if lerr != nil {
			data["listenersError"] = lerr.Error()
		}
		kill := fmt.Sprintf("end it: kubectl netdiag stale %s --kill --yes (or kill %d on the node)", podRef(t), p.PID)
		if h := portHolder(ls, cfg.Port); h != nil {
			data["port"] = h.Port
			data["protocol"] = h.Protocol
			data["address"] = h.Address
			emit(protocol.Finding{
				Check:    CheckStale,
				Severity: protocol.SeverityFail,
				Subject:  subject,
				Message: fmt.Sprintf("stale process %d (%s) of container %s holds %s port %d; neither the API nor the runtime knows that container",
					p.PID, shortCmd(p.Cmdline), shortID(p.ContainerID), h.Protocol, h.Port),
				Remedy: kill,
				Data:   data,
			})
			continue
		}
		emit(protocol.Finding{
			Check:    CheckStale,
			Severity: protocol.SeverityWarn,
			Subject:  subject,
			Message: fmt.Sprintf("stale process %d (%s) of container %s: neither the API nor the runtime knows that container (%d listening sockets)",
				p.PID, shortCmd(p.Cmdline), shortID(p.ContainerID), len(ls)),
			Remedy: kill,
			Data:   data,
		})
	}
	if len(stale) == 0 {
		data := map[string]any{"podUID": uid, "processes": len(procs), "containers": sortedKeys(containers)}
		if len(sandboxes) > 0 {
			data["sandboxPIDsByCmdline"] = sandboxes
		}
		if holder != nil {
			data["portHolder"] = holder
		}
		msg := fmt.Sprintf("no stale processes: %d processes in %d containers of pod UID %s, all known", len(procs), len(containers), uid)
		if holder != nil {
			msg += fmt.Sprintf("; port %d is held by pid %v of a known container", cfg.Port, holder["pid"])
		}
		emit(protocol.Finding{Check: CheckStale, Severity: protocol.SeverityOK, Subject: subject, Message: msg, Data: data})
	}
	return nil
}

func portHolder(ls []listener, port int) *listener {
	if port <= 0 {
		return nil
	}
	for i := range ls {
		if ls[i].Port == port {
			return &ls[i]
		}
	}
	return nil
}

func podRef(t PodInfo) string {
	if t.Name != "" {
		return "pod/" + t.Name + " -n " + t.Namespace
	}
	return "POD"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortCmd(c string) string {
	if c == "" {
		return "?"
	}
	if len(c) > 60 {
		return c[:57] + "..."
	}
	return c
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func skipped(check, why string) protocol.Finding {
	return protocol.Finding{
		Check:    check,
		Severity: protocol.SeverityInfo,
		Subject:  "node",
		Message:  check + " check skipped: " + why,
		Data:     map[string]any{"skipped": true},
	}
}
