// Command ocipush pushes the image index of an OCI layout (as written by
// `make release-image`) to a registry, unchanged: the pushed index has the
// digest the release's plugin binaries are pinned to. Credentials come from
// REGISTRY_USERNAME and REGISTRY_PASSWORD when set (anonymous otherwise).
// Registries on localhost are spoken to over plain HTTP.
//
//	go run ./hack/ocipush --layout _output/release/netdiag-helper-oci \
//	  --ref registry.example/netdiag-helper:v0.1.0
//
// It prints the pushed reference, pinned by digest.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	dir := flag.String("layout", "", "OCI layout directory holding one image index")
	ref := flag.String("ref", "", "where to push it: REPOSITORY:TAG")
	flag.Parse()
	if err := run(*dir, *ref); err != nil {
		fmt.Fprintf(os.Stderr, "ocipush: %v\n", err)
		os.Exit(1)
	}
}

func run(dir, ref string) error {
	if dir == "" || ref == "" {
		return fmt.Errorf("usage: ocipush --layout DIR --ref REPOSITORY:TAG")
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("--ref %q: %w", ref, err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("--layout %q: %w", dir, err)
	}
	outer, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := outer.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("--layout %q holds %d entries, want the one image index", dir, len(m.Manifests))
	}
	idx, err := outer.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return fmt.Errorf("--layout %q: its entry is not an image index: %w", dir, err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithAuth(auth())); err != nil {
		return fmt.Errorf("pushing to %s: %w", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Println(tag.Context().Digest(d.String()).String())
	return nil
}

// auth is basic auth from the environment, else anonymous.
func auth() authn.Authenticator {
	user, pass := os.Getenv("REGISTRY_USERNAME"), os.Getenv("REGISTRY_PASSWORD")
	if user == "" && pass == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: user, Password: pass}
}
