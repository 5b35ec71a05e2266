package kube

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/klog/v2"
)

// Pod names a pod.
type Pod struct {
	Namespace string
	Name      string
}

// Executor runs a command in a container over an exec stream. Tests replace
// it with a fake that replays recorded helper output.
type Executor interface {
	Stream(ctx context.Context, pod Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// RemoteExecutor is the real Executor: the pods/exec subresource, over
// WebSocket with a fallback to SPDY, as kubectl exec does. Never attach:
// attach loses what the process wrote before it connected.
type RemoteExecutor struct {
	Config *restclient.Config
	Client kubernetes.Interface
}

// Stream runs cmd and copies its output to stdout and stderr as it arrives.
func (e *RemoteExecutor) Stream(ctx context.Context, pod Pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	req := e.Client.CoreV1().RESTClient().Post().
		Resource("pods").
		Namespace(pod.Namespace).
		Name(pod.Name).
		SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdin:     stdin != nil,
			Stdout:    stdout != nil,
			Stderr:    stderr != nil,
			TTY:       false,
		}, scheme.ParameterCodec)
	klog.V(3).Infof("exec %s", req.URL())

	exec, err := remotecommand.NewSPDYExecutor(e.Config, "POST", req.URL())
	if err != nil {
		return err
	}
	// kubectl's switch to turn WebSockets off is honoured too.
	if !strings.EqualFold(os.Getenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS"), "false") {
		// WebSocket upgrades must be GETs (RFC 6455 section 4.1).
		ws, err := remotecommand.NewWebSocketExecutor(e.Config, "GET", req.URL().String())
		if err != nil {
			return err
		}
		exec, err = remotecommand.NewFallbackExecutor(ws, exec, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
		if err != nil {
			return err
		}
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{
		Stdin:  stdin,
		Stdout: stdout,
		Stderr: stderr,
	})
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("you need `create` on `pods/exec` in namespace %q to run the helper (check with: kubectl auth can-i create pods --subresource=exec -n %s) (error from server: %v)", pod.Namespace, pod.Namespace, err)
	}
	if err != nil && ctx.Err() == nil {
		if why := notRunningReason(e.Client, pod, container); why != nil {
			return fmt.Errorf("%w (%v)", why, err)
		}
	}
	return err
}

// notRunningReason reads the pod after a failed exec and says why the
// container cannot run the helper (an image that cannot be pulled, a
// terminated container), or nil when it runs or cannot be read.
func notRunningReason(client kubernetes.Interface, pod Pod, container string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	statuses := p.Status.ContainerStatuses
	for _, ec := range p.Spec.EphemeralContainers {
		if ec.Name == container {
			statuses = p.Status.EphemeralContainerStatuses
		}
	}
	_, _, why := containerRunning(p, container, statuses, "before the helper could run")
	return why
}

// HoldsKeepalive makes RemoteExecutor a KeepaliveExecutor: its exec
// streams stdin for as long as the exec lasts.
func (e *RemoteExecutor) HoldsKeepalive() bool { return true }

// Heartbeat writes one byte to w at once and then every interval, until a
// write fails or ctx ends: the helper's --heartbeat hears that its plugin is
// alive (a killed client gives the remote side no EOF).
func Heartbeat(ctx context.Context, w io.Writer, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := w.Write([]byte{0}); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
