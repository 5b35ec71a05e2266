package capture

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRingLayout: the offsets the block walker reads are those of the
// kernel's structures (as golang.org/x/sys/unix declares them).
func TestRingLayout(t *testing.T) {
	var bd unix.TpacketBlockDesc
	var h1 unix.TpacketHdrV1
	var th unix.Tpacket3Hdr
	hdr := unsafe.Offsetof(bd.Hdr)
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"block_status", bdBlockStatus, hdr + unsafe.Offsetof(h1.Block_status)},
		{"num_pkts", bdNumPkts, hdr + unsafe.Offsetof(h1.Num_pkts)},
		{"offset_to_first_pkt", bdFirstPkt, hdr + unsafe.Offsetof(h1.Offset_to_first_pkt)},
		{"sizeof(tpacket_block_desc)", blockDescLen, unsafe.Sizeof(bd)},
		{"tp_next_offset", thNextOffset, unsafe.Offsetof(th.Next_offset)},
		{"tp_sec", thSec, unsafe.Offsetof(th.Sec)},
		{"tp_nsec", thNsec, unsafe.Offsetof(th.Nsec)},
		{"tp_snaplen", thSnaplen, unsafe.Offsetof(th.Snaplen)},
		{"tp_len", thLen, unsafe.Offsetof(th.Len)},
		{"tp_status", thStatus, unsafe.Offsetof(th.Status)},
		{"tp_mac", thMac, unsafe.Offsetof(th.Mac)},
		{"tp_vlan_tci", thVlanTCI, unsafe.Offsetof(th.Hv1) + unsafe.Offsetof(th.Hv1.Vlan_tci)},
		{"tp_vlan_tpid", thVlanTPID, unsafe.Offsetof(th.Hv1) + unsafe.Offsetof(th.Hv1.Vlan_tpid)},
		{"sizeof(tpacket3_hdr)", tpacket3HdrLen, unsafe.Sizeof(th)},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, the kernel has it at %d", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"TP_STATUS_USER", tpStatusUser, unix.TP_STATUS_USER},
		{"TP_STATUS_KERNEL", tpStatusKernel, unix.TP_STATUS_KERNEL},
		{"TP_STATUS_VLAN_VALID", tpStatusVLANValid, unix.TP_STATUS_VLAN_VALID},
		{"TP_STATUS_VLAN_TPID_VALID", tpStatusVLANTPIDValid, unix.TP_STATUS_VLAN_TPID_VALID},
	} {
		if c.got != c.want {
			t.Errorf("%s is %#x, the kernel's is %#x", c.name, c.got, c.want)
		}
	}
}

func TestRingGeometry(t *testing.T) {
	for _, tt := range []struct {
		snaplen              int
		blockSize, numBlocks int
	}{
		{64, 1 << 20, 8},
		{DefaultSnaplen, 1 << 20, 8},
		{1<<20 - 4096, 1 << 20, 8},
		{1<<20 - 4095, 2 << 20, 4},
	} {
		frame, block, n := ringGeometry(tt.snaplen)
		if block != tt.blockSize || n != tt.numBlocks || block%frame != 0 {
			t.Errorf("ringGeometry(%d) = frames of %d, %d blocks of %d; want %d blocks of %d", tt.snaplen, frame, n, block, tt.numBlocks, tt.blockSize)
		}
		if block < tt.snaplen+4096 {
			t.Errorf("ringGeometry(%d): a %d-byte block cannot hold a whole packet", tt.snaplen, block)
		}
	}
}
