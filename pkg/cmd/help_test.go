package cmd

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/help")

// TestHelpGolden keeps every command's --help (usage, examples, flags) as
// users see it; `go test ./pkg/cmd -run HelpGolden -update` rewrites the
// files after an intended change, and the diff shows it in review.
func TestHelpGolden(t *testing.T) {
	// kubectl's --cache-dir default comes from these.
	t.Setenv("HOME", "/home/user")
	t.Setenv("KUBECACHEDIR", "")
	for _, path := range [][]string{
		{}, {"capture"}, {"version"}, {"node", "check"}, {"pod", "check"}, {"veth"}, {"conntrack"}, {"stale"}, {"cleanup"}, {"completion"}, {"dns"},
	} {
		name := strings.Join(append([]string{"netdiag"}, path...), "-")
		t.Run(name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			root := NewCmdRoot(streams)
			root.SetArgs(append(path, "--help"))
			if err := root.Execute(); err != nil {
				t.Fatalf("--help: %v (stderr %q)", err, errOut.String())
			}
			got := out.String()
			golden := filepath.Join("testdata", "help", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s --help changed (-want +got); run with -update if intended:\n%s", strings.Join(path, " "), diff)
			}
		})
	}
}
