//go:build integration

package capture

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCaptureVsTcpdump runs the helper and tcpdump side by side on the
// same veth, with the same filter, while a burst of UDP datagrams crosses it
// (half of them match the filter), both writing to /dev/null. It reports each
// one's CPU time per matching packet and kernel drops, and the ratio
// helper/tcpdump: the reference is measured in the same run, under the same
// load, so the ratio means something on a shared, noisy machine.
//
//	hack/test-helper.sh -run '^$' -bench CaptureVsTcpdump -benchtime 3x
func BenchmarkCaptureVsTcpdump(b *testing.B) {
	helperBinary(b) // skips unless root with a built helper
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		b.Skip("tcpdump is not installed (apt-get install tcpdump): it is the reference")
	}
	const (
		perPort = 50000
		size    = 512
		filter  = "udp port 40001"
	)
	var helperCPU, tcpdumpCPU time.Duration
	var helperPkts, tcpdumpPkts, helperDrops, tcpdumpDrops uint64
	for i := 0; i < b.N; i++ {
		p := newVethPair(b)
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		h := startHelperTo(b, devnull, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "-f", filter)
		h.waitReady(b)

		td := exec.Command("ip", "netns", "exec", p.nameB, tcpdump, "-i", "nd1", "-n", "-p",
			"-s", "262144", "-B", "8192", "-w", os.DevNull, filter)
		td.Stdout = devnull
		tdErr, err := td.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := td.Start(); err != nil {
			b.Fatal(err)
		}
		tdLines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(tdErr)
			for sc.Scan() {
				tdLines <- sc.Text()
			}
			close(tdLines)
		}()
		waitLine(b, tdLines, "listening on")

		match, other := p.udpFromA(b, 40001), p.udpFromA(b, 40002)
		payload := make([]byte, size)
		for j := 0; j < perPort; j++ {
			_, _ = match.Write(payload)
			_, _ = other.Write(payload)
		}
		time.Sleep(300 * time.Millisecond) // let both drain their rings

		_ = h.cmd.Process.Signal(syscall.SIGINT)
		_ = td.Process.Signal(syscall.SIGINT)
		st, _ := h.wait(b, 20*time.Second)
		var tdOut []string
		for l := range tdLines {
			tdOut = append(tdOut, l)
		}
		_ = td.Wait()
		devnull.Close()

		helperCPU += cpuTime(h.cmd.ProcessState)
		tdCPU := cpuTime(td.ProcessState)
		tcpdumpCPU += tdCPU
		helperPkts += st.Packets
		helperDrops += st.KernelDrops
		captured, dropped := tcpdumpCounts(b, tdOut)
		tcpdumpPkts += captured
		tcpdumpDrops += dropped
	}
	if helperPkts == 0 || tcpdumpPkts == 0 {
		b.Fatalf("nothing captured: helper %d, tcpdump %d packets", helperPkts, tcpdumpPkts)
	}
	helperPer := float64(helperCPU.Nanoseconds()) / float64(helperPkts)
	tcpdumpPer := float64(tcpdumpCPU.Nanoseconds()) / float64(tcpdumpPkts)
	b.ReportMetric(helperPer, "helper-cpu-ns/pkt")
	b.ReportMetric(tcpdumpPer, "tcpdump-cpu-ns/pkt")
	b.ReportMetric(helperPer/tcpdumpPer, "cpu-ratio")
	b.ReportMetric(float64(helperPkts)/float64(b.N), "helper-pkts/op")
	b.ReportMetric(float64(tcpdumpPkts)/float64(b.N), "tcpdump-pkts/op")
	b.ReportMetric(float64(helperDrops)/float64(b.N), "helper-drops/op")
	b.ReportMetric(float64(tcpdumpDrops)/float64(b.N), "tcpdump-drops/op")
}

func cpuTime(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

func waitLine(t testing.TB, lines <-chan string, substr string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended before a line containing %q", substr)
			}
			if strings.Contains(l, substr) {
				return
			}
		case <-timeout:
			t.Fatalf("no line containing %q within 10s", substr)
		}
	}
}

var tcpdumpCount = regexp.MustCompile(`^(\d+) packets? (captured|dropped by kernel)`)

// tcpdumpCounts reads tcpdump's closing statistics.
func tcpdumpCounts(t testing.TB, lines []string) (captured, dropped uint64) {
	t.Helper()
	seen := 0
	for _, l := range lines {
		m := tcpdumpCount.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		if m[2] == "captured" {
			captured = n
		} else {
			dropped = n
		}
		seen++
	}
	if seen != 2 {
		t.Fatalf("tcpdump's statistics not found in %q", lines)
	}
	return captured, dropped
}
