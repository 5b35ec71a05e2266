//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// release is what `make e2e-release` built for this test: a release of the
// working tree whose helper image repository is the local cluster's
// registry, and the krew tools built from krew's own module.
type release struct {
	dir      string // _output/e2e-release
	krewBin  string // holds krew and validate-krew-manifest
	version  string
	digest   string // of the helper image index
	manifest string // netdiag.yaml
}

func getRelease(t *testing.T) release {
	t.Helper()
	r := release{dir: os.Getenv("NETDIAG_RELEASE_DIR"), krewBin: os.Getenv("NETDIAG_KREW_BIN")}
	if r.dir == "" || r.krewBin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("NETDIAG_RELEASE_DIR or NETDIAG_KREW_BIN is not set: run the e2e tests with make e2e")
		}
		t.Skip("no release to test: run with make e2e (it builds one with make e2e-release)")
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "helper-image.digest"))
	if err != nil {
		t.Fatal(err)
	}
	r.digest = strings.TrimSpace(string(b))
	r.manifest = filepath.Join(r.dir, "netdiag.yaml")
	m, err := os.ReadFile(r.manifest)
	if err != nil {
		t.Fatal(err)
	}
	var plugin struct {
		Spec struct {
			Version string `json:"version"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(m, &plugin); err != nil {
		t.Fatalf("%s: %v", r.manifest, err)
	}
	r.version = plugin.Spec.Version
	return r
}

// krewEnv is a user's environment with krew installed in a fresh KREW_ROOT:
// kubectl finds `kubectl krew` and the installed plugins on PATH, and
// nothing of the working tree.
func (c *cluster) krewEnv(t *testing.T, rel release) (root string, env []string) {
	t.Helper()
	root = t.TempDir()
	bin := t.TempDir()
	if err := os.Symlink(filepath.Join(rel.krewBin, "krew"), filepath.Join(bin, "kubectl-krew")); err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if abs, err := filepath.Abs(d); err == nil && abs != c.binDir {
			path = append(path, d)
		}
	}
	env = append(os.Environ(),
		"KUBECONFIG="+c.kubeconfig,
		"KREW_ROOT="+root,
		"PATH="+strings.Join(append([]string{filepath.Join(root, "bin"), bin, filepath.Dir(c.kubectl)}, path...), string(os.PathListSeparator)),
		"NO_COLOR=1",
		"KUBECTL_NETDIAG_IMAGE=",
	)
	return root, env
}

func runEnv(t *testing.T, env []string, timeout time.Duration, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	t.Logf("%s %s → %v\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errb.String())
	return out.String(), errb.String(), err
}

// TestReleaseManifestValidates runs krew's own validator on the release's
// manifest, including its install of every platform: the archives are
// served from a loopback web server standing in for the release page.
func TestReleaseManifestValidates(t *testing.T) {
	c := getCluster(t)
	rel := getRelease(t)
	_, env := c.krewEnv(t, rel)

	m, err := os.ReadFile(rel.manifest)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(rel.dir)))
	defer srv.Close()
	uri := regexp.MustCompile(`uri: \S+/(kubectl-netdiag_[^/\s]+\.tar\.gz)`)
	if n := len(uri.FindAll(m, -1)); n != 6 {
		t.Fatalf("manifest has %d archive URIs, want 6 (linux, darwin, windows × amd64, arm64)", n)
	}
	local := uri.ReplaceAll(m, []byte("uri: "+srv.URL+"/$1"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "netdiag.yaml"), local, 0o644); err != nil {
		t.Fatal(err)
	}
	// The validator runs `kubectl krew install` with an environment of its
	// own (KREW_ROOT, KREW_OS, KREW_ARCH and PATH only).
	_, stderr, err := runEnv(t, env, 5*time.Minute, filepath.Join(rel.krewBin, "validate-krew-manifest"), "-manifest", filepath.Join(dir, "netdiag.yaml"))
	if err != nil {
		t.Fatalf("validate-krew-manifest: %v", err)
	}
	if !strings.Contains(stderr, "all 6 spec.platforms installed fine") {
		t.Errorf("the validator did not install all six platforms")
	}
	var plugin struct {
		Spec struct {
			ShortDescription string `json:"shortDescription"`
			Caveats          string `json:"caveats"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(m, &plugin); err != nil {
		t.Fatal(err)
	}
	if n := len(plugin.Spec.ShortDescription); n >= 50 {
		t.Errorf("shortDescription is %d characters, want under 50", n)
	}
	for _, want := range []string{"pods/exec", "pods/ephemeralcontainers", "PRIVILEGED", "@" + rel.digest} {
		if !strings.Contains(plugin.Spec.Caveats, want) {
			t.Errorf("caveats do not mention %q", want)
		}
	}
}

// TestReleaseKrewInstallCapture is a user's first day: the release image is
// pushed to a registry, the plugin installed with krew from the release's
// manifest and archive, found by kubectl's plugin discovery, and a capture
// without --image makes the kubelet pull the helper by digest.
func TestReleaseKrewInstallCapture(t *testing.T) {
	c := getCluster(t)
	requireRoot(t)
	rel := getRelease(t)
	if c.registry == "" {
		t.Fatal("the cluster's env file names no REGISTRY; restart it with make cluster-down cluster-up")
	}
	repo := c.registry + "/netdiag-helper"
	pinned := repo + "@" + rel.digest

	// The release's image, pushed as the release workflow does.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	push := exec.Command("go", "run", "./hack/ocipush", "--layout", filepath.Join(rel.dir, "netdiag-helper-oci"), "--ref", repo+":"+rel.version)
	push.Dir = root
	out, err := push.Output()
	if err != nil {
		t.Fatalf("ocipush: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != pinned {
		t.Fatalf("pushed %s, want the pinned %s", got, pinned)
	}
	// Nothing may come from an earlier import or run: the kubelet must pull.
	_ = exec.Command("ctr", "--address", c.containerd, "-n", "k8s.io", "images", "rm", pinned).Run()

	krewRoot, env := c.krewEnv(t, rel)
	archive := filepath.Join(rel.dir, "kubectl-netdiag_"+rel.version+"_linux_amd64.tar.gz")
	if _, _, err := runEnv(t, env, 2*time.Minute, c.kubectl, "krew", "install", "--manifest="+rel.manifest, "--archive="+archive); err != nil {
		t.Fatalf("krew install: %v", err)
	}
	installed := false
	t.Cleanup(func() {
		if installed {
			_, _, _ = runEnv(t, env, time.Minute, c.kubectl, "krew", "uninstall", "netdiag")
		}
	})
	installed = true
	localIndex(t, krewRoot, rel.manifest)
	if fi, err := os.Stat(filepath.Join(krewRoot, "store", "netdiag", rel.version, "kubectl_complete-netdiag")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("the completion script is not in the installed plugin: %v", err)
	}

	stdout, _, err := runEnv(t, env, time.Minute, c.kubectl, "netdiag", "version")
	if err != nil {
		t.Fatalf("kubectl netdiag version: %v", err)
	}
	if want := "kubectl-netdiag " + rel.version + "\nhelper image: " + pinned + "\n"; stdout != want {
		t.Fatalf("kubectl netdiag version:\n%s\nwant:\n%s", stdout, want)
	}

	ns := c.namespace(t)
	pod := c.webPod(t, ns, "web")
	file := filepath.Join(t.TempDir(), "web.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	capture := exec.CommandContext(ctx, c.kubectl, "netdiag", "capture", "pod/web", "-n", ns,
		"-f", "tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0", "--count", "2", "-w", file)
	capture.Env = env
	stderr := newLineBuffer()
	capture.Stderr = stderr
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- capture.Wait() }()
	stderr.waitFor(t, readyText, 2*time.Minute)
	httpGets(t, pod.Status.PodIP, "/a", "/b", "/c")
	if err := <-done; err != nil {
		t.Fatalf("capture: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(readCapture(t, data)); n != 2 {
		t.Errorf("%d packets captured, want 2", n)
	}

	p := c.getPod(t, ns, "web")
	if len(p.Spec.EphemeralContainers) != 1 || p.Spec.EphemeralContainers[0].Image != pinned {
		t.Fatalf("ephemeral containers %+v, want one running %s", p.Spec.EphemeralContainers, pinned)
	}
	events, err := c.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	pulled := false
	for _, e := range events.Items {
		t.Logf("event %s: %s", e.Reason, e.Message)
		if e.Reason == "Pulled" && strings.Contains(e.Message, "Successfully pulled image \""+pinned+"\"") {
			pulled = true
		}
	}
	if !pulled {
		t.Errorf("no event says the kubelet pulled %s", pinned)
	}

	if _, _, err := runEnv(t, env, time.Minute, c.kubectl, "krew", "uninstall", "netdiag"); err != nil {
		t.Fatalf("krew uninstall: %v", err)
	}
	installed = false
	if _, err := os.Lstat(filepath.Join(krewRoot, "bin", "kubectl-netdiag")); !os.IsNotExist(err) {
		t.Errorf("kubectl-netdiag is still on PATH after krew uninstall: %v", err)
	}
}

// localIndex makes KREW_ROOT's default plugin index a clone of a local git
// repository that lists this release, as a platform team's own index would:
// krew's other commands (uninstall, list) need an index, and the public one
// cannot be cloned here.
func localIndex(t *testing.T, krewRoot, manifest string) {
	t.Helper()
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "plugins", "netdiag.yaml"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git(src, "init", "-q")
	git(src, "add", ".")
	git(src, "commit", "-q", "-m", "netdiag")
	if err := os.MkdirAll(filepath.Join(krewRoot, "index"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(src, "clone", "-q", src, filepath.Join(krewRoot, "index", "default"))
}
