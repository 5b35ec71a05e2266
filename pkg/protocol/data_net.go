package protocol

// BridgeData is the data of a bridge finding.
type BridgeData struct {
	Bridge string `json:"bridge,omitempty"`
	// Exists is false when the bridge was not found (then only Bridge,
	// the name asked for, may be set).
	Exists    *bool  `json:"exists,omitempty"`
	Ifindex   int    `json:"ifindex,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	MAC       string `json:"mac,omitempty"`
	AdminUp   *bool  `json:"adminUp,omitempty"`
	OperState string `json:"operState,omitempty"`
	// Addresses are all the bridge's addresses (CIDR), IPv4 the IPv4
	// ones.
	Addresses []string     `json:"addresses,omitempty"`
	IPv4      []string     `json:"ipv4,omitempty"`
	Ports     []BridgePort `json:"ports,omitempty"`
	PortsUp   *int         `json:"portsUp,omitempty"`
}

// BridgePort is one interface enslaved to the bridge.
type BridgePort struct {
	Name      string `json:"name"`
	Ifindex   int    `json:"ifindex"`
	MTU       int    `json:"mtu"`
	Type      string `json:"type"`
	OperState string `json:"operState"`
	AdminUp   bool   `json:"adminUp"`
}

// VethData is the data of a veth finding: the pod's host-side interface,
// or (Tried) why none was found.
type VethData struct {
	Pod   string `json:"pod,omitempty"`
	PodIP string `json:"podIP,omitempty"`
	// Tried lists what was tried when no host interface was found (the
	// only data then, with Pod and PodIP).
	Tried         []string `json:"tried,omitempty"`
	HostInterface string   `json:"hostInterface,omitempty"`
	Ifindex       int      `json:"ifindex,omitempty"`
	MTU           int      `json:"mtu,omitempty"`
	// Method is how the host interface was found: route,
	// neighbour+fdb or pod-netns-iflink.
	Method    string `json:"method,omitempty"`
	OperState string `json:"operState,omitempty"`
	// PodMAC is the pod's MAC the lookup went through, if any.
	PodMAC string `json:"podMAC,omitempty"`
	// Bridge is the bridge the host interface is a port of; "" (present)
	// when it is on none.
	Bridge *string `json:"bridge,omitempty"`
	// PodPeerIfindex is the host ifindex the pod's eth0 is paired with,
	// set when it differs from Ifindex (a fail).
	PodPeerIfindex int `json:"podPeerIfindex,omitempty"`
}

// ARPData is the data of an arp finding.
type ARPData struct {
	Pod   string `json:"pod,omitempty"`
	PodIP string `json:"podIP,omitempty"`
	// Layout is "routed" (a /32 route via a veth) or "bridge"; absent
	// when the node has neither for the pod.
	Layout string `json:"layout,omitempty"`
	// Interface is where the neighbour entry was looked up (and the probe
	// sent): the bridge, the routed veth, or "any interface".
	Interface     string `json:"interface,omitempty"`
	PodNetnsError string `json:"podNetnsError,omitempty"`
	// PodMAC is the MAC of the pod's eth0, PodMACFrom where it came from
	// (pod-netns or caller).
	PodMAC     string `json:"podMAC,omitempty"`
	PodMACFrom string `json:"podMACFrom,omitempty"`
	// State and MAC are the neighbour entry before any probe; absent when
	// there was none (MAC is "" for an entry without one).
	State string        `json:"state,omitempty"`
	MAC   *string       `json:"mac,omitempty"`
	Probe *ARPProbeData `json:"probe,omitempty"`
}

// ARPProbeData is the ARP request or neighbour solicitation the arp check
// sent, or why none was.
type ARPProbeData struct {
	// Protocol is "arp" or "ndp".
	Protocol  string        `json:"protocol,omitempty"`
	Interface string        `json:"interface,omitempty"`
	Sent      *ARPProbeSent `json:"sent,omitempty"`
	// WaitedMilliseconds is how long the prober listened after sending.
	WaitedMilliseconds *int64 `json:"waitedMilliseconds,omitempty"`
	// Result is match, reply, other-mac, conflict, no-reply or not-sent.
	Result string `json:"result,omitempty"`
	// Error says why the probe was not sent.
	Error string `json:"error,omitempty"`
	// Replies are the distinct MACs that answered, first first: [] when
	// none did, absent when nothing was sent.
	Replies []ARPReply `json:"replies,omitzero"`
	// ReplyMAC and RTTMicroseconds are the first answer's.
	ReplyMAC        string `json:"replyMAC,omitempty"`
	RTTMicroseconds *int64 `json:"rttMicroseconds,omitempty"`
}

// ARPProbeSent is the request as sent.
type ARPProbeSent struct {
	SenderMAC string `json:"senderMAC"`
	SenderIP  string `json:"senderIP"`
	TargetIP  string `json:"targetIP"`
}

// ARPReply is one answer to a probe.
type ARPReply struct {
	MAC             string `json:"mac"`
	RTTMicroseconds int64  `json:"rttMicroseconds"`
}

// MTUData is the data of an mtu finding: a pod's eth0 against the path
// (Pod, PodUID set), or, when no pod UID was given, one interface of the
// node's side (Scope "node").
type MTUData struct {
	Pod    string `json:"pod,omitempty"`
	PodUID string `json:"podUID,omitempty"`
	// Error says why the pod's MTU could not be read (the only data then,
	// with Pod and PodUID).
	Error        string `json:"error,omitempty"`
	PodInterface string `json:"podInterface,omitempty"`
	PodMTU       int    `json:"podMTU,omitempty"`
	PID          int    `json:"pid,omitempty"`
	// The hops: the pod's host veth, its bridge, the uplink (the
	// interface of the default route).
	HostInterface string `json:"hostInterface,omitempty"`
	HostMTU       int    `json:"hostMTU,omitempty"`
	Bridge        string `json:"bridge,omitempty"`
	BridgeMTU     int    `json:"bridgeMTU,omitempty"`
	Uplink        string `json:"uplink,omitempty"`
	UplinkMTU     int    `json:"uplinkMTU,omitempty"`
	// The tunnel device with the largest overhead, its type and overhead
	// (bytes), and the family of its underlay (ipv4, ipv6).
	Overlay         string `json:"overlay,omitempty"`
	OverlayType     string `json:"overlayType,omitempty"`
	Overhead        int    `json:"overhead,omitempty"`
	OverlayUnderlay string `json:"overlayUnderlay,omitempty"`
	// ExpectedMTU is --expected-mtu, else the uplink's MTU minus the
	// overhead.
	ExpectedMTU int `json:"expectedMTU,omitempty"`
	// PathMTU is the smallest hop, LimitedBy names it.
	PathMTU   int    `json:"pathMTU,omitempty"`
	LimitedBy string `json:"limitedBy,omitempty"`

	// Scope is "node" for the findings on the node's side, made when no
	// pod UID was given.
	Scope string `json:"scope,omitempty"`
	// HostVeths are the pods' host-side veths the node-side judgement
	// compared (bridge ports and veths of /32 or /128 routes).
	HostVeths []MTUInterface `json:"hostVeths,omitempty"`
}

// MTUInterface is one interface and its MTU.
type MTUInterface struct {
	Name string `json:"name"`
	MTU  int    `json:"mtu"`
}
