package pcapstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

type readPacket struct {
	ts      time.Time
	caplen  int
	length  int
	iface   int
	data    []byte
	comment []string
}

func readAll(t *testing.T, b []byte) (*Reader, []readPacket, error) {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var got []readPacket
	for {
		p, err := rd.NextPacket()
		if err == io.EOF {
			return rd, got, nil
		}
		if err != nil {
			return rd, got, err
		}
		if p.CaptureLength != len(p.Data) {
			t.Fatalf("packet %d: CaptureLength %d != len(Data) %d", len(got), p.CaptureLength, len(p.Data))
		}
		got = append(got, readPacket{p.Timestamp, p.CaptureLength, p.Length, p.InterfaceID, append([]byte(nil), p.Data...), p.Comments()})
	}
}

func TestReadPcap(t *testing.T) {
	for _, tc := range []struct {
		name string
		bo   binary.ByteOrder
		nano bool
	}{
		{"little-endian microseconds", binary.LittleEndian, false},
		{"big-endian microseconds", binary.BigEndian, false},
		{"little-endian nanoseconds", binary.LittleEndian, true},
		{"big-endian nanoseconds", binary.BigEndian, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frac, want := uint32(250000), time.Unix(1700000000, 250000000).UTC()
			if tc.nano {
				frac, want = 250000123, time.Unix(1700000000, 250000123).UTC()
			}
			b := newPcap(tc.bo, tc.nano, 96, 1).
				packet(1700000000, frac, payload(60, 1), 60).
				packet(1700000001, 0, payload(96, 2), 1514).bytes()
			rd, got, err := readAll(t, b)
			if err != nil {
				t.Fatal(err)
			}
			h := rd.Header()
			if h.Format != FormatPcap || h.ByteOrder != tc.bo || h.Nanosecond != tc.nano || h.SnapLen != 96 || h.LinkType != 1 || h.VersionMajor != 2 || h.VersionMinor != 4 {
				t.Errorf("header = %+v", h)
			}
			if ifs := rd.Interfaces(); len(ifs) != 1 || ifs[0].LinkType != 1 || ifs[0].SnapLen != 96 {
				t.Errorf("interfaces = %+v", ifs)
			}
			if len(got) != 2 {
				t.Fatalf("read %d packets, want 2", len(got))
			}
			if !got[0].ts.Equal(want) || got[0].caplen != 60 || got[0].length != 60 || !bytes.Equal(got[0].data, payload(60, 1)) {
				t.Errorf("packet 0 = %+v, want ts %v", got[0], want)
			}
			if got[1].caplen != 96 || got[1].length != 1514 || !got[1].ts.Equal(time.Unix(1700000001, 0)) {
				t.Errorf("packet 1 = %+v", got[1])
			}
		})
	}
}

// ngSample is a pcapng stream with every kind of block, in byte order bo.
func ngSample(bo binary.ByteOrder) []byte {
	return newNg(bo, opt{4, []byte("netdiag-helper")}, opt{3, []byte("Linux")}).
		idb(1, 262144, opt{2, []byte("eth0")}, opt{9, u8(9)}).
		epb(0, 1700000000_123456789, payload(42, 1), 42).
		block(4, []byte{0, 0, 0, 0}). // name resolution: just the end record
		idb(1, 128, opt{2, []byte("lo")}, opt{9, u8(6)}, opt{14, u64(bo, 1000)}).
		epb(1, 5_000001, payload(128, 2), 1500, opt{1, []byte("hello")}).
		spb(payload(30, 3), 30).
		isb(1).
		bytes()
}

func TestReadPcapNG(t *testing.T) {
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(fmt.Sprint(bo), func(t *testing.T) {
			rd, err := NewReader(bytes.NewReader(ngSample(bo)))
			if err != nil {
				t.Fatal(err)
			}
			var types []RecordType
			var pkts []readPacket
			for {
				rec, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				types = append(types, rec.Type)
				if rec.Type == RecordPacket {
					p := rec.Packet
					pkts = append(pkts, readPacket{p.Timestamp, p.CaptureLength, p.Length, p.InterfaceID, append([]byte(nil), p.Data...), p.Comments()})
				}
			}
			wantTypes := []RecordType{RecordSection, RecordInterface, RecordPacket, RecordBlock, RecordInterface, RecordPacket, RecordPacket, RecordBlock}
			if !equalTypes(types, wantTypes) {
				t.Errorf("record types = %v, want %v", types, wantTypes)
			}
			h := rd.Header()
			if h.Format != FormatPcapNG || h.ByteOrder != bo || len(h.Options) != 2 || string(h.Options[0].Value) != "netdiag-helper" {
				t.Errorf("header = %+v", h)
			}
			ifs := rd.Interfaces()
			if len(ifs) != 2 || ifs[0].Name != "eth0" || ifs[0].Resolution != 1e9 || ifs[1].Name != "lo" || ifs[1].Resolution != 1e6 || ifs[1].Offset != 1000 || ifs[1].SnapLen != 128 {
				t.Errorf("interfaces = %+v", ifs)
			}
			if len(pkts) != 3 {
				t.Fatalf("read %d packets, want 3", len(pkts))
			}
			if want := time.Unix(1700000000, 123456789); !pkts[0].ts.Equal(want) || pkts[0].iface != 0 || pkts[0].caplen != 42 {
				t.Errorf("packet 0 = %+v", pkts[0])
			}
			if want := time.Unix(1005, 1000); !pkts[1].ts.Equal(want) || pkts[1].iface != 1 || pkts[1].length != 1500 ||
				len(pkts[1].comment) != 1 || pkts[1].comment[0] != "hello" || !bytes.Equal(pkts[1].data, payload(128, 2)) {
				t.Errorf("packet 1 = %+v (want ts %v)", pkts[1], want)
			}
			if !pkts[2].ts.IsZero() || pkts[2].iface != 0 || pkts[2].caplen != 30 || !bytes.Equal(pkts[2].data, payload(30, 3)) {
				t.Errorf("packet 2 (simple) = %+v", pkts[2])
			}
		})
	}
}

func equalTypes(a, b []RecordType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReaderCutAnywhere cuts a stream at every byte: the reader returns
// exactly the packets that were complete, then io.EOF at a record boundary
// or ErrTruncated inside a record; never garbage.
func TestReaderCutAnywhere(t *testing.T) {
	streams := map[string][]byte{
		"pcap":          newPcap(binary.LittleEndian, false, 65535, 1).packet(1, 0, payload(50, 1), 50).packet(2, 0, payload(7, 2), 7).bytes(),
		"pcapng little": ngSample(binary.LittleEndian),
		"pcapng big":    ngSample(binary.BigEndian),
	}
	for name, full := range streams {
		t.Run(name, func(t *testing.T) {
			_, all, err := readAll(t, full)
			if err != nil {
				t.Fatal(err)
			}
			for cut := 0; cut < len(full); cut++ {
				rd, got, err := readAll(t, full[:cut])
				if err == nil {
					// A clean end: the cut is on a record boundary.
					if rd.Offset() != int64(cut) {
						t.Fatalf("cut %d: no error but offset %d", cut, rd.Offset())
					}
				} else if !errors.Is(err, ErrTruncated) {
					t.Fatalf("cut %d: error %v, want ErrTruncated", cut, err)
				} else if !strings.Contains(err.Error(), "the partial record is dropped") {
					t.Fatalf("cut %d: error %q does not say what happened", cut, err)
				}
				if len(got) > len(all) {
					t.Fatalf("cut %d: %d packets from a stream of %d", cut, len(got), len(all))
				}
				for i := range got {
					if !bytes.Equal(got[i].data, all[i].data) {
						t.Fatalf("cut %d: packet %d differs", cut, i)
					}
				}
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	bad := ngSample(binary.LittleEndian)
	binary.LittleEndian.PutUint32(bad[len(bad)-4:], 99) // the last block's trailer
	huge := newPcap(binary.LittleEndian, false, 65535, 1).bytes()
	huge = append(huge, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0)
	for _, tc := range []struct {
		name  string
		in    []byte
		is    error
		wants string
	}{
		{"empty", nil, ErrTruncated, "it ended 0 bytes into the file header"},
		{"text", []byte("error: unknown flag --format\n"), ErrCorrupt, `not a pcap or pcapng stream: it starts with 65 72 72 6f ("erro")`},
		{"half a pcap header", newPcap(binary.LittleEndian, false, 65535, 1).bytes()[:10], ErrTruncated, "it ended 10 bytes into the 24-byte pcap file header at offset 0; the partial record is dropped"},
		{"pcap cut inside a packet", newPcap(binary.LittleEndian, false, 65535, 1).packet(1, 0, payload(50, 1), 50).bytes()[:44], ErrTruncated,
			"the capture stream ended in the middle of a record: it ended 20 bytes into a 66-byte packet record at offset 24; the partial record is dropped"},
		{"pcapng cut inside a packet", newNg(binary.BigEndian).idb(1, 0).epb(0, 1, payload(50, 1), 50).bytes()[:28+20+40], ErrTruncated,
			"it ended 40 bytes into a 84-byte enhanced packet block at offset 48; the partial record is dropped"},
		{"bad trailer", bad, ErrCorrupt, "the interface statistics block at offset 472 has length 24 but its trailer says 99"},
		{"huge record", huge, ErrCorrupt, "claims 2147483647 captured bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(t, tc.in)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("error = %v, want %v containing %q", err, tc.is, tc.wants)
			}
		})
	}
}

// TestReaderReadError: a read error inside a record is ErrTruncated and
// keeps the cause (what a broken exec stream returns).
func TestReaderReadError(t *testing.T) {
	full := newPcap(binary.LittleEndian, false, 65535, 1).packet(1, 0, payload(50, 1), 50).bytes()
	cause := errors.New("websocket: close 1006 (abnormal closure): unexpected EOF")
	r := io.MultiReader(bytes.NewReader(full[:60]), &errReader{cause})
	rd, err := NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rd.NextPacket()
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, cause) {
		t.Fatalf("error = %v, want ErrTruncated wrapping the cause", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }
