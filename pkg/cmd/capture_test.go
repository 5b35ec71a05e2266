package cmd

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/kube"
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
			o.IsTerminal = func(io.Writer) bool { return tt.terminal }
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
		args []string
		want string
	}{
		{nil, "capture needs exactly one pod, e.g. kubectl netdiag capture pod/web-0 (got 0 arguments)"},
		{[]string{"a", "b"}, "capture needs exactly one pod, e.g. kubectl netdiag capture pod/web-0 (got 2 arguments)"},
		{[]string{"deploy/web"}, `"deploy/web" is a deployment, not a pod: this command works on one pod for now, e.g. pod/NAME`},
		{[]string{"svc/web"}, `"svc/web" is a service, not a pod: this command works on one pod for now, e.g. pod/NAME`},
		{[]string{"widget/x"}, `unknown target type "widget" in "widget/x": name a pod, e.g. pod/web-0`},
		{[]string{"pod/"}, `missing pod name in "pod/"`},
		{[]string{"pod/web-0"}, ""},
		{[]string{"web-0"}, ""},
	}
	for _, tt := range tests {
		streams, _, _, _ := genericiooptions.NewTestIOStreams()
		o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
		o.Namespace = "shop"
		o.Client = fake.NewClientset()
		o.Executor = fakeExec{}
		err := o.Complete(tt.args)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Complete(%q):\n got %q\nwant %q", tt.args, got, tt.want)
		}
		if err == nil && o.Target.Name != "web-0" {
			t.Errorf("Complete(%q): target %v", tt.args, o.Target)
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
		o.IsTerminal = func(io.Writer) bool { return true } // a terminal stdout is fine: nothing goes there
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
