package pcapstream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
)

// segment is a helper's pcapng stream with n 60-byte packets from start.
func segment(start time.Time, n int) []byte {
	var b bytes.Buffer
	w, _ := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 262144},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "netdiag-helper"}})
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i) * time.Second)
		_ = w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: 60, Length: 60}, make([]byte, 60))
	}
	_ = w.Flush()
	return b.Bytes()
}

// A capture whose exec stream broke in the middle of a packet, resumed by a
// new helper run: one output, the gap marked on the first packet after it.
func ExampleJoiner() {
	start := time.Date(2026, 11, 30, 12, 1, 5, 0, time.UTC)
	first := segment(start, 3)
	broken := first[:len(first)-40] // the stream broke inside packet 3
	resumed := segment(start.Add(14*time.Second), 2)

	var out bytes.Buffer // a file, stdout or Wireshark's stdin
	j := pcapstream.NewJoiner(&out)

	st, err := j.Copy(bytes.NewReader(broken))
	if errors.Is(err, pcapstream.ErrTruncated) {
		fmt.Println("segment 1 ended mid-packet; kept", st.Packets, "packets")
	}
	// Reconnected: the plugin starts a new helper capture.
	resumedAt := start.Add(14 * time.Second)
	fmt.Fprintln(os.Stdout, j.Gap(st.Last, resumedAt)) // the plugin prints the same text on stderr
	if _, err := j.Copy(bytes.NewReader(resumed)); err != nil {
		fmt.Println(err)
	}
	s := j.Summary()
	fmt.Printf("%d segments, %d packets, %d gap of %s\n", s.Segments, s.Packets, s.Gaps, s.GapTotal)

	rd, _ := pcapstream.NewReader(&out)
	for {
		p, err := rd.NextPacket()
		if err == io.EOF {
			break
		}
		fmt.Println(p.Timestamp.Format("15:04:05"), p.Comments())
	}
	// Output:
	// segment 1 ended mid-packet; kept 2 packets
	// stream broke at 12:01:06, resumed at 12:01:19 (13s later): packets in between were not captured
	// 2 segments, 4 packets, 1 gap of 13s
	// 12:01:05 []
	// 12:01:06 []
	// 12:01:19 [stream broke at 12:01:06, resumed at 12:01:19 (13s later): packets in between were not captured]
	// 12:01:20 []
}
