package cmd

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
)

// stderrOf runs f with the process's stderr captured (klog writes there).
func stderrOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	f()
	klog.Flush()
	os.Stderr = saved
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// A library's error line (client-go's "Websocket Ping failed") reaches the
// terminal only with -v=2 and up.
func TestLibraryLogLinesOnlyWithV(t *testing.T) {
	t.Cleanup(func() {
		fs := flag.NewFlagSet("restore", flag.ContinueOnError)
		klog.InitFlags(fs)
		_ = fs.Set("logtostderr", "true")
		_ = fs.Set("stderrthreshold", "ERROR")
		_ = fs.Set("v", "0")
		klog.SetOutput(os.Stderr)
	})
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"completion", "bash"}, false},
		{[]string{"completion", "bash", "-v=2"}, true},
	} {
		got := stderrOf(t, func() {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			root := NewCmdRoot(streams)
			root.SetArgs(tt.args)
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			klog.Errorf("Websocket Ping failed: use of closed network connection")
		})
		if strings.Contains(got, "Websocket Ping failed") != tt.want {
			t.Errorf("%q: stderr %q, want the library line: %v", tt.args, got, tt.want)
		}
	}
}
