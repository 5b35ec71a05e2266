// Package version holds the build's version and the helper image it uses by
// default. Both are set at link time by the Makefile:
//
//	-X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.Version=v0.1.0
//	-X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.HelperImageRepo=example.org/netdiag-helper
package version

// Version is the version of this build (git describe), "dev" when built
// without the Makefile.
var Version = "dev"

// HelperImageRepo is the repository of the companion helper image, without a
// tag. The default "localhost/netdiag-helper" names an image that is never
// pulled: it is imported into the node's runtime (see README, "Helper
// image"). Release builds point it at the published repository.
var HelperImageRepo = "localhost/netdiag-helper"

// HelperImage is the image reference the plugin injects unless --image says
// otherwise: the helper built from the same commit as the plugin.
func HelperImage() string {
	return HelperImageRepo + ":" + Version
}
