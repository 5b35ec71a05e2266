package checks

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

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

// RuntimeUnreachable is the message of the stale check when no runtime
// socket answers: without the runtime, a container that just restarted (a
// crash loop) looks exactly like one nobody knows.
const RuntimeUnreachable = "runtime not reachable: cannot tell stale from restarted"

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
	for _, t := range targets {
		if err := stalePod(e, t, rt, rtErr, emit); err != nil {
			return err
		}
	}
	return nil
}

// processInfo is what the stale check says of one process: enough for the
// user to know what they approve (command line, container, start time,
// ports).
func processInfo(cfg Config, p podProcess) (protocol.StaleProcess, []listener) {
	ls, lerr := processListeners(cfg.Proc, p.PID)
	d := protocol.StaleProcess{
		PID:         p.PID,
		Cmdline:     p.Cmdline,
		ContainerID: p.ContainerID,
		Cgroup:      p.Cgroup,
		Listeners:   ls,
	}
	if lerr != nil {
		d.ListenersError = lerr.Error()
	}
	if start, _, err := procStart(cfg.Proc, p.PID); err == nil {
		d.StartTicks = start
		if t, ok := startedAt(cfg.Proc, start); ok {
			d.Started = t.UTC().Format(time.RFC3339)
		}
	}
	return d, ls
}

// holderOf is the PortHolder for process p and its socket h.
func holderOf(p podProcess, h *listener) *protocol.PortHolder {
	return &protocol.PortHolder{PID: p.PID, ContainerID: p.ContainerID, Cmdline: p.Cmdline, Port: h.Port, Protocol: h.Protocol, Address: h.Address}
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
			Data:     protocol.EncodeData(protocol.StaleData{PodUID: uid}),
		})
		return nil
	}

	if rtErr != nil {
		// Only the runtime can say a container is gone: the API's list
		// lags a restart. List what runs, say what holds the port, and
		// call nothing stale.
		list := []protocol.ListedProcess{}
		var holder *protocol.PortHolder
		for _, p := range procs {
			d, ls := processInfo(cfg, p)
			list = append(list, protocol.ListedProcess{StaleProcess: d, PodUID: p.PodUID})
			if h := portHolder(ls, cfg.Port); h != nil && holder == nil {
				holder = holderOf(p, h)
			}
		}
		data := protocol.StaleData{PodUID: uid, Processes: &protocol.StaleProcesses{List: list}, RuntimeReachable: ptr(false), RuntimeError: rtErr.Error(), PortHolder: holder}
		emit(protocol.Finding{
			Check:    CheckStale,
			Severity: protocol.SeverityWarn,
			Subject:  subject,
			Message:  fmt.Sprintf("%s (%v); %d processes run in pod UID %s", RuntimeUnreachable, rtErr, len(procs), uid),
			Remedy:   "pass --runtime-endpoint with the node's CRI socket (e.g. unix:///run/containerd/containerd.sock, /run/crio/crio.sock, /run/k3s/containerd/containerd.sock)",
			Data:     protocol.EncodeData(data),
		})
		return nil
	}

	known := knownSet{}
	for _, id := range t.Containers {
		if id = normalizeContainerID(id); id != "" {
			known[id] = true
		}
	}
	for id := range rt.Containers {
		known[id] = true
	}
	for id := range rt.Sandboxes {
		known[id] = true
	}

	var stale []podProcess
	var holder *protocol.PortHolder
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
					holder = holderOf(p, h)
				}
			}
			continue
		}
		stale = append(stale, p)
	}

	for _, p := range stale {
		proc, ls := processInfo(cfg, p)
		data := protocol.StaleData{PodUID: uid, RuntimeEndpoint: rt.Endpoint, StaleProcess: proc}
		if t.Namespace != "" && t.Name != "" {
			data.Pod = t.Namespace + "/" + t.Name
		}
		kill := fmt.Sprintf("end it: kubectl netdiag stale %s --kill (or kill %d on the node)", podRef(t), p.PID)
		if h := portHolder(ls, cfg.Port); h != nil {
			data.Port, data.Protocol, data.Address = h.Port, h.Protocol, h.Address
			emit(protocol.Finding{
				Check:    CheckStale,
				Severity: protocol.SeverityFail,
				Subject:  subject,
				Message: fmt.Sprintf("stale process %d (%s) of container %s holds %s port %d; the runtime does not know that container",
					p.PID, shortCmd(p.Cmdline), shortID(p.ContainerID), h.Protocol, h.Port),
				Remedy: kill,
				Data:   protocol.EncodeData(data),
			})
			continue
		}
		emit(protocol.Finding{
			Check:    CheckStale,
			Severity: protocol.SeverityWarn,
			Subject:  subject,
			Message: fmt.Sprintf("stale process %d (%s) of container %s: the runtime does not know that container (%d listening sockets)",
				p.PID, shortCmd(p.Cmdline), shortID(p.ContainerID), len(ls)),
			Remedy: kill,
			Data:   protocol.EncodeData(data),
		})
	}
	if len(stale) == 0 {
		data := protocol.StaleData{PodUID: uid, Processes: &protocol.StaleProcesses{Count: len(procs)}, Containers: sortedKeys(containers), RuntimeEndpoint: rt.Endpoint, PortHolder: holder}
		msg := fmt.Sprintf("no stale processes: %d processes in %d containers of pod UID %s, all known to the runtime", len(procs), len(containers), uid)
		if holder != nil {
			msg += fmt.Sprintf("; port %d is held by pid %d of a known container", cfg.Port, holder.PID)
		}
		emit(protocol.Finding{Check: CheckStale, Severity: protocol.SeverityOK, Subject: subject, Message: msg, Data: protocol.EncodeData(data)})
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
		Data:     protocol.EncodeData(protocol.SkippedData{Skipped: true}),
	}
}
