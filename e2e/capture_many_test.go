//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
)

// liveReader reads a pcapng stream as it arrives and counts the packets
// per interface name.
type liveReader struct {
	mu      sync.Mutex
	raw     bytes.Buffer
	perName map[string]int
	err     error
	done    chan struct{}
}

func readLive(r io.Reader) *liveReader {
	l := &liveReader{perName: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		rd, err := pcapstream.NewReader(io.TeeReader(r, lockedBuffer{l}))
		if err != nil {
			l.setErr(err)
			return
		}
		for {
			p, err := rd.NextPacket()
			if err != nil {
				if err != io.EOF {
					l.setErr(err)
				}
				_, _ = io.Copy(io.Discard, r)
				return
			}
			name := rd.Interfaces()[p.InterfaceID].Name
			l.mu.Lock()
			l.perName[name]++
			l.mu.Unlock()
		}
	}()
	return l
}

type lockedBuffer struct{ l *liveReader }

func (b lockedBuffer) Write(p []byte) (int, error) {
	b.l.mu.Lock()
	defer b.l.mu.Unlock()
	return b.l.raw.Write(p)
}

func (l *liveReader) setErr(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *liveReader) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for k, v := range l.perName {
		m[k] = v
	}
	return m
}

// TestCaptureManyPodsIntoOnePcapng captures two pods selected by a label
// into one pcapng on stdout: both pods' packets reach the reader while the
// capture runs, and tshark sees two named interfaces, each with its pod's
// requests.
func TestCaptureManyPodsIntoOnePcapng(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed: hack/ensure-packages.sh tshark installs it")
		}
		t.Skip("tshark is not installed (hack/ensure-packages.sh tshark installs it)")
	}
	c := getCluster(t)
	ns := c.namespace(t)
	labels := map[string]string{"app": "many"}
	podA := c.labelledWebPod(t, ns, "web-a", labels)
	podB := c.labelledWebPod(t, ns, "web-b", labels)

	cmd := c.kubectlCmd(context.Background(), "netdiag", "capture", "-l", "app=many", "-n", ns, "-f", "tcp port 8080", "-w", "-")
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
	live := readLive(stdout)
	go func() {
		<-live.done
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	stderr.waitFor(t, "capturing on pod/web-a", 90*time.Second)
	stderr.waitFor(t, "capturing on pod/web-b", 90*time.Second)

	httpGets(t, podA.Status.PodIP, "/from-a-1", "/from-a-2")
	httpGets(t, podB.Status.PodIP, "/from-b-1")

	// Live: both pods' packets reach the reader before the capture ends.
	nameA, nameB := ns+"/web-a", ns+"/web-b"
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := live.counts()
		if got[nameA] > 0 && got[nameB] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the live stream holds packets %v, want packets of %s and %s; stderr:\n%s", got, nameA, nameB, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // let the last ACKs reach the rings

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the capture did not end after Ctrl-C:\n%s", stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	if live.err != nil {
		t.Fatalf("reading the live stream: %v", live.err)
	}
	file := filepath.Join(t.TempDir(), "many.pcapng")
	live.mu.Lock()
	data := append([]byte(nil), live.raw.Bytes()...)
	live.mu.Unlock()
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	var tsharkErr bytes.Buffer
	ts := exec.Command(tshark, "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "http.request.uri")
	ts.Stderr = &tsharkErr
	out, err := ts.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, tsharkErr.String())
	}
	uris := map[string][]string{}
	descr := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("tshark line %q", line)
		}
		descr[f[0]] = f[1]
		if f[2] != "" {
			uris[f[0]] = append(uris[f[0]], f[2])
		}
	}
	var names []string
	for n := range descr {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != nameA+","+nameB {
		t.Errorf("tshark interfaces %v, want %s and %s", names, nameA, nameB)
	}
	for name, want := range map[string]string{nameA: "eth0 of " + nameA + " on node " + c.node, nameB: "eth0 of " + nameB + " on node " + c.node} {
		if descr[name] != want {
			t.Errorf("interface %s described %q, want %q", name, descr[name], want)
		}
	}
	if got := strings.Join(uris[nameA], ","); got != "/from-a-1,/from-a-2" {
		t.Errorf("requests on %s: %q, want /from-a-1,/from-a-2", nameA, got)
	}
	if got := strings.Join(uris[nameB], ","); got != "/from-b-1" {
		t.Errorf("requests on %s: %q, want /from-b-1", nameB, got)
	}
	for _, s := range []string{"  pod/web-a (node " + c.node + ") eth0: ", "  pod/web-b (node " + c.node + ") eth0: ", "from 2 of 2 pods", "stopped: Ctrl-C"} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, stderr.String())
		}
	}
}
