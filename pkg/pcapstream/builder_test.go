package pcapstream

import (
	"bytes"
	"encoding/binary"
)

// Small, independent writers of test streams (they do not use the code
// under test).

type pcapBuilder struct {
	bo   binary.ByteOrder
	nano bool
	b    bytes.Buffer
}

func newPcap(bo binary.ByteOrder, nano bool, snap, link uint32) *pcapBuilder {
	p := &pcapBuilder{bo: bo, nano: nano}
	h := make([]byte, 24)
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	bo.PutUint32(h[0:], magic)
	bo.PutUint16(h[4:], 2)
	bo.PutUint16(h[6:], 4)
	bo.PutUint32(h[16:], snap)
	bo.PutUint32(h[20:], link)
	p.b.Write(h)
	return p
}

func (p *pcapBuilder) packet(sec, frac uint32, data []byte, orig int) *pcapBuilder {
	h := make([]byte, 16)
	p.bo.PutUint32(h[0:], sec)
	p.bo.PutUint32(h[4:], frac)
	p.bo.PutUint32(h[8:], uint32(len(data)))
	p.bo.PutUint32(h[12:], uint32(orig))
	p.b.Write(h)
	p.b.Write(data)
	return p
}

func (p *pcapBuilder) bytes() []byte { return append([]byte(nil), p.b.Bytes()...) }

type ngBuilder struct {
	bo binary.ByteOrder
	b  bytes.Buffer
}

type opt struct {
	code uint16
	val  []byte
}

func newNg(bo binary.ByteOrder, opts ...opt) *ngBuilder {
	n := &ngBuilder{bo: bo}
	body := make([]byte, 16)
	bo.PutUint32(body[0:], 0x1A2B3C4D)
	bo.PutUint16(body[4:], 1)
	bo.PutUint16(body[6:], 0)
	bo.PutUint64(body[8:], 0xFFFFFFFFFFFFFFFF)
	n.block(0x0A0D0D0A, append(body, n.opts(opts)...))
	return n
}

func (n *ngBuilder) opts(opts []opt) []byte {
	if len(opts) == 0 {
		return nil
	}
	var b []byte
	for _, o := range opts {
		h := make([]byte, 4)
		n.bo.PutUint16(h[0:], o.code)
		n.bo.PutUint16(h[2:], uint16(len(o.val)))
		b = append(b, h...)
		b = append(b, o.val...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return append(b, 0, 0, 0, 0)
}

func (n *ngBuilder) block(typ uint32, body []byte) *ngBuilder {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	h := make([]byte, 8)
	n.bo.PutUint32(h[0:], typ)
	n.bo.PutUint32(h[4:], uint32(12+len(body)))
	n.b.Write(h)
	n.b.Write(body)
	n.b.Write(h[4:8])
	return n
}

func (n *ngBuilder) idb(link uint16, snap uint32, opts ...opt) *ngBuilder {
	body := make([]byte, 8)
	n.bo.PutUint16(body[0:], link)
	n.bo.PutUint32(body[4:], snap)
	return n.block(1, append(body, n.opts(opts)...))
}

func (n *ngBuilder) epb(id uint32, units uint64, data []byte, orig int, opts ...opt) *ngBuilder {
	body := make([]byte, 20)
	n.bo.PutUint32(body[0:], id)
	n.bo.PutUint32(body[4:], uint32(units>>32))
	n.bo.PutUint32(body[8:], uint32(units))
	n.bo.PutUint32(body[12:], uint32(len(data)))
	n.bo.PutUint32(body[16:], uint32(orig))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return n.block(6, append(body, n.opts(opts)...))
}

func (n *ngBuilder) spb(data []byte, orig int) *ngBuilder {
	body := make([]byte, 4)
	n.bo.PutUint32(body, uint32(orig))
	return n.block(3, append(body, data...))
}

func (n *ngBuilder) isb(id uint32) *ngBuilder {
	body := make([]byte, 12)
	n.bo.PutUint32(body[0:], id)
	return n.block(5, body)
}

func (n *ngBuilder) bytes() []byte { return append([]byte(nil), n.b.Bytes()...) }

func u8(v byte) []byte { return []byte{v} }

func u64(bo binary.ByteOrder, v uint64) []byte {
	b := make([]byte, 8)
	bo.PutUint64(b, v)
	return b
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}
