package cmd

import (
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/spf13/pflag"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/version"
)

// imageEnv overrides the built-in helper image, for clusters that pull from
// a mirror; --image overrides both.
const imageEnv = "KUBECTL_NETDIAG_IMAGE"

// defaultImage is the helper image used when --image is not given: the
// environment's, else the one this build was released with.
func defaultImage() string {
	if v := strings.TrimSpace(os.Getenv(imageEnv)); v != "" {
		return v
	}
	return version.HelperImage()
}

// imageOptions choose the helper image and how the kubelet pulls it.
type imageOptions struct {
	Image       string
	PullPolicy  string
	PullSecrets []string
}

func newImageOptions() imageOptions {
	return imageOptions{Image: defaultImage(), PullPolicy: string(corev1.PullIfNotPresent)}
}

// addFlags adds --image, --image-pull-policy and, where the command creates
// node pods, --image-pull-secret.
func (o *imageOptions) addFlags(f *pflag.FlagSet, what string) {
	f.StringVar(&o.Image, "image", o.Image, what+"; "+imageEnv+", when set, replaces the built-in default")
	f.StringVar(&o.PullPolicy, "image-pull-policy", o.PullPolicy, "pull policy of the helper image: Always, IfNotPresent or Never")
	f.StringSliceVar(&o.PullSecrets, "image-pull-secret", o.PullSecrets, "secret in the namespace to pull the helper image of node-debug pods with (repeatable); a pod capture pulls with the pod's own imagePullSecrets")
}

// validate checks the image flags.
func (o *imageOptions) validate() error {
	switch corev1.PullPolicy(o.PullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return fmt.Errorf("--image-pull-policy must be Always, IfNotPresent or Never, got %q", o.PullPolicy)
	}
	if strings.TrimSpace(o.Image) == "" {
		return fmt.Errorf("--image must not be empty")
	}
	for _, s := range o.PullSecrets {
		if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
			return fmt.Errorf("--image-pull-secret %q is not a secret name: %s", s, strings.Join(errs, "; "))
		}
	}
	return nil
}

// pullSecrets turns the --image-pull-secret names into the pod field.
func (o *imageOptions) pullSecrets() []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, s := range o.PullSecrets {
		refs = append(refs, corev1.LocalObjectReference{Name: s})
	}
	return refs
}
