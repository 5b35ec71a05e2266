package protocol

// The hops the dns check asks (DNSCheckTarget.Hop).
const (
	DNSHopNodeLocal = "nodelocal"
	DNSHopClusterIP = "clusterip"
	DNSHopEndpoint  = "endpoint"
)

// DNSCheckData is the data of a dns finding: what was asked, and each
// query's answer.
type DNSCheckData struct {
	// Name is the name asked for (an FQDN).
	Name        string `json:"name,omitempty"`
	ServiceIP   string `json:"serviceIP,omitempty"`
	NodeLocalIP string `json:"nodeLocalIP,omitempty"`
	// Endpoints is how many CoreDNS endpoints the plugin named; the
	// targets hold at most DNSMaxEndpoints of them.
	Endpoints int              `json:"endpoints,omitempty"`
	Targets   []DNSCheckTarget `json:"targets,omitempty"`
}

// DNSMaxEndpoints is how many CoreDNS endpoints the dns check asks.
const DNSMaxEndpoints = 5

// DNSCheckTarget is one query of the dns check.
type DNSCheckTarget struct {
	Hop string `json:"hop"`
	// Address is host:port.
	Address string `json:"address"`
	Proto   string `json:"proto"`
	// Rcode is the answer's (NOERROR, NXDOMAIN, ...); absent when none
	// came (Error says why).
	Rcode string `json:"rcode,omitempty"`
	// Answers is how many answer records came.
	Answers             int    `json:"answers,omitempty"`
	LatencyMicroseconds int64  `json:"latencyMicroseconds"`
	Error               string `json:"error,omitempty"`
}
