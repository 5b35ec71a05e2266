package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/remotecapture"
)

func TestCaptureValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		mutate   func(o *CaptureOptions)
		terminal bool
		want     string
	}{
		{"defaults to a file", func(o *CaptureOptions) {}, false, ""},
		{"stdout pipe", func(o *CaptureOptions) { o.Output = "-" }, false, ""},
		{"stdout terminal", func(o *CaptureOptions) { o.Output = "-" }, true, "refusing to write pcap to a terminal; use -w FILE or pipe it"},
		{"no -w, terminal", func(o *CaptureOptions) { o.Output = "" }, true, "refusing to write pcap to a terminal; use -w FILE or pipe it"},
		{"snaplen 0", func(o *CaptureOptions) { o.Snaplen = 0 }, false, "--snaplen must be between 1 and 262144, got 0"},
		{"snaplen big", func(o *CaptureOptions) { o.Snaplen = 262145 }, false, "--snaplen must be between 1 and 262144, got 262145"},
		{"count", func(o *CaptureOptions) { o.Count = -1 }, false, "--count must not be negative, got -1"},
		{"duration", func(o *CaptureOptions) { o.Duration = -time.Second }, false, "--duration must not be negative, got -1s"},
		{"max-bytes", func(o *CaptureOptions) { o.MaxBytes = -5 }, false, "--max-bytes must not be negative, got -5"},
		{"format", func(o *CaptureOptions) { o.Format = "txt" }, false, `--format must be pcap or pcapng, got "txt"`},
		{"pull policy", func(o *CaptureOptions) { o.PullPolicy = "sometimes" }, false, `--image-pull-policy must be Always, IfNotPresent or Never, got "sometimes"`},
		{"image", func(o *CaptureOptions) { o.Image = "" }, false, "--image must not be empty"},
		{"timeout", func(o *CaptureOptions) { o.Timeout = 0 }, false, "--timeout must be positive, got 0s"},
		{"heartbeat", func(o *CaptureOptions) { o.Heartbeat = time.Second }, false, "--heartbeat must be at least 5s, got 1s"},
		{"interface empty", func(o *CaptureOptions) { o.Interface = "" }, false, "--interface must not be empty"},
		{"interface bad", func(o *CaptureOptions) { o.Interface = "eth0 eth1" }, false, `--interface "eth0 eth1" is not a valid interface name`},
		{"filter", func(o *CaptureOptions) { o.Filter = "tcp port" }, false, `invalid filter "tcp port": expected a port number after "port" (at the end)`},
		{"output dir", func(o *CaptureOptions) { o.Output = dir }, false, "-w " + dir + ": is a directory"},
		{"output parent missing", func(o *CaptureOptions) { o.Output = filepath.Join(dir, "nope", "x.pcap") }, false,
			"-w " + filepath.Join(dir, "nope", "x.pcap") + `: directory "` + filepath.Join(dir, "nope") + `" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
			o.Output = filepath.Join(dir, "web.pcap")
			o.IsTerminal = func(any) bool { return tt.terminal }
			tt.mutate(o)
			err := o.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate():\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCaptureComplete(t *testing.T) {
	tests := []struct {
		args       []string
		selector   string
		want       string
		wantTarget string
		many       bool
	}{
		{nil, "", "capture needs a target: pod/NAME, deploy/NAME, sts/NAME, ds/NAME, -l SELECTOR or node/NAME, e.g. kubectl netdiag capture pod/web-0", "", false},
		{[]string{"a", "b"}, "", "", "pod/a", true},
		{[]string{"deploy/web"}, "", "", "deployment/web", true},
		{nil, "app=web", "", "-l app=web", true},
		{[]string{"pod/a"}, "app=web", "-l selects the pods to capture: give no other target with it (got pod/a)", "", false},
		{[]string{"svc/web"}, "", `"svc/web" is a service, which capture cannot resolve to pods: name its pods with -l SELECTOR, or use pod/NAME, deploy/NAME, sts/NAME, ds/NAME, -l SELECTOR or node/NAME`, "", false},
		{[]string{"widget/x"}, "", `unknown target type "widget" in "widget/x": capture takes pod/NAME, deploy/NAME, sts/NAME, ds/NAME, -l SELECTOR or node/NAME`, "", false},
		{[]string{"pod/"}, "", `missing pod name in "pod/"`, "", false},
		{[]string{"pod/web-0"}, "", "", "pod/web-0", false},
		{[]string{"web-0"}, "", "", "pod/web-0", false},
	}
	for _, tt := range tests {
		streams, _, _, _ := genericiooptions.NewTestIOStreams()
		o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
		o.Namespace = "shop"
		o.Client = fake.NewClientset()
		o.Executor = fakeExec{}
		o.Selector = tt.selector
		err := o.Complete(tt.args)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Complete(%q):\n got %q\nwant %q", tt.args, got, tt.want)
		}
		if err == nil && (o.Target.String() != tt.wantTarget || o.many() != tt.many) {
			t.Errorf("Complete(%q): target %v, many %v; want %s, %v", tt.args, o.Target, o.many(), tt.wantTarget, tt.many)
		}
	}
}

func TestCaptureCompleteNode(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
	o.Namespace, o.Client, o.Executor = "shop", fake.NewClientset(), fakeExec{}
	if err := o.Complete([]string{"node/n1"}); err != nil || o.Target.String() != "node/n1" {
		t.Fatalf("Complete(node/n1) = %v, target %v", err, o.Target)
	}
	o.Container = "app"
	want := "-c/--container names a container of a pod; a node capture takes --interface, e.g. --interface cbr0"
	if err := o.Complete([]string{"no/n1"}); err == nil || err.Error() != want {
		t.Errorf("node capture with -c: %v, want %s", err, want)
	}
}

type fakeExec struct{ kube.Executor }

func TestOutputFileMode(t *testing.T) {
	// A failed capture (pod missing) leaves no file behind and nothing
	// patched.
	dir := t.TempDir()
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
	o.Namespace, o.Client, o.Executor = "shop", fake.NewClientset(), fakeExec{}
	o.Output = filepath.Join(dir, "web.pcap")
	if err := o.Complete([]string{"pod/web-0"}); err != nil {
		t.Fatal(err)
	}
	err := o.run(t.Context())
	if err == nil || err.Error() != `pod "web-0" not found in namespace "shop"` {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(o.Output); !os.IsNotExist(err) {
		t.Errorf("output file exists after a failed capture: %v", err)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %q", errOut.String())
	}
}

func TestRootCommand(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs([]string{"version", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"helperImage": "localhost/netdiag-helper:dev"`) {
		t.Errorf("version -o json: %s", out)
	}
	for _, f := range []string{"namespace", "kubeconfig", "context", "as", "server", "v"} {
		if root.PersistentFlags().Lookup(f) == nil {
			t.Errorf("root has no --%s", f)
		}
	}
	capture, _, err := root.Find([]string{"capture"})
	if err != nil {
		t.Fatal(err)
	}
	if f := capture.Flags().ShorthandLookup("s"); f == nil || f.Name != "snaplen" {
		t.Errorf("-s is not --snaplen")
	}
	if f := capture.Flags().Lookup("heartbeat"); f == nil || !f.Hidden {
		t.Errorf("--heartbeat must exist and be hidden")
	}
	if root.PersistentFlags().Lookup("vmodule") == nil || !root.PersistentFlags().Lookup("vmodule").Hidden {
		t.Errorf("klog flags other than -v must be hidden")
	}
}

func TestWiresharkValidate(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	newOpts := func() *CaptureOptions {
		o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
		o.Wireshark = true
		o.IsTerminal = func(any) bool { return true } // a terminal stdout is fine: nothing goes there
		return o
	}
	t.Setenv("NETDIAG_WIRESHARK", "/nonexistent/wireshark")
	err := newOpts().Validate()
	want := `--wireshark: exec: "/nonexistent/wireshark": stat /nonexistent/wireshark: no such file or directory; install Wireshark, or pipe the capture into another viewer with -w - | VIEWER`
	if err == nil || err.Error() != want {
		t.Errorf("missing wireshark:\n got %v\nwant %s", err, want)
	}

	t.Setenv("NETDIAG_WIRESHARK", "true")
	o := newOpts()
	o.Output = "x.pcap"
	if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), "--wireshark and -w cannot be used together") {
		t.Errorf("--wireshark with -w: %v", err)
	}
	if err := newOpts().Validate(); err != nil {
		t.Errorf("--wireshark with a wireshark on PATH: %v", err)
	}
}

// TestStartWireshark streams into a stand-in viewer that saves its stdin.
func TestStartWireshark(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "seen.pcap")
	viewer := filepath.Join(dir, "wireshark")
	script := "#!/bin/sh\n[ \"$*\" = '-k -i -' ] || { echo \"args: $*\" >&2; exit 2; }\ncat > " + saved + ".tmp && mv " + saved + ".tmp " + saved + "\n"
	if err := os.WriteFile(viewer, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NETDIAG_WIRESHARK", viewer)
	w, err := startWireshark()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "pcap bytes"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(saved)
		if err == nil {
			if string(b) != "pcap bytes" {
				t.Fatalf("the viewer read %q", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the viewer never received the stream (wrong arguments?)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helperExec is a fake Executor playing a helper: it writes stdout and the
// stderr lines, then returns err.
type helperExec struct {
	stdout []byte
	stderr string
	err    error
}

func (h *helperExec) Stream(ctx context.Context, pod kube.Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	io.WriteString(stderr, `{"type":"hello","protocol":1,"helper":"v0.1.0"}`+"\n")
	if len(h.stdout) > 0 {
		io.WriteString(stderr, `{"type":"ready","interface":"eth0","linkType":"EN10MB","snaplen":262144,"format":"pcap"}`+"\n")
		stdout.Write(h.stdout)
	}
	io.WriteString(stderr, h.stderr)
	return h.err
}

// testPcap is a helper's pcap: the file header and one 68-byte packet.
var testPcap = append([]byte{
	0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0, // file header
	0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0, 68, 0, 0, 0, 68, 0, 0, 0, // record header
}, bytes.Repeat([]byte{7}, 68)...)

func helperStats(reason string) string {
	return `{"type":"stats","packets":1,"bytes":100,"kernelDrops":0,"reason":"` + reason + `","interface":"eth0"}` + "\n"
}

// fileCapture is a capture of pod shop/web-0 into -w out through ex, on a
// fake cluster where a running netdiag container is reused (nothing to wait
// for) and every access is allowed.
func fileCapture(t *testing.T, out string, ex kube.Executor) (*CaptureOptions, *bytes.Buffer) {
	t.Helper()
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kube.NewEphemeralContainer(kube.EphemeralSpec{Image: o.Image, TargetContainer: "app"}, "old00")}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag-old00", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	client := fake.NewClientset(pod, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		review.Status.Allowed = true
		return true, review, nil
	})
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		t.Errorf("unexpected patch: the running netdiag container should be reused")
		return true, nil, errors.New("no patch expected")
	})
	o.Namespace, o.Client, o.Executor = "shop", client, ex
	o.Output = out
	o.ReconnectTimeout = 0 // these tests are about one stream's end
	o.IsTerminal = func(any) bool { return false }
	if err := o.Complete([]string{"pod/web-0"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return o, errOut
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func wantFile(t *testing.T, path string, content []byte, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want a regular file with mode %v", path, fi.Mode(), mode)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, content) {
		t.Errorf("%s holds %q, want %q", path, b, content)
	}
}

// TestCaptureFailureKeepsTheOldFile: a capture that fails before its first
// byte leaves an existing -w file as it was, and no temporary file.
func TestCaptureFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.pcap")
	if err := os.WriteFile(old, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ex   *helperExec
		want string
	}{
		{&helperExec{stderr: `{"type":"error","message":"interface eth0 not found"}` + "\n", err: errors.New("command terminated with exit code 1")},
			"capture in pod/web-0 failed: interface eth0 not found"},
		{&helperExec{err: errors.New("connection reset")},
			"the capture stream from pod/web-0 broke before anything was captured (connection reset)"},
	} {
		o, errOut := fileCapture(t, old, tt.ex)
		err := o.run(t.Context())
		if err == nil || err.Error() != tt.want {
			t.Fatalf("run: %v, want %s", err, tt.want)
		}
		wantFile(t, old, []byte("precious\n"), 0o644)
		if got := dirEntries(t, dir); len(got) != 1 {
			t.Errorf("files left in the directory: %v, want only old.pcap", got)
		}
		if strings.Contains(errOut.String(), "captured") {
			t.Errorf("a summary after a failed capture: %q", errOut.String())
		}
	}
}

// TestCaptureReplacesTheFile: a capture replaces an existing file with a
// new one of mode 0600, and prints why it stopped.
func TestCaptureReplacesTheFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.pcap")
	if err := os.WriteFile(out, []byte("an older and much longer capture than the new one, ........................................................................................................"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, errOut := fileCapture(t, out, &helperExec{stdout: testPcap, stderr: helperStats("count")})
	if err := o.run(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantFile(t, out, testPcap, 0o600)
	if got := dirEntries(t, dir); len(got) != 1 {
		t.Errorf("files in the directory: %v, want only web.pcap", got)
	}
	if want := "captured 1 packets (100 B) on pod/web-0 eth0, 0 dropped by the kernel → " + out + "; stopped: --count reached\n"; !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("stderr %q, want it to end with %q", errOut.String(), want)
	}
}

// TestCaptureReplacesASymlink: -w naming a symbolic link replaces the link
// with the capture; the file it pointed to is never written.
func TestCaptureReplacesASymlink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "target.pcap")
	if err := os.WriteFile(target, []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{target, filepath.Join(outside, "dangling.pcap")} {
		link := filepath.Join(dir, "link.pcap")
		_ = os.Remove(link)
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
		o, _ := fileCapture(t, link, &helperExec{stdout: testPcap, stderr: helperStats("count")})
		if err := o.run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantFile(t, link, testPcap, 0o600) // Lstat: a regular file now
		wantFile(t, target, []byte("outside\n"), 0o644)
		if got := dirEntries(t, outside); len(got) != 1 {
			t.Errorf("files in the link's target directory: %v, want only target.pcap", got)
		}
	}
}

// TestCaptureKeepsDataOfABrokenStream: what arrived before the stream broke
// is moved into place and the error says so; a capture cut short (no
// heartbeat) prints its summary, keeps the file and exits 1.
func TestCaptureKeepsDataOfABrokenStream(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.pcap")
	o, _ := fileCapture(t, out, &helperExec{stdout: testPcap, err: errors.New("connection reset")})
	err := o.run(t.Context())
	want := "the capture stream from pod/web-0 broke before the helper reported its stats (connection reset); " + out + " may be incomplete; the 108 B received before that are saved in " + out
	if err == nil || err.Error() != want {
		t.Fatalf("run:\n got %v\nwant %s", err, want)
	}
	wantFile(t, out, testPcap, 0o600)

	for _, reason := range []string{"heartbeat", "stdout-closed"} {
		_ = os.Remove(out)
		o, errOut := fileCapture(t, out, &helperExec{stdout: testPcap, stderr: helperStats(reason)})
		err := o.run(t.Context())
		if err == nil || !strings.HasPrefix(err.Error(), "the capture on pod/web-0 was cut short: ") || ExitCode(err) != 1 {
			t.Fatalf("%s: run: %v (exit code %d), want a cut-short error, exit code 1", reason, err, ExitCode(err))
		}
		if !strings.Contains(errOut.String(), "captured 1 packets (100 B) on pod/web-0 eth0, 0 dropped by the kernel → "+out+"; stopped: the helper") {
			t.Errorf("%s: no summary with the reason: %q", reason, errOut.String())
		}
		wantFile(t, out, testPcap, 0o600)
		if got := dirEntries(t, dir); len(got) != 1 {
			t.Errorf("%s: files in the directory: %v, want only web.pcap", reason, got)
		}
	}
}

func TestOutputPathChecks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/fd/9", filepath.Join(dir, "fdlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fdlink", filepath.Join(dir, "fdlink2")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"dirlink": "-w " + filepath.Join(dir, "dirlink") + ": is a link to a directory; name a file in it",
		"fdlink2": "-w " + filepath.Join(dir, "fdlink2") + " is a link to an open file of this process (/proc/self/fd/9): write to stdout with -w -, or name a file",
	} {
		if _, err := classifyOutput(filepath.Join(dir, name)); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
	if stream, err := classifyOutput(os.DevNull); err != nil || !stream {
		t.Errorf("%s: stream %v, %v; want written as a stream", os.DevNull, stream, err)
	}
}

// ngExec plays a helper per pod that writes a pcapng with one packet whose
// data are the pod's name, then its stats.
type ngExec struct {
	mu    sync.Mutex
	execs []string
}

func (e *ngExec) Stream(ctx context.Context, pod kube.Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e.mu.Lock()
	e.execs = append(e.execs, pod.Name)
	e.mu.Unlock()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 262144, TimestampResolution: 9},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "netdiag-helper"}})
	if err != nil {
		return err
	}
	data := append([]byte(pod.Name), make([]byte, 60-len(pod.Name))...)
	_ = w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, 0), CaptureLength: 60, Length: 60}, data)
	_ = w.Flush()
	io.WriteString(stderr, `{"type":"hello","protocol":1,"helper":"v0.1.0"}`+"\n")
	io.WriteString(stderr, `{"type":"ready","interface":"eth0","linkType":"EN10MB","snaplen":262144,"format":"pcapng"}`+"\n")
	stdout.Write(b.Bytes())
	io.WriteString(stderr, `{"type":"stats","packets":1,"bytes":60,"kernelDrops":0,"reason":"duration","interface":"eth0"}`+"\n")
	return nil
}

// manyCapture is a capture of args in namespace shop, where deployment web
// selects the Running pods web-0 and web-1 (each with a running netdiag
// container to reuse) and the Pending web-2.
func manyCapture(t *testing.T, out string, ex kube.Executor, args ...string) (*CaptureOptions, *bytes.Buffer, *fake.Clientset) {
	t.Helper()
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
	labels := map[string]string{"app": "web"}
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}}},
	}
	for i, phase := range []corev1.PodPhase{corev1.PodRunning, corev1.PodRunning, corev1.PodPending} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Namespace: "shop", Labels: labels},
			Spec:       corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i), Containers: []corev1.Container{{Name: "app"}}},
			Status:     corev1.PodStatus{Phase: phase},
		}
		pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kube.NewEphemeralContainer(kube.EphemeralSpec{Image: o.Image, TargetContainer: "app"}, "old00")}
		pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "netdiag-old00", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		objs = append(objs, pod)
	}
	client := fake.NewClientset(objs...)
	client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		review.Status.Allowed = true
		return true, review, nil
	})
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		t.Errorf("unexpected patch: the running netdiag container should be reused")
		return true, nil, errors.New("no patch expected")
	})
	o.Namespace, o.Client, o.Executor = "shop", client, ex
	o.Output = out
	o.IsTerminal = func(any) bool { return false }
	if err := o.Complete(args); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return o, errOut, client
}

// mergedInterfaces reads a pcapng: its interface names and descriptions,
// and the pod name each packet carries, as IFACE=POD.
func mergedInterfaces(t *testing.T, path string) (ifaces []string, packets []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapstream.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := rd.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, rd.Interfaces()[p.InterfaceID].Name+"="+string(bytes.TrimRight(p.Data, "\x00")))
	}
	for _, i := range rd.Interfaces() {
		d := ""
		for _, o := range i.Options {
			if o.Code == 3 {
				d = string(o.Value)
			}
		}
		ifaces = append(ifaces, i.Name+": "+d)
	}
	sort.Strings(ifaces)
	sort.Strings(packets)
	return ifaces, packets
}

func TestCaptureDeploymentIntoOnePcapng(t *testing.T) {
	file := filepath.Join(t.TempDir(), "web.pcapng")
	ex := &ngExec{}
	o, errOut, _ := manyCapture(t, file, ex, "deploy/web")
	if err := o.run(t.Context()); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut)
	}
	ifaces, packets := mergedInterfaces(t, file)
	if want := []string{"shop/web-0: eth0 of shop/web-0 on node node-0", "shop/web-1: eth0 of shop/web-1 on node node-1"}; fmt.Sprint(ifaces) != fmt.Sprint(want) {
		t.Errorf("interfaces %q, want %q", ifaces, want)
	}
	if want := []string{"shop/web-0=web-0", "shop/web-1=web-1"}; fmt.Sprint(packets) != fmt.Sprint(want) {
		t.Errorf("packets %q, want %q", packets, want)
	}
	for _, line := range []string{
		"not a target: pod/web-2 of deployment/web is Pending, not Running\n",
		"  pod/web-0 (node node-0) eth0: 1 packets (60 B), 0 dropped by the kernel; stopped: --duration reached\n",
		"  pod/web-1 (node node-1) eth0: 1 packets (60 B), 0 dropped by the kernel; stopped: --duration reached\n" +
			"captured 2 packets (120 B) from 2 of 2 pods, 0 dropped by the kernel → " + file + "\n",
	} {
		if !strings.Contains(errOut.String(), line) {
			t.Errorf("stderr lacks %q:\n%s", line, errOut)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("output file: %v %v", fi, err)
	}
}

// A pod that cannot be captured is reported, the others are captured into
// the file, and the exit code is 1; --strict starts nothing.
func TestCaptureManyPartialAndStrict(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.pcapng")
	ex := &ngExec{}
	o, errOut, _ := manyCapture(t, file, ex, "pod/web-0", "pod/web-2", "pod/web-1")
	err := o.run(t.Context())
	var missed *remotecapture.MissedError
	if !errors.As(err, &missed) || ExitCode(err) != 1 {
		t.Fatalf("run: %v (exit %d), want a MissedError, exit 1", err, ExitCode(err))
	}
	if want := "1 of 3 pods was not captured to the end (see above); " + file + " holds the others"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !strings.Contains(errOut.String(), `  pod/web-2: not captured: pod "web-2" in namespace "shop" is Pending, not Running: only a running pod can be captured`) ||
		!strings.Contains(errOut.String(), "captured 2 packets (120 B) from 2 of 3 pods") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if _, packets := mergedInterfaces(t, file); len(packets) != 2 {
		t.Errorf("file holds %q, want the packets of web-0 and web-1", packets)
	}

	strictFile := filepath.Join(dir, "strict.pcapng")
	ex = &ngExec{}
	o, _, client := manyCapture(t, strictFile, ex, "pod/web-0", "pod/web-2", "pod/web-1")
	o.Strict = true
	client.ClearActions()
	err = o.run(t.Context())
	want := `--strict: 1 of 3 pods cannot be captured, nothing was started: pod "web-2" in namespace "shop" is Pending, not Running: only a running pod can be captured`
	if err == nil || err.Error() != want || ExitCode(err) != 1 {
		t.Fatalf("--strict: %v, want %s", err, want)
	}
	if len(ex.execs) != 0 {
		t.Errorf("--strict ran helpers in %v", ex.execs)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("--strict refusal did %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	if names := dirEntries(t, dir); fmt.Sprint(names) != "[web.pcapng]" {
		t.Errorf("--strict refusal left files: %v", names)
	}
}

// More than --max-pods pods: refused without --yes when stdin is not a
// terminal, asked on a terminal.
func TestCaptureMaxPods(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.pcapng")

	ex := &ngExec{}
	o, _, _ := manyCapture(t, file, ex, "deploy/web")
	o.MaxPods = 1
	err := o.run(t.Context())
	if want := "2 pods selected, more than --max-pods 1: pass --yes to capture them all (or narrow the selection, or raise --max-pods)"; err == nil || err.Error() != want {
		t.Fatalf("run: %v, want %s", err, want)
	}
	if len(ex.execs) != 0 || len(dirEntries(t, dir)) != 0 {
		t.Errorf("refused capture ran %v, left %v", ex.execs, dirEntries(t, dir))
	}

	for _, tc := range []struct {
		answer string
		err    string
	}{{"n\n", "not confirmed: nothing was started"}, {"y\n", ""}} {
		ex := &ngExec{}
		o, errOut, _ := manyCapture(t, file, ex, "deploy/web")
		o.MaxPods = 1
		o.IsTerminal = func(s any) bool { return s == o.In }
		o.In = strings.NewReader(tc.answer)
		err := o.run(t.Context())
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("answer %q: %q, want %q", tc.answer, got, tc.err)
		}
		if !strings.Contains(errOut.String(), "capture 2 pods (more than --max-pods 1)? [y/N] ") {
			t.Errorf("answer %q: no question on stderr:\n%s", tc.answer, errOut)
		}
		if wantExecs := map[bool]int{true: 0, false: 2}[tc.err != ""]; len(ex.execs) != wantExecs {
			t.Errorf("answer %q: %d helpers ran, want %d", tc.answer, len(ex.execs), wantExecs)
		}
	}

	ex = &ngExec{}
	o, _, _ = manyCapture(t, file, ex, "deploy/web")
	o.MaxPods, o.Yes = 1, true
	if err := o.run(t.Context()); err != nil || len(ex.execs) != 2 {
		t.Errorf("--yes: %v, %d helpers ran", err, len(ex.execs))
	}
}

func TestCaptureManyValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(o *CaptureOptions)
		want   string
	}{
		{"default format", func(o *CaptureOptions) {}, ""},
		{"pcapng", func(o *CaptureOptions) { o.Format, o.formatSet = "pcapng", true }, ""},
		{"pcap", func(o *CaptureOptions) { o.Format, o.formatSet = "pcap", true },
			"several pods are captured into one pcapng, an interface per pod; --format pcap cannot hold them: pass --format pcapng, or leave --format out"},
		{"on-node", func(o *CaptureOptions) { o.OnNode, o.Interface = true, "eth0" },
			"--on-node captures one pod: name a single pod/NAME, or drop --on-node to capture several pods"},
		{"concurrency", func(o *CaptureOptions) { o.MaxConcurrency = 0 }, "--max-concurrency must be at least 1, got 0"},
		{"max pods", func(o *CaptureOptions) { o.MaxPods = 0 }, "--max-pods must be at least 1, got 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
			o.Namespace, o.Client, o.Executor = "shop", fake.NewClientset(), fakeExec{}
			o.Output = filepath.Join(t.TempDir(), "web.pcapng")
			o.IsTerminal = func(any) bool { return false }
			if err := o.Complete([]string{"deploy/web"}); err != nil {
				t.Fatal(err)
			}
			tc.mutate(o)
			got := ""
			if err := o.Validate(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
