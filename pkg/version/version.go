// Package version holds the build's version and the helper image it uses by
// default. All are set at link time by the Makefile:
//
//	-X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.Version=v0.1.0
//	-X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.HelperImageRepo=example.org/netdiag-helper
//	-X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.HelperImageDigest=sha256:…
package version

import "strings"

// Version is the version of this build (git describe), "dev" when built
// without the Makefile.
var Version = "dev"

// HelperImageRepo is the repository of the companion helper image, without a
// tag. The default "localhost/netdiag-helper" names an image that is never
// pulled: it is imported into the node's runtime (see README, "Helper
// image"). Release builds point it at the published repository.
var HelperImageRepo = "localhost/netdiag-helper"

// HelperImageDigest is the digest of the helper image index a release was
// built with (sha256:…), empty in development builds. The helper runs with
// capabilities, and privileged on nodes, so a release pins it by digest: a
// moved tag cannot change what runs.
var HelperImageDigest = ""

// HelperImage is the image reference the plugin injects unless --image or
// KUBECTL_NETDIAG_IMAGE says otherwise: the helper built from the same commit
// as the plugin, pinned by digest in a release (REPO@sha256:…), by tag in a
// development build (REPO:VERSION).
func HelperImage() string {
	if d := strings.TrimSpace(HelperImageDigest); d != "" {
		return HelperImageRepo + "@" + d
	}
	return HelperImageRepo + ":" + Version
}
