//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// readyText is what the plugin prints on stderr once packets are captured.
const readyText = "Ctrl-C to stop"

// packet is the part of a captured packet the assertions look at.
type packet struct {
	tcp     *layers.TCP
	payload []byte
}

// readCapture decodes a pcap or pcapng file into its TCP packets; any packet
// that is not TCP fails the test (every capture here filters on TCP).
func readCapture(t *testing.T, data []byte) []packet {
	t.Helper()
	var src gopacket.PacketDataSource
	var linkType layers.LinkType
	if bytes.HasPrefix(data, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("pcapng: %v", err)
		}
		src, linkType = r, r.LinkType()
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("pcap: %v (%d bytes)", err, len(data))
		}
		src, linkType = r, r.LinkType()
	}
	var out []packet
	for {
		b, _, err := src.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading packet %d: %v", len(out)+1, err)
		}
		p := gopacket.NewPacket(b, linkType, gopacket.Default)
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			t.Fatalf("packet %d is not TCP: %v", len(out)+1, p)
		}
		out = append(out, packet{tcp: tcp, payload: tcp.Payload})
	}
	return out
}

// httpGets fetches each path from the pod and returns the bodies' count.
func httpGets(t *testing.T, podIP string, paths ...string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, p := range paths {
		resp, err := client.Get("http://" + net.JoinHostPort(podIP, "8080") + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// noise sends traffic the filters exclude: a TCP connection attempt to a
// closed port of the pod.
func noise(podIP string) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(podIP, "9999"), time.Second)
	if err == nil {
		c.Close()
	}
}

func TestCapturePodHTTP(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	dir := t.TempDir()

	t.Run("ctrl-c leaves a complete file with exactly the filtered traffic", func(t *testing.T) {
		file := filepath.Join(dir, "web.pcap")
		capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "-f", "tcp port 8080", "-w", file)
		capture.stderr.waitFor(t, readyText, 90*time.Second)

		paths := []string{"/e2e-1", "/e2e-2", "/e2e-3", "/e2e-4", "/e2e-5"}
		noise(pod.Status.PodIP)
		httpGets(t, pod.Status.PodIP, paths...)
		noise(pod.Status.PodIP)
		time.Sleep(time.Second) // let the last ACKs reach the ring

		if err := capture.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := capture.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d after Ctrl-C, want 0", code)
		}
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("capture file mode %v, want 0600", st.Mode().Perm())
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		pkts := readCapture(t, data)
		syns := 0
		var requests []string
		for i, p := range pkts {
			if p.tcp.SrcPort != 8080 && p.tcp.DstPort != 8080 {
				t.Errorf("packet %d is %d→%d, outside the filter tcp port 8080", i+1, p.tcp.SrcPort, p.tcp.DstPort)
			}
			if p.tcp.SYN && !p.tcp.ACK {
				syns++
			}
			if bytes.HasPrefix(p.payload, []byte("GET ")) {
				requests = append(requests, strings.Fields(string(p.payload))[1])
			}
		}
		if syns != len(paths) {
			t.Errorf("captured %d connection attempts to port 8080, want %d", syns, len(paths))
		}
		if strings.Join(requests, ",") != strings.Join(paths, ",") {
			t.Errorf("captured requests %v, want %v", requests, paths)
		}
		if !strings.Contains(capture.stderr.String(), fmt.Sprintf("%d packets", len(pkts))) {
			t.Errorf("summary does not report the %d packets in the file:\n%s", len(pkts), capture.stderr.String())
		}
	})
}

// TestCaptureToStdout pipes the pcap through stdout, as `-w - | tshark -r -`.
func TestCaptureToStdout(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")

	for i, format := range []string{"pcap", "pcapng"} {
		cmd := c.kubectlCmd(context.Background(), "netdiag", "capture", "web", "-n", ns,
			"-f", "tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0", "--count", "3", "--format", format, "-w", "-")
		var stdout bytes.Buffer
		stderr := newLineBuffer()
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		stderr.waitFor(t, readyText, 90*time.Second)
		httpGets(t, pod.Status.PodIP, "/a", "/b", "/c", "/d")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\n%s", format, err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%s: --count 3 did not end the capture:\n%s", format, stderr.String())
		}
		pkts := readCapture(t, stdout.Bytes())
		if len(pkts) != 3 {
			t.Fatalf("%s: %d packets, want 3 (--count 3)", format, len(pkts))
		}
		for _, p := range pkts {
			if !p.tcp.SYN || p.tcp.DstPort != 8080 {
				t.Errorf("%s: packet outside the filter: %+v", format, p.tcp)
			}
		}
		// The second run found the first one's container and reused it.
		if n := len(c.getPod(t, ns, "web").Spec.EphemeralContainers); n != 1 {
			t.Fatalf("after capture %d: pod has %d ephemeral containers, want 1 (reused)", i+1, n)
		}
	}
}

// TestCaptureRefusesBeforeCreating checks that bad input creates nothing.
func TestCaptureRefusesBeforeCreating(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	c.webPod(t, ns, "web")
	pending := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      c.node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name: "c", Image: "localhost/netdiag-absent:v0", ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
	if _, err := c.client.CoreV1().Pods(ns).Create(context.Background(), pending, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad filter", []string{"pod/web", "-f", "tcp port"}, `invalid filter "tcp port"`},
		{"bad duration", []string{"pod/web", "--duration", "10"}, "--duration"},
		{"missing pod", []string{"pod/nope"}, `"nope" not found`},
		{"pod not running", []string{"pod/pending"}, "Pending"},
		{"output is a directory", []string{"pod/web", "-w", t.TempDir()}, "-w"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"netdiag", "capture", "-n", ns}, tc.args...)
			if !contains(tc.args, "-w") {
				args = append(args, "-w", filepath.Join(t.TempDir(), "x.pcap"))
			}
			r := c.run(t, 60*time.Second, args...)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1", r.code)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			for _, name := range []string{"web", "pending"} {
				if n := len(c.getPod(t, ns, name).Spec.EphemeralContainers); n != 0 {
					t.Errorf("pod %s got %d ephemeral containers from a refused capture", name, n)
				}
			}
		})
	}
}

// TestKilledClientStopsHelper: a SIGKILLed plugin gives the remote helper no
// EOF; the missing heartbeats must end it.
func TestKilledClientStopsHelper(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	c.webPod(t, ns, "web")
	capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "-w", filepath.Join(t.TempDir(), "k.pcap"))
	capture.stderr.waitFor(t, readyText, 90*time.Second)
	if n := len(helperCaptures(t)); n == 0 {
		t.Fatal("no netdiag-helper capture process found on the node while capturing")
	}
	if err := capture.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = capture.wait(t, 10*time.Second)
	deadline := time.Now().Add(45 * time.Second)
	for len(helperCaptures(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("netdiag-helper capture still running 45s after its client was killed: %v", helperCaptures(t))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// helperCaptures lists PIDs of helper capture processes on this machine (the
// test runs on the cluster's only node).
func helperCaptures(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "^/netdiag-helper capture").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return nil
		}
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCaptureReaderGoes: `capture -w - | head -c 100` ends the capture
// cleanly once head exits: exit 0, a summary, no helper left running.
func TestCaptureReaderGoes(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	cmd := c.kubectlCmd(context.Background(), "netdiag", "capture", "pod/web", "-n", ns, "-f", "tcp port 8080", "-w", "-")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := newLineBuffer()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stderr.waitFor(t, readyText, 90*time.Second)
	httpGets(t, pod.Status.PodIP, "/1", "/2", "/3")
	head := make([]byte, 100)
	if _, err := io.ReadFull(stdout, head); err != nil {
		t.Fatalf("reading the first 100 bytes: %v", err)
	}
	stdout.Close()                            // the reader goes away, like head -c 100
	httpGets(t, pod.Status.PodIP, "/4", "/5") // more packets meet the closed pipe
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the capture went on after its reader left:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "which its reader closed after") {
		t.Errorf("no summary saying the reader left:\n%s", stderr.String())
	}
}

// TestCaptureNodeBridge captures on the node's cbr0 through a node-debug
// pod: the node sees the pod's HTTP on its bridge, and the pod is gone after.
func TestCaptureNodeBridge(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	file := filepath.Join(t.TempDir(), "node.pcap")
	filter := fmt.Sprintf("host %s and tcp port 8080", pod.Status.PodIP)
	capture := c.start(t, "netdiag", "capture", "node/"+c.node, "-n", ns, "--interface", "cbr0", "-f", filter, "-w", file)
	capture.stderr.waitFor(t, "capturing on node/"+c.node+" cbr0", 90*time.Second)
	httpGets(t, pod.Status.PodIP, "/node-1", "/node-2")
	time.Sleep(time.Second)
	capture.interrupt(t)
	requests := requestsIn(t, file)
	if strings.Join(requests, ",") != "/node-1,/node-2" {
		t.Errorf("requests seen on cbr0: %v, want [/node-1 /node-2]", requests)
	}
	if pods := c.netdiagPods(t); len(pods) > 0 {
		t.Errorf("node-debug pod left after the capture: %s/%s", pods[0].Namespace, pods[0].Name)
	}
}

// requestsIn are the HTTP request paths in a capture file, which must read
// from end to end.
func requestsIn(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range readCapture(t, data) {
		if bytes.HasPrefix(p.payload, []byte("GET ")) {
			out = append(out, strings.Fields(string(p.payload))[1])
		}
	}
	return out
}
