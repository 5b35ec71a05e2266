package checks

// env is the state of one Run: the configuration and what was already
// looked up (the /proc scan, the runtime's answer, the network view), so
// each check reads the node once.
type env struct {
	cfg Config

	scanned  bool
	procs    map[string][]podProcess
	procsErr error

	rtAsked bool
	rt      runtimeState
	rtErr   error

	net *netState
}
