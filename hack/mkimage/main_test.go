package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBuildAndReadBack(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "helper")
	if err := os.WriteFile(src, []byte("#!/bin/true\nhello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	args := []string{
		"--tag", "localhost/netdiag-test:v1",
		"--tag", "localhost/netdiag-test:latest",
		"--out", out,
		"--file", src + ":/usr/bin/helper:0755",
		"--symlink", "/bin/h:/usr/bin/helper",
		"--dir", "/tmp",
		"--entrypoint", "/usr/bin/helper,--flag",
		"--cmd", "idle",
		"--env", "FOO=bar",
		"--workdir", "/tmp",
	}
	if err := run(args, io.Discard, io.Discard); err != nil {
		t.Fatalf("run: %v", err)
	}

	tag, err := name.NewTag("localhost/netdiag-test:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading back %s with tag %s: %v", out, tag, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform = %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if want := []string{"/usr/bin/helper", "--flag"}; !reflect.DeepEqual(cf.Config.Entrypoint, want) {
		t.Errorf("entrypoint = %q, want %q", cf.Config.Entrypoint, want)
	}
	if want := []string{"idle"}; !reflect.DeepEqual(cf.Config.Cmd, want) {
		t.Errorf("cmd = %q, want %q", cf.Config.Cmd, want)
	}
	if want := []string{"PATH=" + defaultPath, "FOO=bar"}; !reflect.DeepEqual(cf.Config.Env, want) {
		t.Errorf("env = %q, want %q", cf.Config.Env, want)
	}
	if cf.Config.WorkingDir != "/tmp" {
		t.Errorf("workdir = %q", cf.Config.WorkingDir)
	}

	// The second tag is in the same archive.
	latest, _ := name.NewTag("localhost/netdiag-test:latest")
	if _, err := tarball.ImageFromPath(out, &latest); err != nil {
		t.Errorf("second tag not found: %v", err)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	got := map[string]*tar.Header{}
	var order []string
	var content string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		order = append(order, h.Name)
		if h.Name == "usr/bin/helper" {
			b, _ := io.ReadAll(tr)
			content = string(b)
		}
	}
	wantOrder := []string{"bin/", "bin/h", "tmp/", "usr/", "usr/bin/", "usr/bin/helper"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("layer entries = %q, want %q", order, wantOrder)
	}
	if h := got["usr/bin/helper"]; h == nil || h.Mode != 0o755 || h.Typeflag != tar.TypeReg || h.Uid != 0 || !h.ModTime.Equal(epoch) {
		t.Errorf("helper header = %+v, want regular file 0755 uid 0 mtime %v", h, epoch)
	}
	if content != "#!/bin/true\nhello\n" {
		t.Errorf("helper content = %q", content)
	}
	if h := got["bin/h"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/usr/bin/helper" {
		t.Errorf("symlink header = %+v", h)
	}
	if h := got["tmp/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("tmp header = %+v", h)
	}

	// Same inputs, same digest.
	d1, _ := img.Digest()
	out2 := filepath.Join(dir, "img2.tar")
	args[5] = out2
	if err := run(args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	img2, err := tarball.ImageFromPath(out2, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := img2.Digest(); d1 != d2 {
		t.Errorf("digest not deterministic: %s vs %s", d1, d2)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--out", "x.tar"},               // no tag
		{"--tag", "localhost/a:v1"},      // no out
		{"--tag", "a", "--out", "x.tar"}, // not fully qualified
		{"--tag", "localhost/a:v1", "--out", "x", "--file", "onlysrc"},
		{"--tag", "localhost/a:v1", "--out", "x", "--file", "a:/b:999"},
		{"--tag", "localhost/a:v1", "--out", "x", "--symlink", "/a"},
	} {
		if err := run(args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want error", args)
		}
	}
}

// ociArgs are the flags of an index of two platforms, arm64 first (the
// index is in platform order whatever the flag order).
func ociArgs(dir, amd64, arm64 string) []string {
	return []string{
		"--oci-layout", dir,
		"--platform-file", "linux/arm64=" + arm64 + ":/netdiag-helper:0755",
		"--platform-file", "linux/amd64=" + amd64 + ":/netdiag-helper:0755",
		"--entrypoint", "/netdiag-helper",
		"--cmd", "idle",
	}
}

func writeFile(t *testing.T, p string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runOCI(t *testing.T, args []string) (digest, log string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q): %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), stderr.String()
}

// readIndex reads back the layout in dir: its single entry must be the
// index with the given digest.
func readIndex(t *testing.T, dir, digest string) (v1.ImageIndex, v1.Descriptor) {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading layout %s: %v", dir, err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1: %+v", len(tm.Manifests), tm.Manifests)
	}
	d := tm.Manifests[0]
	if d.MediaType != types.OCIImageIndex || d.Digest.String() != digest {
		t.Fatalf("index.json entry = %s %s, want %s %s", d.MediaType, d.Digest, types.OCIImageIndex, digest)
	}
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := idx.Digest(); got.String() != digest {
		t.Fatalf("index digest read back = %s, want %s", got, digest)
	}
	return idx, d
}

func TestOCIIndex(t *testing.T) {
	dir := t.TempDir()
	contents := map[string]string{"amd64": "amd64 helper\n", "arm64": "arm64 helper\n"}
	amd64 := writeFile(t, filepath.Join(dir, "helper-amd64"), []byte(contents["amd64"]))
	arm64 := writeFile(t, filepath.Join(dir, "helper-arm64"), []byte(contents["arm64"]))
	out := filepath.Join(dir, "release", "oci")
	digestFile := filepath.Join(dir, "digest")
	args := append(ociArgs(out, amd64, arm64), "--digest-file", digestFile, "--tag", "localhost/netdiag-helper:v1")
	digest, log := runOCI(t, args)
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		t.Fatalf("stdout = %q, want the index digest", digest)
	}
	if b, err := os.ReadFile(digestFile); err != nil || string(b) != digest+"\n" {
		t.Errorf("--digest-file = %q, %v; want %q", b, err, digest+"\n")
	}
	// Every file of the layout is world-readable (and none executable).
	if err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if want := os.FileMode(0o644); !d.IsDir() && st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	idx, d := readIndex(t, out, digest)
	if got := d.Annotations[refNameAnnotation]; got != "v1" {
		t.Errorf("index.json ref name = %q, want v1", got)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := idx.RawManifest(); err != nil || bytes.Contains(raw, []byte("artifactType")) {
		t.Errorf("index manifest %s (%v): want no artifactType", raw, err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type = %s", im.MediaType)
	}
	var platforms []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("manifest %s has no platform", m.Digest)
		}
		platforms = append(platforms, m.Platform.String())
		if m.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", m.Platform, m.MediaType)
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != m.Platform.OS || cf.Architecture != m.Platform.Architecture || cf.Variant != "" {
			t.Errorf("%s: config platform %s/%s/%s", m.Platform, cf.OS, cf.Architecture, cf.Variant)
		}
		if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/netdiag-helper"}) || !reflect.DeepEqual(cf.Config.Cmd, []string{"idle"}) {
			t.Errorf("%s: entrypoint %q cmd %q", m.Platform, cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if !cf.Created.Time.Equal(epoch) {
			t.Errorf("%s: created %v", m.Platform, cf.Created)
		}
		man, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if man.Config.MediaType != types.OCIConfigJSON || len(man.Layers) != 1 || man.Layers[0].MediaType != types.OCILayer {
			t.Errorf("%s: manifest %+v, want OCI config and one OCI layer", m.Platform, man)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name != "netdiag-helper" || h.Mode != 0o755 || h.Typeflag != tar.TypeReg || string(b) != contents[m.Platform.Architecture] {
			t.Errorf("%s: layer entry %s mode %o content %q", m.Platform, h.Name, h.Mode, b)
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Errorf("%s: layer has more than one entry (%v)", m.Platform, err)
		}
		rc.Close()

		// The reported size is the image's compressed size.
		sz, err := sizeOf(img)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("mkimage: %s: %s compressed (%d bytes:", m.Platform, mb(sz.total()), sz.total()); !strings.Contains(log, want) {
			t.Errorf("log %q does not report %q", log, want)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !reflect.DeepEqual(platforms, want) {
		t.Errorf("platforms = %q, want %q", platforms, want)
	}

	// Same inputs, same digest: in another directory, with the platforms
	// given in the other order, and without tag or digest file.
	out2 := filepath.Join(dir, "oci2")
	args2 := ociArgs(out2, amd64, arm64)
	args2[2], args2[4] = args2[4], args2[2]
	if d2, _ := runOCI(t, args2); d2 != digest {
		t.Errorf("digest not deterministic: %s vs %s", digest, d2)
	}
	readIndex(t, out2, digest)
	// Writing over an earlier layout replaces it.
	if d3, _ := runOCI(t, args); d3 != digest {
		t.Errorf("rewritten layout digest %s, want %s", d3, digest)
	}
	readIndex(t, out, digest)

	// Other content, other digest.
	writeFile(t, arm64, []byte("arm64 helper v2\n"))
	if d4, _ := runOCI(t, args2); d4 == digest {
		t.Errorf("digest unchanged after the arm64 file changed")
	}
}

func TestOCISizeLimit(t *testing.T) {
	dir := t.TempDir()
	small := writeFile(t, filepath.Join(dir, "small"), []byte("small\n"))
	// Random bytes do not compress: 20 kB of them is over a 10 kB limit.
	big := make([]byte, 20_000)
	rand.New(rand.NewSource(1)).Read(big)
	bigPath := writeFile(t, filepath.Join(dir, "big"), big)
	out := filepath.Join(dir, "oci")

	args := append(ociArgs(out, small, bigPath), "--max-platform-size", "10000")
	var stdout, stderr bytes.Buffer
	err := run(args, &stdout, &stderr)
	if err == nil {
		t.Fatalf("an arm64 image of 20 kB random bytes passed a 10 kB limit")
	}
	if msg := err.Error(); !strings.Contains(msg, "linux/arm64") || !strings.Contains(msg, "limit") || strings.Contains(msg, "linux/amd64") {
		t.Errorf("error = %q, want it to name linux/arm64 (only) and the limit", msg)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want no digest", stdout.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("layout written despite the size error (%v)", err)
	}

	// Under the limit it passes.
	args[len(args)-1] = "100000"
	digest, _ := runOCI(t, args)
	readIndex(t, out, digest)
}

func TestOCIBadFlags(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "f"), []byte("x"))
	notLayout := filepath.Join(dir, "notlayout")
	if err := os.MkdirAll(notLayout, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(notLayout, "keep"), []byte("x"))
	pf := "linux/amd64=" + f + ":/h:0755"
	for _, args := range [][]string{
		{"--oci-layout", dir + "/o"}, // no platform
		{"--oci-layout", dir + "/o", "--platform-file", pf, "--out", "x.tar"},
		{"--oci-layout", dir + "/o", "--platform-file", pf, "--arch", "arm64"},
		{"--oci-layout", dir + "/o", "--platform-file", pf, "--max-platform-size", "0"},
		{"--oci-layout", dir + "/o", "--platform-file", pf, "--platform-file", pf}, // twice
		{"--oci-layout", dir + "/o", "--platform-file", "linux=" + f + ":/h"},
		{"--oci-layout", dir + "/o", "--platform-file", "linux/amd64/v1/x=" + f + ":/h"},
		{"--oci-layout", dir + "/o", "--platform-file", f + ":/h"},
		{"--oci-layout", dir + "/o", "--platform-file", "linux/amd64=" + f},
		{"--oci-layout", dir + "/o", "--platform-file", pf, "--tag", "notqualified"},
		{"--oci-layout", notLayout, "--platform-file", pf}, // would replace a directory that is not a layout
		{"--tag", "localhost/a:v1", "--out", "x.tar", "--platform-file", pf},
		{"--tag", "localhost/a:v1", "--out", "x.tar", "--digest-file", "d"},
		{"--tag", "localhost/a:v1", "--out", "x.tar", "--max-platform-size", "1"},
	} {
		if err := run(args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want error", args)
		}
	}
	if ents, _ := os.ReadDir(notLayout); len(ents) != 1 {
		t.Errorf("%s was changed: %v", notLayout, ents)
	}
	// Only the directory that was not a layout and the inputs are left.
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if want := []string{"f", "notlayout"}; !reflect.DeepEqual(names, want) {
		t.Errorf("%s holds %q, want %q", dir, names, want)
	}
}
