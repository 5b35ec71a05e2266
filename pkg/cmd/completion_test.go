package cmd

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// testKubeconfig: current context dev (namespace shop), servers that do not
// answer (port 1), so only an injected client ever reaches a "cluster".
const testKubeconfig = `apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster: {server: "https://127.0.0.1:1"}
- name: prod-cluster
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: alice
  user: {token: a}
- name: bob
  user: {token: b}
contexts:
- name: dev
  context: {cluster: dev-cluster, user: alice, namespace: shop}
- name: prod
  context: {cluster: prod-cluster, user: bob}
`

func useTestKubeconfig(t *testing.T) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	t.Setenv("HOME", t.TempDir())
}

func completionObjects() []runtime.Object {
	pod := func(ns, name string, mod func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{
				{Name: "app"}, {Name: "sidecar"},
			}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if mod != nil {
			mod(p)
		}
		return p
	}
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	ns := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	return []runtime.Object{
		pod("shop", "web-0", nil),
		pod("shop", "web-1", nil),
		pod("shop", "db-0", nil),
		pod("shop", "node-exporter", func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
		pod("shop", "done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		pod("other", "api-0", nil),
		node("node-a"), node("node-b"),
		ns("shop"), ns("other"), ns("kube-system"),
	}
}

// complete runs `kubectl-netdiag __complete ARGS...` against client and
// returns the choices (descriptions cut off) and the directive.
func complete(t *testing.T, newClient clientFactory, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := newCmdRoot(streams, newClient)
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("__complete %q: last line %q is not :DIRECTIVE; stdout:\n%s", args, last, out)
	}
	d, err := strconv.Atoi(last[1:])
	if err != nil {
		t.Fatalf("__complete %q: directive %q: %v", args, last, err)
	}
	var choices []string
	for _, l := range lines[:len(lines)-1] {
		choices = append(choices, strings.SplitN(l, "\t", 2)[0])
	}
	return choices, cobra.ShellCompDirective(d)
}

func fakeClient(objs ...runtime.Object) clientFactory {
	client := fake.NewClientset(objs...)
	return func(*genericclioptions.ConfigFlags) (kubernetes.Interface, error) { return client, nil }
}

const (
	noFile        = cobra.ShellCompDirectiveNoFileComp
	noFileNoSpace = cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
)

func TestCompletion(t *testing.T) {
	useTestKubeconfig(t)
	client := fakeClient(completionObjects()...)
	for _, tc := range []struct {
		args      []string
		want      []string
		directive cobra.ShellCompDirective
	}{
		// capture: the kinds first, then pods of the namespace or nodes.
		{[]string{"capture", ""}, []string{"pod/", "node/"}, noFileNoSpace},
		{[]string{"capture", "pod/"}, []string{"pod/db-0", "pod/node-exporter", "pod/web-0", "pod/web-1"}, noFile},
		{[]string{"capture", "pod/we"}, []string{"pod/web-0", "pod/web-1"}, noFile},
		{[]string{"capture", "po/d"}, []string{"po/db-0"}, noFile},
		{[]string{"capture", "node/"}, []string{"node/node-a", "node/node-b"}, noFile},
		{[]string{"capture", "nodes/node-b"}, []string{"nodes/node-b"}, noFile},
		{[]string{"capture", "w"}, []string{"web-0", "web-1"}, noFile},
		{[]string{"capture", "no"}, []string{"node/", "node-exporter"}, noFileNoSpace},
		{[]string{"capture", "p"}, []string{"pod/"}, noFileNoSpace},
		{[]string{"capture", "deploy/"}, nil, noFile},
		{[]string{"capture", "pod/web-0", ""}, nil, noFile},
		// -n / --namespace, before or after the command.
		{[]string{"capture", "-n", "other", "pod/"}, []string{"pod/api-0"}, noFile},
		{[]string{"--namespace=other", "capture", "pod/"}, []string{"pod/api-0"}, noFile},
		{[]string{"--context", "prod", "capture", "pod/"}, nil, noFile}, // namespace default: empty
		// pod commands: pod/NAME, not hostNetwork pods.
		{[]string{"pod", "check", ""}, []string{"pod/db-0", "pod/web-0", "pod/web-1"}, noFile},
		{[]string{"veth", "web"}, []string{"web-0", "web-1"}, noFile},
		{[]string{"stale", "pods/d"}, []string{"pods/db-0"}, noFile},
		{[]string{"stale", "node/"}, nil, noFile},
		{[]string{"stale", "pod/web-0", ""}, nil, noFile},
		// node commands.
		{[]string{"node", "check", ""}, []string{"node-a", "node-b"}, noFile},
		{[]string{"node", "check", "node-a", ""}, []string{"node-b"}, noFile},
		{[]string{"node", "check", "no/"}, []string{"no/node-a", "no/node-b"}, noFile},
		{[]string{"node", "check", "--all", ""}, nil, noFile},
		{[]string{"node", "check", "-l", "a=b", ""}, nil, noFile},
		{[]string{"conntrack", ""}, []string{"node/node-a", "node/node-b"}, noFile},
		{[]string{"conntrack", "node-b"}, []string{"node-b"}, noFile},
		{[]string{"conntrack", "node/node-a", ""}, nil, noFile},
		// flags.
		{[]string{"capture", "-n", ""}, []string{"kube-system", "other", "shop"}, noFile},
		{[]string{"node", "check", "--namespace", "o"}, []string{"other"}, noFile},
		{[]string{"--context", ""}, []string{"dev", "prod"}, noFile},
		{[]string{"capture", "--cluster", "p"}, []string{"prod-cluster"}, noFile},
		{[]string{"veth", "--user", ""}, []string{"alice", "bob"}, noFile},
		{[]string{"node", "check", "-o", ""}, []string{"table", "json", "yaml"}, noFile},
		{[]string{"veth", "-o", "j"}, []string{"json"}, noFile},
		{[]string{"version", "-o", ""}, []string{"json", "yaml"}, noFile},
		{[]string{"stale", "--image-pull-policy", ""}, []string{"Always", "IfNotPresent", "Never"}, noFile},
		{[]string{"capture", "--image-pull-policy", "N"}, []string{"Never"}, noFile},
		{[]string{"capture", "--format", ""}, []string{"pcap", "pcapng"}, noFile},
		{[]string{"node", "check", "--checks", ""}, protocol.CheckNames(), noFileNoSpace},
		{[]string{"pod", "check", "--checks", "bridge,v"}, []string{"bridge,veth"}, noFileNoSpace},
		{[]string{"pod", "check", "--checks=veth,"}, []string{"veth,bridge", "veth,arp", "veth,mtu", "veth,conntrack", "veth,stale", "veth,dns"}, noFileNoSpace},
		{[]string{"capture", "pod/web-0", "-c", ""}, []string{"app", "sidecar"}, noFile},
		{[]string{"capture", "web-0", "-c", "s"}, []string{"sidecar"}, noFile},
		{[]string{"capture", "--count", ""}, nil, noFile},
		{[]string{"capture", "-w", ""}, nil, cobra.ShellCompDirectiveDefault}, // files
		// the completion command.
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish", "powershell"}, noFile},
		{[]string{"completion", "f"}, []string{"fish"}, noFile},
		{[]string{"cleanup", ""}, nil, noFile},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, directive := complete(t, client, tc.args...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("choices (-want +got):\n%s", diff)
			}
			if directive != tc.directive {
				t.Errorf("directive = %d, want %d", directive, tc.directive)
			}
		})
	}
}

// The commands: cobra's default completion command is replaced, not added
// next to ours, and __complete is there.
func TestCompletionCommands(t *testing.T) {
	useTestKubeconfig(t)
	got, directive := complete(t, fakeClient(), "")
	want := []string{"capture", "cleanup", "completion", "conntrack", "dns", "help", "node", "pod", "stale", "version", "veth"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if directive != noFile {
		t.Errorf("directive = %d, want %d", directive, noFile)
	}

	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs([]string{"completion", "bash"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			n++
			if !strings.Contains(c.Short, "shell completion script") {
				t.Errorf("completion is cobra's: %q", c.Short)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d completion commands, want 1", n)
	}
}

// Errors reaching the cluster give no choices and nothing else on stdout.
func TestCompletionClusterErrors(t *testing.T) {
	useTestKubeconfig(t)
	failing := func(*genericclioptions.ConfigFlags) (kubernetes.Interface, error) {
		return nil, errors.New("no cluster")
	}
	denied := fake.NewClientset()
	denied.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	deniedClient := func(*genericclioptions.ConfigFlags) (kubernetes.Interface, error) { return denied, nil }
	for name, newClient := range map[string]clientFactory{
		"client fails": failing,
		"list fails":   deniedClient,
		// The real client against the kubeconfig's server on port 1.
		"no server": completionClient,
	} {
		for _, args := range [][]string{
			{"capture", "pod/"}, {"capture", "node/"}, {"capture", "w"}, {"veth", ""},
			{"node", "check", ""}, {"conntrack", ""}, {"capture", "-n", ""},
		} {
			got, directive := complete(t, newClient, args...)
			if len(got) != 0 || directive != noFile {
				t.Errorf("%s: __complete %q = %q %d, want nothing, %d", name, args, got, directive, noFile)
			}
		}
	}
	// Without a kubeconfig at all.
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	got, directive := complete(t, completionClient, "capture", "pod/")
	if len(got) != 0 || directive != noFile {
		t.Errorf("no kubeconfig: %q %d", got, directive)
	}
	got, _ = complete(t, completionClient, "--context", "")
	if len(got) != 0 {
		t.Errorf("no kubeconfig: contexts %q", got)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, marks := range map[string][]string{
		"bash":       {"# bash completion V2 for kubectl-netdiag", "__start_kubectl-netdiag", "complete -o default -F __start_kubectl-netdiag kubectl-netdiag"},
		"zsh":        {"#compdef kubectl-netdiag", "compdef _kubectl-netdiag kubectl-netdiag"},
		"fish":       {"# fish completion for kubectl-netdiag", "complete -c kubectl-netdiag"},
		"powershell": {"Register-ArgumentCompleter", "kubectl-netdiag"},
	} {
		t.Run(shell, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			root := NewCmdRoot(streams)
			root.SetArgs([]string{"completion", shell})
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			for _, m := range marks {
				if !strings.Contains(out.String(), m) {
					t.Errorf("%s script lacks %q", shell, m)
				}
			}
			if !strings.Contains(out.String(), "__complete") {
				t.Errorf("%s script does not call __complete", shell)
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr: %q", errOut)
			}
		})
	}
	// --no-descriptions asks for __completeNoDesc.
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs([]string{"completion", "zsh", "--no-descriptions"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "__completeNoDesc") {
		t.Errorf("zsh --no-descriptions does not use __completeNoDesc")
	}
}

func TestCompletionBadShell(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "completion needs a shell: one of bash, zsh, fish, powershell, e.g. kubectl netdiag completion bash"},
		{[]string{"tcsh"}, `unknown shell "tcsh": completion supports bash, zsh, fish, powershell`},
		{[]string{"bash", "zsh"}, "completion takes one shell (one of bash, zsh, fish, powershell), got 2 arguments"},
	} {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		root := NewCmdRoot(streams)
		root.SetArgs(append([]string{"completion"}, tc.args...))
		err := root.Execute()
		if err == nil || err.Error() != tc.err {
			t.Errorf("completion %q: error %v, want %q", tc.args, err, tc.err)
		}
		if out.Len() != 0 {
			t.Errorf("completion %q: stdout %q", tc.args, out)
		}
	}
}

// The script kubectl runs to complete `kubectl netdiag ...`.
func TestKubectlCompleteScript(t *testing.T) {
	path := filepath.Join("..", "..", "plugins", "krew", "kubectl_complete-netdiag")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 != 0o111 {
		t.Errorf("%s mode %v, want executable", path, fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "#!/bin/sh\n") || !strings.Contains(s, `kubectl-netdiag" __complete "$@"`) || !strings.Contains(s, `exec kubectl-netdiag __complete "$@"`) {
		t.Errorf("%s does not run kubectl-netdiag __complete \"$@\":\n%s", path, s)
	}
}
