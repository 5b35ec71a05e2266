package remotecapture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// play is one helper run of a segmented fake: what it writes, and how its
// stream ends.
type play struct {
	stdout []byte
	stderr string
	err    error
	// refused: the exec fails before the helper runs (its container
	// does not run yet).
	refused bool
}

// segments is a fake Executor whose successive execs play successive
// segments of one capture.
type segments struct {
	mu    sync.Mutex
	plays []play
	cmds  [][]string
}

func (s *segments) Stream(_ context.Context, _ kube.Pod, _ string, cmd []string, _ io.Reader, stdout, stderr io.Writer) error {
	s.mu.Lock()
	i := len(s.cmds)
	s.cmds = append(s.cmds, cmd)
	s.mu.Unlock()
	if i >= len(s.plays) {
		return errors.New("no more segments")
	}
	p := s.plays[i]
	if p.refused {
		return errors.New("unable to upgrade connection: container not found (\"netdiag-old00\")")
	}
	io.WriteString(stderr, `{"type":"hello","protocol":1,"helper":"v0.1.0"}`+"\n")
	io.WriteString(stderr, `{"type":"ready","interface":"eth0","linkType":"EN10MB","snaplen":262144,"format":"pcap"}`+"\n")
	stdout.Write(p.stdout)
	io.WriteString(stderr, p.stderr)
	return p.err
}

func (s *segments) request(t *testing.T, i int) protocol.CaptureRequest {
	t.Helper()
	if i >= len(s.cmds) {
		t.Fatalf("segment %d never ran (%d execs)", i+1, len(s.cmds))
	}
	r, err := protocol.ParseCaptureRequest(s.cmds[i][2:])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reusedPod has a running netdiag container: the capture reuses it, and a
// resumed segment finds it running.
func reusedPod() *corev1.Pod {
	pod := runningPod()
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kube.NewEphemeralContainer(kube.EphemeralSpec{Image: image, PullPolicy: corev1.PullIfNotPresent, TargetContainer: "app"}, "old00")}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag-old00", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	return pod
}

// apiDown makes the first n pod reads after the first exec fail, as an API
// server that is restarting does.
func apiDown(c *cluster, ex *segments, n int) {
	var mu sync.Mutex
	c.client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		ex.mu.Lock()
		started := len(ex.cmds) > 0
		ex.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		if started && n != 0 {
			n--
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		return false, nil, nil
	})
}

var broken = errors.New("error reading from error stream: next reader: websocket: close 1006 (abnormal closure): unexpected EOF")

func TestResumeAppendsAndCountsAcrossSegments(t *testing.T) {
	first := pcapStream(4, 0)
	first = first[:len(first)-7] // the stream broke inside the 4th packet
	ex := &segments{plays: []play{
		{stdout: first, err: broken},
		// The resumed helper writes its own header: the plugin drops it.
		{stdout: pcapStream(7, 100), stderr: `{"type":"stats","packets":7,"bytes":420,"kernelDrops":1,"reason":"count","interface":"eth0"}` + "\n"},
	}}
	c := newCluster(t, reusedPod(), nil)
	apiDown(c, ex, 2)
	out := &memFile{}
	cfg := config(out)
	cfg.ReconnectTimeout = 10 * time.Second
	var errOut bytes.Buffer
	res, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, NameSuffix: func() string { return "abcde" }, ErrOut: &errOut}, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	// Limits across segments: 3 whole packets before the break, so the
	// new helper is asked for 7, takes over the old one's id.
	r1, r2 := ex.request(t, 0), ex.request(t, 1)
	if r2.Count != 7 || !r2.Takeover || r1.Takeover || r2.ID == "" || r2.ID != r1.ID {
		t.Errorf("resumed request %+v after %+v: want --count 7, --takeover, the same --id", r2, r1)
	}
	// One output: one header, 3 + 7 packets, the partial one dropped.
	if want := 24 + 10*76; out.Len() != want {
		t.Errorf("output is %d bytes, want %d (one header, 10 whole packets)", out.Len(), want)
	}
	rd, err := pcapstream.NewReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		p, err := rd.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the joined output does not read to its end: %v", err)
		}
		if n == 3 && p.Timestamp.Unix() != 1700000100 {
			t.Errorf("4th packet is from %v, want the resumed segment's first", p.Timestamp)
		}
		n++
	}
	if n != 10 {
		t.Errorf("%d packets in the output, want 10", n)
	}
	if res.Segments != 2 || res.Gaps != 1 || res.Stats.Packets != 10 || res.Stats.KernelDrops != 1 || res.Stats.Reason != "count" {
		t.Errorf("result %+v", res)
	}
	sum := res.Summary("web.pcap")
	if !strings.Contains(sum, "captured 10 packets") || !strings.Contains(sum, ", 1 gap in the stream (") || !strings.HasSuffix(sum, "stopped: --count reached") {
		t.Errorf("summary %q", sum)
	}
	for _, want := range []string{
		"the capture stream from pod/web-0 broke at ", "websocket: close 1006", "reconnecting for up to 10s...",
		"stream broke at ", "packets in between were not captured", "resumed the capture on pod/web-0 eth0",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
}

func TestResumeGivesUpAfterReconnectTimeout(t *testing.T) {
	ex := &segments{plays: []play{{stdout: pcapStream(3, 0), err: broken}}}
	c := newCluster(t, reusedPod(), nil)
	apiDown(c, ex, -1)
	out := &memFile{}
	cfg := config(out)
	cfg.ReconnectTimeout = 1200 * time.Millisecond
	begin := time.Now()
	_, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, cfg)
	if err == nil || !strings.Contains(err.Error(), "could not be resumed within --reconnect-timeout 1.2s (the API server does not answer: ") || strings.Contains(err.Error(), "web.pcap") {
		t.Errorf("error %v", err)
	}
	if took := time.Since(begin); took < time.Second || took > 4*time.Second {
		t.Errorf("gave up after %s, want about the reconnect timeout (1.2s)", took)
	}
	if len(ex.cmds) != 1 || !out.closed || !bytes.Equal(out.Bytes(), pcapStream(3, 0)) {
		t.Errorf("%d execs, output %d bytes (closed %v); want one exec and the 3 packets", len(ex.cmds), out.Len(), out.closed)
	}
}

func TestResumeStopsWhenTheLimitWasReached(t *testing.T) {
	ex := &segments{plays: []play{{stdout: pcapStream(10, 0), err: broken}}}
	c := newCluster(t, reusedPod(), nil)
	cfg := config(&memFile{})
	cfg.ReconnectTimeout = 5 * time.Second
	res, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, cfg)
	if err != nil || len(ex.cmds) != 1 || res.Stats.Reason != "count" || res.Stats.Packets != 10 {
		t.Errorf("err %v, %d execs, result %+v: the 10 packets asked for were there before the break", err, len(ex.cmds), res)
	}
}

func TestResumeNotWhenGone(t *testing.T) {
	for name, mutate := range map[string]func(*corev1.Pod){
		"container ended": func(p *corev1.Pod) {
			p.Status.EphemeralContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}
		},
		"pod not running": func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed },
	} {
		t.Run(name, func(t *testing.T) {
			ex := &segments{plays: []play{{stdout: pcapStream(2, 0), err: broken}}}
			c := newCluster(t, reusedPod(), nil)
			gone := reusedPod()
			mutate(gone)
			c.client.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				ex.mu.Lock()
				defer ex.mu.Unlock()
				if len(ex.cmds) > 0 {
					return true, gone, nil
				}
				return false, nil, nil
			})
			cfg := config(&memFile{})
			cfg.ReconnectTimeout = 30 * time.Second
			begin := time.Now()
			_, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, cfg)
			if err == nil || !strings.Contains(err.Error(), "could not be resumed") || time.Since(begin) > 5*time.Second {
				t.Errorf("error %v after %s: want an early give-up", err, time.Since(begin))
			}
		})
	}
}

// Without --reconnect-timeout the first break ends the capture, as before.
func TestResumeOff(t *testing.T) {
	ex := &segments{plays: []play{{stdout: pcapStream(2, 0), err: broken}}}
	c := newCluster(t, reusedPod(), nil)
	_, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, config(&memFile{}))
	want := fmt.Sprintf("the capture stream from pod/web-0 broke before the helper reported its stats (%v); web.pcap may be incomplete", broken)
	if err == nil || err.Error() != want || len(ex.cmds) != 1 {
		t.Errorf("error %v, %d execs", err, len(ex.cmds))
	}
}

// A stream that breaks again and again, at once, is given up within one
// reconnect timeout, not one per break.
func TestResumeRepeatedBreaksAreBounded(t *testing.T) {
	ex := &segments{}
	for i := 0; i < 1000; i++ {
		ex.plays = append(ex.plays, play{err: broken})
	}
	ex.plays[0].stdout = pcapStream(1, 0)
	c := newCluster(t, reusedPod(), nil)
	cfg := config(&memFile{})
	cfg.ReconnectTimeout = time.Second
	begin := time.Now()
	_, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, cfg)
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("kept resuming for %s (%d execs)", took, len(ex.cmds))
	}
	if err == nil {
		t.Errorf("no error after %d breaks", len(ex.cmds))
	}
}

// The first exec is tried before the kubelet reports the container
// running, and again until it runs: no resume, no gap, nothing lost.
func TestFirstExecRetriedUntilTheContainerRuns(t *testing.T) {
	ex := &segments{plays: []play{{refused: true}, {refused: true}, {stdout: pcapStream(3, 0), stderr: statsLine}}}
	c := newCluster(t, reusedPod(), nil)
	out := &memFile{}
	res, err := Run(context.Background(), Deps{Client: c.client, Executor: ex, ErrOut: io.Discard}, config(out))
	if err != nil || len(ex.cmds) != 3 || res.Segments != 1 || res.Gaps != 0 || !bytes.Equal(out.Bytes(), pcapStream(3, 0)) {
		t.Errorf("err %v, %d execs, result %+v, output %d bytes", err, len(ex.cmds), res, out.Len())
	}
	if r := ex.request(t, 2); r.Takeover {
		t.Errorf("a retried first exec is no resume: %+v", r)
	}
}
