//go:build e2e

// Package e2e drives the built kubectl-netdiag through kubectl itself against
// the real single-node cluster that e2e/cluster/up.sh starts on this machine.
//
// Run with `make e2e` (it brings the cluster up, builds the plugin and imports
// the helper image). Outside CI, a missing cluster skips the tests with the
// command that starts one; in CI (CI=true) it is a failure.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// webImage is the busybox image the cluster harness imports for workloads.
const webImage = "localhost/netdiag-web:v1"

// TestMain runs every test, then checks that none of them left netdiag pods
// in the cluster or helper captures running on the node: whatever a test
// did, a user's run of the same commands would have left the same.
func TestMain(m *testing.M) {
	code := m.Run()
	if theCluster != nil {
		if err := leftovers(theCluster); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers(c *cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Node-debug pods are deleted with grace period 0; give the API a
	// moment to forget them.
	var names []string
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-netdiag"})
		if err != nil {
			return false, nil
		}
		names = names[:0]
		for _, p := range l.Items {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		return len(names) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("netdiag pods %v", names)
	}
	if out, err := exec.Command("pgrep", "-af", "^/netdiag-helper (capture|check|fix)").Output(); err == nil {
		return fmt.Errorf("helper processes still running on the node:\n%s", out)
	}
	return nil
}

// cluster is what the tests know about the running cluster.
type cluster struct {
	kubeconfig string
	kubectl    string
	node       string
	client     kubernetes.Interface
	binDir     string // holds kubectl-netdiag; put first on PATH
	registry   string // the cluster's OCI registry, e.g. localhost:5000
	containerd string // containerd's socket
}

var (
	clusterOnce sync.Once
	theCluster  *cluster
	clusterErr  error
)

// getCluster reads the env file written by e2e/cluster/up.sh.
func getCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(func() { theCluster, clusterErr = loadCluster() })
	if clusterErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no cluster: %v", clusterErr)
		}
		t.Skipf("no local cluster (%v); start one with `make cluster-up load-image build`", clusterErr)
	}
	return theCluster
}

func loadCluster() (*cluster, error) {
	dir := os.Getenv("NETDIAG_CLUSTER_DIR")
	if dir == "" {
		dir = "/var/lib/netdiag-cluster"
	}
	env, err := readEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		return nil, err
	}
	c := &cluster{kubeconfig: env["KUBECONFIG"], kubectl: env["KUBECTL"], node: env["NODE_NAME"],
		registry: env["REGISTRY"], containerd: env["CONTAINERD_ADDRESS"]}
	if c.kubeconfig == "" || c.kubectl == "" || c.node == "" {
		return nil, fmt.Errorf("%s/env lacks KUBECONFIG, KUBECTL or NODE_NAME", dir)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	c.binDir = filepath.Join(root, "_output", "bin")
	if _, err := os.Stat(filepath.Join(c.binDir, "kubectl-netdiag")); err != nil {
		return nil, fmt.Errorf("plugin not built (%v); run `make build`", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, err
	}
	c.client, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.client.CoreV1().Nodes().Get(ctx, c.node, metav1.GetOptions{}); err != nil {
		return nil, fmt.Errorf("cluster not answering: %v", err)
	}
	return c, nil
}

func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		env[k] = strings.Trim(v, `"'`)
	}
	return env, nil
}

// kubectl runs `kubectl ARGS...` with the plugin on PATH, as a user would.
func (c *cluster) kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.kubectl, args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+c.kubeconfig,
		"PATH="+c.binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NO_COLOR=1",
	)
	return cmd
}

// result of one command.
type result struct {
	stdout, stderr string
	code           int
}

func (c *cluster) run(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := c.kubectlCmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kubectl %s → exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	return r
}

// namespace creates a fresh namespace, deleted when the test ends, and waits
// for its default ServiceAccount.
func (c *cluster) namespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := "netdiag-e2e-" + rand.String(5)
	_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = c.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s: no default ServiceAccount: %v", name, err)
	}
	return name
}

// webPod starts a busybox httpd on port 8080 and returns it Running.
func (c *cluster) webPod(t testing.TB, ns, name string) *corev1.Pod {
	t.Helper()
	return c.labelledWebPod(t, ns, name, map[string]string{"app": name})
}

// labelledWebPod is webPod with the labels given.
func (c *cluster) labelledWebPod(t testing.TB, ns, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                      c.node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           webImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
			}},
		},
	}
	if _, err := c.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c.waitRunning(t, ns, name)
}

func (c *cluster) waitRunning(t testing.TB, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running: %v (status %+v)", ns, name, err, pod.Status)
	}
	return pod
}

func (c *cluster) getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := c.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// netdiagPods lists pods the plugin labels as its own, in every namespace.
func (c *cluster) netdiagPods(t *testing.T) []corev1.Pod {
	t.Helper()
	l, err := c.client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-netdiag"})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return l.Items
}

// background is a command running while the test drives traffic.
type background struct {
	cmd    *exec.Cmd
	stderr *lineBuffer
	done   chan error
}

func (c *cluster) start(t *testing.T, args ...string) *background {
	t.Helper()
	cmd := c.kubectlCmd(context.Background(), args...)
	b := &background{cmd: cmd, stderr: newLineBuffer(), done: make(chan error, 1)}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return b
}

// wait returns the exit code, failing the test after timeout.
func (b *background) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-b.done:
		t.Logf("stderr: %s", b.stderr.String())
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		_ = b.cmd.Process.Kill()
		t.Fatalf("command did not end within %s; stderr so far:\n%s", timeout, b.stderr.String())
		return -1
	}
}

// interrupt stops the command with Ctrl-C and wants exit code 0.
func (b *background) interrupt(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C, want 0", code)
	}
}

// lineBuffer collects a stream and lets a test wait for a line.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan struct{}
}

func newLineBuffer() *lineBuffer { return &lineBuffer{ch: make(chan struct{}, 1)} }

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	select {
	case l.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lineBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until some line contains substr.
func (l *lineBuffer) waitFor(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		sc := bufio.NewScanner(strings.NewReader(l.String()))
		for sc.Scan() {
			if strings.Contains(sc.Text(), substr) {
				return
			}
		}
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("no line containing %q within %s; got:\n%s", substr, timeout, l.String())
		}
	}
}

var _ io.Writer = (*lineBuffer)(nil)
