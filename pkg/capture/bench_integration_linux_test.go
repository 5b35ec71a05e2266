//go:build integration

package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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

// BenchmarkCaptureVsTcpdumpFlood: the helper and tcpdump side by side on the
// same veth, filter "udp", each writing pcap to /dev/null, while iperf3
// floods the veth with 64-byte UDP datagrams as fast as it can
// (iperf3 -u -b 0 -l 64) for floodSeconds. Each repetition reports, from
// the rusage of each process (user + system CPU, as wait4 returns it): CPU
// seconds per million captured packets, the ratio helper/tcpdump, and each
// one's capture share (captured / datagrams iperf3 sent).
//
//	hack/test-helper.sh -run '^$' -bench CaptureVsTcpdumpFlood -benchtime 3x
func BenchmarkCaptureVsTcpdumpFlood(b *testing.B) {
	helperBinary(b) // skips unless root with a built helper
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		b.Skip("tcpdump is not installed (apt-get install tcpdump): it is the reference")
	}
	iperf3, err := exec.LookPath("iperf3")
	if err != nil {
		b.Skip("iperf3 is not installed (apt-get install iperf3): it makes the flood")
	}
	const (
		floodSeconds = 10
		filter       = "udp"
	)
	var helperCPU, tcpdumpCPU time.Duration
	var helperPkts, tcpdumpPkts, sent uint64
	var seconds float64
	for i := 0; i < b.N; i++ {
		p := newVethPair(b)
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		server := exec.Command("ip", "netns", "exec", p.nameB, iperf3, "-s", "-1", "-B", addrB)
		var serverOut bytes.Buffer
		server.Stdout, server.Stderr = &serverOut, &serverOut
		if err := server.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { server.Process.Kill(); server.Wait() })

		h := startHelperTo(b, devnull, "--netns", "/run/netns/"+p.nameB, "-i", "nd1", "-f", filter)
		h.waitReady(b)
		td, tdLines := startTcpdump(b, tcpdump, p.nameB, devnull, filter)

		client := exec.Command("ip", "netns", "exec", p.nameA, iperf3, "-c", addrB,
			"-u", "-b", "0", "-l", "64", "-t", fmt.Sprint(floodSeconds), "-J")
		var report bytes.Buffer
		client.Stdout = &report
		// The server may not listen yet: iperf3 then fails at once.
		for try := 0; ; try++ {
			report.Reset()
			if err = client.Run(); err == nil || try == 20 {
				break
			}
			time.Sleep(100 * time.Millisecond)
			client = exec.Command(client.Args[0], client.Args[1:]...)
			client.Stdout = &report
		}
		if err != nil {
			b.Fatalf("iperf3 client: %v: %s (server: %s)", err, report.String(), serverOut.String())
		}
		var res struct {
			End struct {
				SumSent struct {
					Packets uint64  `json:"packets"`
					Seconds float64 `json:"seconds"`
				} `json:"sum_sent"`
			} `json:"end"`
		}
		if err := json.Unmarshal(report.Bytes(), &res); err != nil || res.End.SumSent.Packets == 0 {
			b.Fatalf("iperf3's report has no sent datagrams (%v): %s", err, report.String())
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

		hCPU, tCPU := cpuTime(h.cmd.ProcessState), cpuTime(td.ProcessState)
		tdCaptured, tdDropped := tcpdumpCounts(b, tdOut)
		n := res.End.SumSent.Packets
		b.Logf("run %d: %d datagrams in %.1fs (%.0f/s); helper %.3f CPU-s/Mpkt (user %.2fs sys %.2fs), %.1f%% captured, %d kernel drops; tcpdump %.3f CPU-s/Mpkt (user %.2fs sys %.2fs), %.1f%% captured, %d kernel drops; ratio %.2f",
			i+1, n, res.End.SumSent.Seconds, float64(n)/res.End.SumSent.Seconds,
			perMillion(hCPU, st.Packets), h.cmd.ProcessState.UserTime().Seconds(), h.cmd.ProcessState.SystemTime().Seconds(),
			100*float64(st.Packets)/float64(n), st.KernelDrops,
			perMillion(tCPU, tdCaptured), td.ProcessState.UserTime().Seconds(), td.ProcessState.SystemTime().Seconds(),
			100*float64(tdCaptured)/float64(n), tdDropped,
			perMillion(hCPU, st.Packets)/perMillion(tCPU, tdCaptured))
		helperCPU += hCPU
		tcpdumpCPU += tCPU
		helperPkts += st.Packets
		tcpdumpPkts += tdCaptured
		sent += n
		seconds += res.End.SumSent.Seconds
	}
	if helperPkts == 0 || tcpdumpPkts == 0 {
		b.Fatalf("nothing captured: helper %d, tcpdump %d packets", helperPkts, tcpdumpPkts)
	}
	b.ReportMetric(perMillion(helperCPU, helperPkts), "helper-cpu-s/Mpkt")
	b.ReportMetric(perMillion(tcpdumpCPU, tcpdumpPkts), "tcpdump-cpu-s/Mpkt")
	b.ReportMetric(perMillion(helperCPU, helperPkts)/perMillion(tcpdumpCPU, tcpdumpPkts), "cpu-ratio")
	b.ReportMetric(100*float64(helperPkts)/float64(sent), "helper-captured-%")
	b.ReportMetric(100*float64(tcpdumpPkts)/float64(sent), "tcpdump-captured-%")
	b.ReportMetric(float64(sent)/seconds, "sent-pkts/s")
}

// perMillion is CPU seconds per million packets.
func perMillion(cpu time.Duration, pkts uint64) float64 {
	if pkts == 0 {
		return 0
	}
	return cpu.Seconds() / (float64(pkts) / 1e6)
}

// startTcpdump starts tcpdump on nd1 in the namespace (ip netns exec execs
// it in place, so its rusage is tcpdump's), writing pcap to out, with an
// 8 MiB buffer like the helper's ring, and waits until it listens. Its
// stderr lines arrive on the channel, which closes when it exits.
func startTcpdump(t testing.TB, tcpdump, ns string, out *os.File, filter string) (*exec.Cmd, <-chan string) {
	t.Helper()
	td := exec.Command("ip", "netns", "exec", ns, tcpdump, "-i", "nd1", "-n", "-p",
		"-s", "262144", "-B", "8192", "-w", os.DevNull, filter)
	td.Stdout = out
	tdErr, err := td.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.Process.Kill() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(tdErr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine(t, lines, "listening on")
	return td, lines
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
