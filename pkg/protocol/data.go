package protocol

import (
	"encoding/json"
	"fmt"
)

// The data of each check's findings. A finding's Data is the JSON of one of
// these structs (the one named by Finding.Check); the plugin decodes it with
// Finding.DecodeData. Field names are part of the contract: add fields,
// never rename them. Pointers mark values whose absence means something
// different from their zero value.

// EncodeData is the JSON of a finding's or an action's data. Data types are
// plain structs of strings, numbers and slices: encoding them cannot fail,
// so a failure is a programming error and panics.
func EncodeData(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("protocol: encoding %T: %v", v, err))
	}
	if string(b) == "null" || string(b) == "{}" {
		return nil
	}
	return b
}

// DecodeData decodes the finding's data into v, which should be the data
// struct of the finding's check. A finding without data leaves v unchanged.
func (f Finding) DecodeData(v any) error {
	if len(f.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(f.Data, v); err != nil {
		return fmt.Errorf("%s finding on %s: data does not match this plugin's protocol: %v", f.Check, f.Subject, err)
	}
	return nil
}

// DecodeData decodes the action's data into v.
func (a Action) DecodeData(v any) error {
	if len(a.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(a.Data, v); err != nil {
		return fmt.Errorf("%s action on %s: data does not match this plugin's protocol: %v", a.Action, a.Target, err)
	}
	return nil
}

// SkippedData is the data of a check's "skipped" finding (any check).
type SkippedData struct {
	Skipped bool `json:"skipped"`
}

// ConntrackData is the data of a conntrack finding.
type ConntrackData struct {
	// Loaded is false when the nf_conntrack module is not loaded (the
	// only field then).
	Loaded *bool   `json:"loaded,omitempty"`
	Count  *uint64 `json:"count,omitempty"`
	Max    *uint64 `json:"max,omitempty"`
	// Percent is Count of Max, rounded down.
	Percent *uint64 `json:"percent,omitempty"`
	// RecommendedMax is MemTotal/32 (kB), the runbook's sizing.
	RecommendedMax uint64 `json:"recommendedMax,omitempty"`
	MemTotalKB     uint64 `json:"memTotalKB,omitempty"`

	// The per-CPU counters since boot, summed.
	Drop         *uint64 `json:"drop,omitempty"`
	InsertFailed *uint64 `json:"insertFailed,omitempty"`
	EarlyDrop    *uint64 `json:"earlyDrop,omitempty"`
	CPUs         int     `json:"cpus,omitempty"`
	// Their growth over SampleSeconds, while the check watched.
	SampleSeconds           float64 `json:"sampleSeconds,omitempty"`
	DropsDuringCheck        *uint64 `json:"dropsDuringCheck,omitempty"`
	InsertFailedDuringCheck *uint64 `json:"insertFailedDuringCheck,omitempty"`
	EarlyDropDuringCheck    *uint64 `json:"earlyDropDuringCheck,omitempty"`

	// "table full" kernel messages: all, recent, and the last one's time
	// (RFC 3339).
	TableFullEvents       *int   `json:"tableFullEvents,omitempty"`
	RecentTableFullEvents *int   `json:"recentTableFullEvents,omitempty"`
	LastTableFull         string `json:"lastTableFull,omitempty"`

	// The IPs with the most entries (--top), scoped to "pods" or "all".
	TopIPs      []TopIP `json:"topIPs,omitempty"`
	TopIPsScope string  `json:"topIPsScope,omitempty"`
	TopIPsError string  `json:"topIPsError,omitempty"`

	// Notes say what could not be read.
	Notes []string `json:"notes,omitempty"`
}

// TopIP is one row of the conntrack check's top-IP list.
type TopIP struct {
	IP      string `json:"ip"`
	Entries int    `json:"entries"`
	// Pod is the pod with this IP, when the plugin named it.
	Pod string `json:"pod,omitempty"`
}

// StaleData is the data of a stale finding. Which fields are set depends on
// the finding: a stale process (warn/fail) carries the process; a pod with
// none (ok) carries the counts; an unreachable runtime (warn) carries
// RuntimeReachable=false, RuntimeError and the processes it cannot judge.
type StaleData struct {
	PodUID string `json:"podUID,omitempty"`
	// Pod is NAMESPACE/NAME when known.
	Pod             string `json:"pod,omitempty"`
	RuntimeEndpoint string `json:"runtimeEndpoint,omitempty"`
	// RuntimeReachable is false when the container runtime could not be
	// asked; nothing is called stale then.
	RuntimeReachable *bool  `json:"runtimeReachable,omitempty"`
	RuntimeError     string `json:"runtimeError,omitempty"`
	// The stale process (warn/fail findings).
	StaleProcess
	// Port, Protocol, Address: the socket of the asked-for port the stale
	// process holds (fail findings).
	Port     int    `json:"port,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Address  string `json:"address,omitempty"`

	// Processes is how many processes run in the pod's cgroups (ok), or
	// the list of them when the runtime is unreachable.
	Processes *StaleProcesses `json:"processes,omitempty"`
	// Containers are the container IDs of those processes (ok).
	Containers []string `json:"containers,omitempty"`
	// PortHolder is the process of a known container that holds the
	// asked-for port.
	PortHolder *PortHolder `json:"portHolder,omitempty"`
}

// StaleProcess is what the stale check says of one process: enough for the
// user to know what they approve.
type StaleProcess struct {
	PID            int        `json:"pid,omitempty"`
	Cmdline        string     `json:"cmdline,omitempty"`
	ContainerID    string     `json:"containerID,omitempty"`
	Cgroup         string     `json:"cgroup,omitempty"`
	Listeners      []Listener `json:"listeners,omitempty"`
	ListenersError string     `json:"listenersError,omitempty"`
	// StartTicks is the process's start time in clock ticks since boot
	// (field 22 of /proc/PID/stat); a kill must name it, so a PID reused
	// since the user approved is never signalled.
	StartTicks uint64 `json:"startTicks,omitempty"`
	// Started is StartTicks as RFC 3339.
	Started string `json:"started,omitempty"`
}

// Listener is a listening socket of a process.
type Listener struct {
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Inode    uint64 `json:"inode"`
}

// PortHolder is the process that holds the asked-for port.
type PortHolder struct {
	PID         int    `json:"pid"`
	ContainerID string `json:"containerID,omitempty"`
	Cmdline     string `json:"cmdline,omitempty"`
	Port        int    `json:"port"`
	Protocol    string `json:"protocol"`
	Address     string `json:"address"`
}

// StaleProcesses is a count of processes or, when the runtime cannot be
// asked, their list (each with its pod UID). It is a number or an array in
// JSON.
type StaleProcesses struct {
	Count int
	List  []ListedProcess
}

// ListedProcess is one entry of StaleProcesses.List.
type ListedProcess struct {
	StaleProcess
	PodUID string `json:"podUID,omitempty"`
}

// MarshalJSON writes the list when there is one, else the count.
func (p StaleProcesses) MarshalJSON() ([]byte, error) {
	if p.List != nil {
		return json.Marshal(p.List)
	}
	return json.Marshal(p.Count)
}

// UnmarshalJSON reads a number or an array.
func (p *StaleProcesses) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &p.List); err != nil {
			return err
		}
		p.Count = len(p.List)
		return nil
	}
	return json.Unmarshal(b, &p.Count)
}

// ActionData is the data of a fix action; which fields are set depends on
// the action.
type ActionData struct {
	// bridge-up
	Bridge string `json:"bridge,omitempty"`
	// conntrack-max: the sysctl file, the value asked for, before and
	// after.
	Path      string  `json:"path,omitempty"`
	Requested uint64  `json:"requested,omitempty"`
	Before    *uint64 `json:"before,omitempty"`
	After     *uint64 `json:"after,omitempty"`
	// conntrack-persist: the sysctl.d file written and its value.
	File  string `json:"file,omitempty"`
	Value uint64 `json:"value,omitempty"`
	// kill: the process, the start time the user approved, its container
	// and pod, and the last signal sent.
	PID                int     `json:"pid,omitempty"`
	ApprovedStartTicks *uint64 `json:"approvedStartTicks,omitempty"`
	ContainerID        string  `json:"containerID,omitempty"`
	PodUID             string  `json:"podUID,omitempty"`
	Signal             string  `json:"signal,omitempty"`
}
