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
