package checks

import (
	"encoding/binary"
	"errors"
	"net"
)

// Ethernet frames of the neighbour probes, built and parsed by hand: an ARP
// request (RFC 826) or an ICMPv6 neighbour solicitation (RFC 4861) out, an
// ARP reply or a neighbour advertisement back.

const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd

	arpRequest = 1
	arpReply   = 2

	icmpv6NeighSolicit = 135
	icmpv6NeighAdvert  = 136
	ndOptSourceLLAddr  = 1
	ndOptTargetLLAddr  = 2

	ethHeaderLen  = 14
	ipv6HeaderLen = 40
)

var errNotEthernet = errors.New("the interface has no Ethernet (6-byte) MAC address")

// arpRequestFrame is a broadcast ARP request for target from srcMAC/srcIP
// (srcIP nil or 0.0.0.0: an ARP probe), padded to the Ethernet minimum.
func arpRequestFrame(srcMAC net.HardwareAddr, srcIP, target net.IP) ([]byte, error) {
	if len(srcMAC) != 6 {
		return nil, errNotEthernet
	}
	t4 := target.To4()
	if t4 == nil {
		return nil, errors.New("ARP needs an IPv4 target")
	}
	s4 := net.IPv4zero.To4()
	if srcIP != nil {
		if s4 = srcIP.To4(); s4 == nil {
			return nil, errors.New("ARP needs an IPv4 sender")
		}
	}
	b := make([]byte, 60)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], arpRequest)
	copy(a[8:14], srcMAC)
	copy(a[14:18], s4)
	// target hardware address stays zero
	copy(a[24:28], t4)
	return b, nil
}

// parseARPReply returns the sender of an ARP reply frame.
func parseARPReply(b []byte) (ip net.IP, mac net.HardwareAddr, ok bool) {
	if len(b) < ethHeaderLen+28 || binary.BigEndian.Uint16(b[12:14]) != etherTypeARP {
		return nil, nil, false
	}
	a := b[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != 6 || a[5] != 4 ||
		binary.BigEndian.Uint16(a[6:8]) != arpReply {
		return nil, nil, false
	}
	return net.IP(append([]byte(nil), a[14:18]...)), net.HardwareAddr(append([]byte(nil), a[8:14]...)), true
}

// solicitedNode is the solicited-node multicast address of ip and its MAC.
func solicitedNode(ip net.IP) (net.IP, net.HardwareAddr) {
	t := ip.To16()
	dst := net.IP{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, t[13], t[14], t[15]}
	return dst, net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}
}

// neighSolicitFrame is a neighbour solicitation for target from
// srcMAC/srcIP to the target's solicited-node address (srcIP nil or ::: a
// DAD-style solicitation without the source link-layer option).
func neighSolicitFrame(srcMAC net.HardwareAddr, srcIP, target net.IP) ([]byte, error) {
	if len(srcMAC) != 6 {
		return nil, errNotEthernet
	}
	if target.To4() != nil || target.To16() == nil {
		return nil, errors.New("neighbour solicitation needs an IPv6 target")
	}
	src := net.IPv6unspecified
	if srcIP != nil {
		if srcIP.To4() != nil || srcIP.To16() == nil {
			return nil, errors.New("neighbour solicitation needs an IPv6 sender")
		}
		src = srcIP.To16()
	}
	dst, dstMAC := solicitedNode(target)
	icmp := make([]byte, 24)
	icmp[0] = icmpv6NeighSolicit
	copy(icmp[8:24], target.To16())
	if !src.IsUnspecified() {
		icmp = append(icmp, ndOptSourceLLAddr, 1)
		icmp = append(icmp, srcMAC...)
	}
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, dst, icmp))

	b := make([]byte, ethHeaderLen+ipv6HeaderLen, ethHeaderLen+ipv6HeaderLen+len(icmp))
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	h := b[ethHeaderLen:]
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(icmp)))
	h[6] = 58 // ICMPv6
	h[7] = 255
	copy(h[8:24], src)
	copy(h[24:40], dst)
	return append(b, icmp...), nil
}

// parseNeighAdvert returns the target of a neighbour advertisement frame
// and its MAC: the target link-layer address option, else the frame's
// source.
func parseNeighAdvert(b []byte) (ip net.IP, mac net.HardwareAddr, ok bool) {
	if len(b) < ethHeaderLen+ipv6HeaderLen+24 || binary.BigEndian.Uint16(b[12:14]) != etherTypeIPv6 {
		return nil, nil, false
	}
	h := b[ethHeaderLen:]
	if h[0]>>4 != 6 || h[6] != 58 || h[7] != 255 {
		return nil, nil, false
	}
	plen := int(binary.BigEndian.Uint16(h[4:6]))
	icmp := h[ipv6HeaderLen:]
	if plen < 24 || plen > len(icmp) {
		return nil, nil, false
	}
	icmp = icmp[:plen]
	if icmp[0] != icmpv6NeighAdvert || icmp[1] != 0 {
		return nil, nil, false
	}
	ip = net.IP(append([]byte(nil), icmp[8:24]...))
	mac = net.HardwareAddr(append([]byte(nil), b[6:12]...))
	for opts := icmp[24:]; len(opts) >= 8; {
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			break
		}
		if opts[0] == ndOptTargetLLAddr && n >= 8 {
			mac = net.HardwareAddr(append([]byte(nil), opts[2:8]...))
		}
		opts = opts[n:]
	}
	return ip, mac, true
}

// icmpv6Checksum is the ICMPv6 checksum over the pseudo-header and msg
// (whose checksum field is zero).
func icmpv6Checksum(src, dst net.IP, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.To16())
	add(dst.To16())
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
