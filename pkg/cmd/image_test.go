package cmd

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/version"
)

func TestDefaultImage(t *testing.T) {
	repo, ver, digest := version.HelperImageRepo, version.Version, version.HelperImageDigest
	t.Cleanup(func() { version.HelperImageRepo, version.Version, version.HelperImageDigest = repo, ver, digest })
	version.HelperImageRepo, version.Version = "registry.test/netdiag-helper", "v0.1.0"

	t.Setenv(imageEnv, "")
	version.HelperImageDigest = ""
	if got, want := defaultImage(), "registry.test/netdiag-helper:v0.1.0"; got != want {
		t.Errorf("development build: %q, want %q", got, want)
	}
	version.HelperImageDigest = "sha256:" + strings.Repeat("ab", 32)
	if got, want := defaultImage(), "registry.test/netdiag-helper@sha256:"+strings.Repeat("ab", 32); got != want {
		t.Errorf("release build: %q, want %q (pinned by digest)", got, want)
	}
	t.Setenv(imageEnv, " mirror.test/netdiag-helper@sha256:"+strings.Repeat("cd", 32)+" ")
	if got, want := defaultImage(), "mirror.test/netdiag-helper@sha256:"+strings.Repeat("cd", 32); got != want {
		t.Errorf("with %s: %q, want %q", imageEnv, got, want)
	}

	// The environment sets the default; --image still wins.
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdCapture(genericclioptions.NewConfigFlags(true), streams)
	if got := cmd.Flags().Lookup("image").DefValue; got != "mirror.test/netdiag-helper@sha256:"+strings.Repeat("cd", 32) {
		t.Errorf("capture --image default %q does not follow %s", got, imageEnv)
	}
}

func TestImageValidate(t *testing.T) {
	tests := []struct {
		opts imageOptions
		want string
	}{
		{imageOptions{Image: "x", PullPolicy: "IfNotPresent"}, ""},
		{imageOptions{Image: "x", PullPolicy: "Always", PullSecrets: []string{"regcred", "mirror.pull"}}, ""},
		{imageOptions{Image: " ", PullPolicy: "Never"}, "--image must not be empty"},
		{imageOptions{Image: "x", PullPolicy: "sometimes"}, `--image-pull-policy must be Always, IfNotPresent or Never, got "sometimes"`},
		{imageOptions{Image: "x", PullPolicy: "Always", PullSecrets: []string{"Reg_Cred"}}, `--image-pull-secret "Reg_Cred" is not a secret name`},
	}
	for _, tt := range tests {
		err := tt.opts.validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if tt.want == "" && got != "" || tt.want != "" && !strings.HasPrefix(got, tt.want) {
			t.Errorf("validate(%+v) = %q, want %q", tt.opts, got, tt.want)
		}
	}
	refs := (&imageOptions{PullSecrets: []string{"a", "b"}}).pullSecrets()
	if len(refs) != 2 || refs[0].Name != "a" || refs[1].Name != "b" {
		t.Errorf("pullSecrets() = %v", refs)
	}
}

// A pod capture cannot choose pull secrets: the refusal says what works.
func TestCapturePullSecretPodRefused(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
	o.Namespace, o.Client, o.Executor = "shop", fake.NewClientset(), fakeExec{}
	o.PullSecrets = []string{"regcred"}
	o.Output = "-"
	if err := o.Complete([]string{"pod/web"}); err != nil {
		t.Fatal(err)
	}
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "spec.imagePullSecrets") {
		t.Errorf("pod capture with --image-pull-secret: %v", err)
	}
	if err := o.Complete([]string{"node/n1"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("node capture with --image-pull-secret: %v", err)
	}
}
