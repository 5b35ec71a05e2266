//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubectlPluginCompletion completes `kubectl netdiag ...` the way a
// shell does with kubectl 1.26+: kubectl __complete finds the plugin and
// kubectl_complete-netdiag on PATH and runs the script with the words after
// "netdiag", which runs kubectl-netdiag __complete.
func TestKubectlPluginCompletion(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t)
	c.webPod(t, ns, "complete-me")

	// Only the two files on PATH ahead of the rest: the plugin as krew
	// installs it and the completion script next to it.
	bin := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	copyExecutable(t, filepath.Join(c.binDir, "kubectl-netdiag"), filepath.Join(bin, "kubectl-netdiag"))
	copyExecutable(t, filepath.Join(root, "plugins", "krew", "kubectl_complete-netdiag"), filepath.Join(bin, "kubectl_complete-netdiag"))

	complete := func(args ...string) (choices []string, directive string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"__complete"}, args...)...)
		cmd.Env = append(os.Environ(),
			"KUBECONFIG="+c.kubeconfig,
			"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl __complete %q: %v\nstderr: %s", args, err, errb.String())
		}
		t.Logf("kubectl __complete %q →\n%s", args, out.String())
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, l := range lines {
			if strings.HasPrefix(l, ":") {
				directive = l
				continue
			}
			choices = append(choices, strings.SplitN(l, "\t", 2)[0])
		}
		return choices, directive
	}
	has := func(choices []string, want string) bool {
		for _, c := range choices {
			if c == want {
				return true
			}
		}
		return false
	}

	// The plugin's commands, through kubectl.
	if got, _ := complete("netdiag", ""); !has(got, "capture") || !has(got, "completion") {
		t.Errorf("kubectl __complete netdiag '': %q lacks capture and completion", got)
	}
	// The kinds, with no space after them (cobra's NoSpace, 2, with
	// NoFileComp, 4).
	got, directive := complete("netdiag", "capture", "")
	if !has(got, "pod/") || !has(got, "node/") || directive != ":6" {
		t.Errorf("kubectl __complete netdiag capture '': %q %s, want pod/ and node/, :6", got, directive)
	}
	// The pods of the namespace given to the plugin, before or after the
	// command.
	for _, args := range [][]string{
		{"netdiag", "capture", "-n", ns, "pod/"},
		{"netdiag", "-n", ns, "capture", "pod/comp"},
	} {
		if got, _ := complete(args...); !has(got, "pod/complete-me") {
			t.Errorf("kubectl __complete %q: %q lacks pod/complete-me", args, got)
		}
	}
	if got, _ := complete("netdiag", "veth", "--namespace", ns, ""); !has(got, "pod/complete-me") {
		t.Errorf("kubectl __complete netdiag veth: %q lacks pod/complete-me", got)
	}
	// The nodes.
	if got, _ := complete("netdiag", "capture", "node/"); !has(got, "node/"+c.node) {
		t.Errorf("kubectl __complete netdiag capture node/: %q lacks node/%s", got, c.node)
	}
	if got, _ := complete("netdiag", "node", "check", ""); !has(got, c.node) {
		t.Errorf("kubectl __complete netdiag node check: %q lacks %s", got, c.node)
	}
	// Namespaces for -n.
	if got, _ := complete("netdiag", "capture", "-n", ""); !has(got, ns) {
		t.Errorf("kubectl __complete netdiag capture -n: %q lacks %s", got, ns)
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
