// Command mkimage builds single-layer linux container images from local
// files, without Docker or a registry, in one of two forms:
//
//   - --out FILE: a docker-archive tarball (manifest.json + config + one gzip
//     layer) that `ctr -n k8s.io images import FILE` loads and tags with every
//     --tag given. One platform: linux/--arch.
//   - --oci-layout DIR: an OCI image layout directory holding one multi-platform
//     image index, with one image per --platform-file (OCI media types). The
//     index digest (sha256:...) is printed on stdout and, with --digest-file,
//     written to that file, so a release can pin it. Each platform's
//     compressed size (layer + config + manifest) is reported and must not
//     exceed --max-platform-size. Each --tag (optional here) names the index
//     in the layout's index.json by its tag part (org.opencontainers.image.ref.name).
//     `skopeo copy --all --preserve-digests oci:DIR docker://REPO:TAG`
//     publishes it under the same digest.
//
// The output is deterministic: entries are sorted, owned by 0:0 and carry a
// fixed mtime, and the image config has a fixed creation time, so the same
// inputs always give the same image (and index) digest.
//
// Examples:
//
//	go run ./hack/mkimage --tag localhost/netdiag-helper:dev --out img.tar \
//	  --file _output/bin/netdiag-helper:/netdiag-helper:0755 \
//	  --entrypoint /netdiag-helper --cmd idle
//
//	go run ./hack/mkimage --oci-layout _output/release/netdiag-helper-oci \
//	  --platform-file linux/amd64=_output/release/netdiag-helper-linux-amd64:/netdiag-helper:0755 \
//	  --platform-file linux/arm64=_output/release/netdiag-helper-linux-arm64:/netdiag-helper:0755 \
//	  --entrypoint /netdiag-helper --cmd idle --digest-file _output/release/helper-image.digest
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the fixed timestamp used for every layer entry and the config.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultMaxPlatformSize is the default --max-platform-size: 8 MB (decimal,
// so it holds for 8 MiB too).
const defaultMaxPlatformSize = 8_000_000

// refNameAnnotation names an image in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// spec describes the image to build.
type spec struct {
	Tags       []string
	Files      []fileSpec
	Symlinks   []linkSpec
	Dirs       []string
	Entrypoint []string
	Cmd        []string
	Env        []string
	Workdir    string
	OS         string // empty: linux
	Arch       string
	Variant    string
	OCI        bool // OCI media types (manifest, config, layer) instead of Docker's
}

type fileSpec struct {
	Src  string
	Dst  string
	Mode int64 // -1: take the source file's permission bits
}

type linkSpec struct {
	Dst    string
	Target string
}

// platformFile is one --platform-file: the platform and the file that is
// added to that platform's image only.
type platformFile struct {
	Platform v1.Platform
	File     fileSpec
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tags, files, links, dirs, envs, platformFiles listFlag
	var out, entrypoint, cmd, workdir, arch, ociLayout, digestFile string
	var maxPlatformSize int64
	fs.Var(&tags, "tag", "image reference to tag the image with, e.g. localhost/foo:v1 (repeatable; required with --out; with --oci-layout it names the index in index.json by its tag)")
	fs.StringVar(&out, "out", "", "output archive file")
	fs.Var(&files, "file", "SRC:DST[:MODE] file to add (repeatable); MODE is octal, default the source's mode")
	fs.Var(&links, "symlink", "DST:TARGET symlink to add (repeatable)")
	fs.Var(&dirs, "dir", "DST empty directory to add (repeatable)")
	fs.StringVar(&entrypoint, "entrypoint", "", "PATH[,ARG...] entrypoint")
	fs.StringVar(&cmd, "cmd", "", "ARG[,ARG...] default command")
	fs.Var(&envs, "env", "K=V environment variable (repeatable); PATH defaults to a standard value")
	fs.StringVar(&workdir, "workdir", "", "working directory")
	fs.StringVar(&arch, "arch", "amd64", "image architecture (os is always linux); docker-archive (--out) only")
	fs.StringVar(&ociLayout, "oci-layout", "", "write a multi-platform OCI image index as an OCI layout in this directory (instead of --out)")
	fs.Var(&platformFiles, "platform-file", "OS/ARCH[/VARIANT]=SRC:DST[:MODE] file added to that platform's image only; one image per platform in the index (repeatable, --oci-layout only)")
	fs.StringVar(&digestFile, "digest-file", "", "also write the index digest to this file (--oci-layout only)")
	fs.Int64Var(&maxPlatformSize, "max-platform-size", defaultMaxPlatformSize, "fail if a platform's compressed size (layer + config + manifest) exceeds this many bytes (--oci-layout only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if ociLayout != "" {
		for _, f := range []string{"out", "arch"} {
			if set[f] {
				return fmt.Errorf("--%s does not go with --oci-layout (the platforms come from --platform-file)", f)
			}
		}
		if len(platformFiles) == 0 {
			return errors.New("--oci-layout needs at least one --platform-file")
		}
		if maxPlatformSize <= 0 {
			return fmt.Errorf("--max-platform-size %d: want a positive number of bytes", maxPlatformSize)
		}
	} else {
		for _, f := range []string{"platform-file", "digest-file", "max-platform-size"} {
			if set[f] {
				return fmt.Errorf("--%s needs --oci-layout", f)
			}
		}
		if out == "" {
			return errors.New("--out (docker archive) or --oci-layout is required")
		}
		if len(tags) == 0 {
			return errors.New("at least one --tag is required")
		}
	}
	s := spec{Tags: tags, Dirs: dirs, Env: envs, Workdir: workdir, Arch: arch}
	for _, f := range files {
		fsp, err := parseFile(f)
		if err != nil {
			return err
		}
		s.Files = append(s.Files, fsp)
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, ":")
		if !ok || dst == "" || target == "" {
			return fmt.Errorf("--symlink %q: want DST:TARGET", l)
		}
		s.Symlinks = append(s.Symlinks, linkSpec{Dst: dst, Target: target})
	}
	if entrypoint != "" {
		s.Entrypoint = strings.Split(entrypoint, ",")
	}
	if cmd != "" {
		s.Cmd = strings.Split(cmd, ",")
	}
	if ociLayout != "" {
		var pfs []platformFile
		for _, p := range platformFiles {
			pf, err := parsePlatformFile(p)
			if err != nil {
				return err
			}
			pfs = append(pfs, pf)
		}
		return buildIndex(s, pfs, ociLayout, digestFile, maxPlatformSize, stdout, stderr)
	}
	return build(s, out)
}

// parsePlatformFile parses OS/ARCH[/VARIANT]=SRC:DST[:MODE].
func parsePlatformFile(f string) (platformFile, error) {
	plat, file, ok := strings.Cut(f, "=")
	if !ok {
		return platformFile{}, fmt.Errorf("--platform-file %q: want OS/ARCH[/VARIANT]=SRC:DST[:MODE]", f)
	}
	parts := strings.Split(plat, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return platformFile{}, fmt.Errorf("--platform-file %q: platform %q: want OS/ARCH[/VARIANT]", f, plat)
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, ": \t") {
			return platformFile{}, fmt.Errorf("--platform-file %q: platform %q: want OS/ARCH[/VARIANT]", f, plat)
		}
	}
	pf := platformFile{Platform: v1.Platform{OS: parts[0], Architecture: parts[1]}}
	if len(parts) == 3 {
		pf.Platform.Variant = parts[2]
	}
	fsp, err := parseFile(file)
	if err != nil {
		return platformFile{}, fmt.Errorf("--platform-file %q: %w", f, err)
	}
	pf.File = fsp
	return pf, nil
}

func parseFile(f string) (fileSpec, error) {
	parts := strings.Split(f, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return fileSpec{}, fmt.Errorf("--file %q: want SRC:DST[:MODE]", f)
	}
	fsp := fileSpec{Src: parts[0], Dst: parts[1], Mode: -1}
	if len(parts) == 3 {
		m, err := strconv.ParseInt(parts[2], 8, 32)
		if err != nil || m < 0 || m > 07777 {
			return fileSpec{}, fmt.Errorf("--file %q: bad octal mode %q", f, parts[2])
		}
		fsp.Mode = m
	}
	return fsp, nil
}

// entry is one member of the layer tar.
type entry struct {
	hdr  tar.Header
	data []byte
}

// cleanDst turns an image path into a tar member name ("a/b", no leading /).
func cleanDst(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" || c == "." {
		return "", fmt.Errorf("invalid destination path %q", p)
	}
	return c, nil
}

// layerTar returns the deterministic uncompressed layer tarball for s.
func layerTar(s spec) ([]byte, error) {
	entries := map[string]*entry{}
	add := func(e *entry) error {
		if old, ok := entries[e.hdr.Name]; ok {
			if old.hdr.Typeflag == tar.TypeDir && e.hdr.Typeflag == tar.TypeDir {
				return nil
			}
			return fmt.Errorf("duplicate path /%s", e.hdr.Name)
		}
		entries[e.hdr.Name] = e
		return nil
	}
	// Parent directories are added implicitly (0755, root).
	addParents := func(n string) {
		for d := path.Dir(n); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = &entry{hdr: dirHeader(d)}
			}
		}
	}
	for _, d := range s.Dirs {
		n, err := cleanDst(d)
		if err != nil {
			return nil, err
		}
		if old, ok := entries[n]; ok && old.hdr.Typeflag != tar.TypeDir {
			return nil, fmt.Errorf("duplicate path /%s", n)
		}
		entries[n] = &entry{hdr: dirHeader(n)}
		addParents(n)
	}
	for _, f := range s.Files {
		n, err := cleanDst(f.Dst)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, err
		}
		mode := f.Mode
		if mode < 0 {
			st, err := os.Stat(f.Src)
			if err != nil {
				return nil, err
			}
			mode = int64(st.Mode().Perm())
		}
		h := baseHeader(n)
		h.Typeflag = tar.TypeReg
		h.Mode = mode
		h.Size = int64(len(data))
		if err := add(&entry{hdr: h, data: data}); err != nil {
			return nil, err
		}
		addParents(n)
	}
	for _, l := range s.Symlinks {
		n, err := cleanDst(l.Dst)
		if err != nil {
			return nil, err
		}
		h := baseHeader(n)
		h.Typeflag = tar.TypeSymlink
		h.Mode = 0o777
		h.Linkname = l.Target
		if err := add(&entry{hdr: h}); err != nil {
			return nil, err
		}
		addParents(n)
	}

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func baseHeader(n string) tar.Header {
	return tar.Header{
		Name:    n,
		ModTime: epoch,
		Uid:     0,
		Gid:     0,
		Format:  tar.FormatPAX,
	}
}

func dirHeader(n string) tar.Header {
	h := baseHeader(n + "/")
	h.Name = n + "/"
	h.Typeflag = tar.TypeDir
	h.Mode = 0o755
	return h
}

// image builds the v1.Image described by s.
func image(s spec) (v1.Image, error) {
	layerBytes, err := layerTar(s)
	if err != nil {
		return nil, err
	}
	base := empty.Image
	var layerOpts []tarball.LayerOption
	if s.OCI {
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
		layerOpts = append(layerOpts, tarball.WithMediaType(types.OCILayer))
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, layerOpts...)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "kubectl-netdiag hack/mkimage",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = s.Arch
	cf.OS = "linux"
	if s.OS != "" {
		cf.OS = s.OS
	}
	cf.Variant = s.Variant
	cf.Created = v1.Time{Time: epoch}
	env := append([]string(nil), s.Env...)
	hasPath := false
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
		if !strings.Contains(e, "=") {
			return nil, fmt.Errorf("--env %q: want K=V", e)
		}
	}
	if !hasPath {
		env = append([]string{"PATH=" + defaultPath}, env...)
	}
	cf.Config.Env = env
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Cmd = s.Cmd
	cf.Config.WorkingDir = s.Workdir
	return mutate.ConfigFile(img, cf)
}

func build(s spec, out string) error {
	img, err := image(s)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range s.Tags {
		tag, err := name.NewTag(t, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("--tag %q: %w (use a fully qualified reference such as localhost/name:tag)", t, err)
		}
		refs[tag] = img
	}
	tmp := out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	// The image ID (config digest) is what containerd/CRI report; the
	// manifest digest differs after a docker-archive import because
	// containerd writes its own manifest.
	fmt.Fprintf(os.Stderr, "mkimage: wrote %s (%s) image id %s\n", out, strings.Join(s.Tags, ", "), id)
	return nil
}

// platformSize is what one platform's image adds to a registry pull.
type platformSize struct {
	Layers, Config, Manifest int64
}

func (p platformSize) total() int64 { return p.Layers + p.Config + p.Manifest }

func sizeOf(img v1.Image) (platformSize, error) {
	var ps platformSize
	layers, err := img.Layers()
	if err != nil {
		return ps, err
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return ps, err
		}
		ps.Layers += n
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return ps, err
	}
	m, err := img.RawManifest()
	if err != nil {
		return ps, err
	}
	ps.Config, ps.Manifest = int64(len(cfg)), int64(len(m))
	return ps, nil
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

// imageIndex builds the multi-platform index: one image per platform file
// (the common files of s plus that platform's file), in platform order so
// the flag order does not change the digest. Each platform's compressed size
// is reported on stderr and checked against maxSize.
func imageIndex(s spec, pfs []platformFile, maxSize int64, stderr io.Writer) (v1.ImageIndex, error) {
	pfs = append([]platformFile(nil), pfs...)
	sort.SliceStable(pfs, func(i, j int) bool { return pfs[i].Platform.String() < pfs[j].Platform.String() })
	var adds []mutate.IndexAddendum
	var tooBig []string
	for i, pf := range pfs {
		if i > 0 && pfs[i-1].Platform.String() == pf.Platform.String() {
			return nil, fmt.Errorf("--platform-file: platform %s given twice", pf.Platform)
		}
		ps := s
		ps.Files = append(append([]fileSpec(nil), s.Files...), pf.File)
		ps.OS, ps.Arch, ps.Variant = pf.Platform.OS, pf.Platform.Architecture, pf.Platform.Variant
		ps.OCI = true
		img, err := image(ps)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pf.Platform, err)
		}
		sz, err := sizeOf(img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pf.Platform, err)
		}
		fmt.Fprintf(stderr, "mkimage: %s: %s compressed (%d bytes: layer %d + config %d + manifest %d; limit %s)\n",
			pf.Platform, mb(sz.total()), sz.total(), sz.Layers, sz.Config, sz.Manifest, mb(maxSize))
		if sz.total() > maxSize {
			tooBig = append(tooBig, fmt.Sprintf("%s is %s (%d bytes) compressed, more than the limit of %s (%d bytes)",
				pf.Platform, mb(sz.total()), sz.total(), mb(maxSize), maxSize))
		}
		p := pf.Platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if len(tooBig) > 0 {
		return nil, fmt.Errorf("image too large: %s (--max-platform-size)", strings.Join(tooBig, "; "))
	}
	return withoutArtifactTypes(mutate.AppendManifests(empty.Index, adds...))
}

// plainIndex is an index with its own manifest; images are looked up in
// the index it was made from.
type plainIndex struct {
	base     v1.ImageIndex
	manifest *v1.IndexManifest
	raw      []byte
}

func (p *plainIndex) Image(h v1.Hash) (v1.Image, error)           { return p.base.Image(h) }
func (p *plainIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return p.base.ImageIndex(h) }

func (p *plainIndex) MediaType() (types.MediaType, error) { return p.manifest.MediaType, nil }
func (p *plainIndex) Size() (int64, error)                { return int64(len(p.raw)), nil }
func (p *plainIndex) RawManifest() ([]byte, error)        { return p.raw, nil }
func (p *plainIndex) IndexManifest() (*v1.IndexManifest, error) {
	return p.manifest.DeepCopy(), nil
}
func (p *plainIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(p.raw))
	return h, err
}

// withoutArtifactTypes drops the artifactType that go-containerregistry
// puts on every image descriptor of an index (the config media type; allowed
// but optional in OCI 1.1): tools that predate it, such as Debian 12's
// skopeo, cannot copy such an index without rewriting it, which changes the
// digest a release pins.
func withoutArtifactTypes(idx v1.ImageIndex) (v1.ImageIndex, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	for i := range m.Manifests {
		m.Manifests[i].ArtifactType = ""
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &plainIndex{base: idx, manifest: m, raw: raw}, nil
}

// buildIndex writes the index for s and pfs as an OCI layout in dir
// (replacing an earlier layout there, nothing else) and prints its digest.
func buildIndex(s spec, pfs []platformFile, dir, digestFile string, maxSize int64, stdout, stderr io.Writer) error {
	// Tags are validated like the docker archive's; the layout names the
	// index by tag (the usual ref.name), the repository is chosen at push.
	var refNames []string
	seen := map[string]bool{}
	for _, t := range s.Tags {
		tag, err := name.NewTag(t, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("--tag %q: %w (use a fully qualified reference such as localhost/name:tag)", t, err)
		}
		if !seen[tag.TagStr()] {
			seen[tag.TagStr()] = true
			refNames = append(refNames, tag.TagStr())
		}
	}
	idx, err := imageIndex(s, pfs, maxSize, stderr)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if err := writeLayout(dir, idx, refNames); err != nil {
		return err
	}
	if digestFile != "" {
		if err := os.WriteFile(digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "mkimage: wrote OCI layout %s: index %s (%d platforms)\n", dir, digest, len(pfs))
	fmt.Fprintln(stdout, digest.String())
	return nil
}

// writeLayout writes idx as the only entry of a fresh OCI layout in dir. The
// layout is built next to dir and renamed into place; an existing dir is
// only replaced if it is empty or an OCI layout.
func writeLayout(dir string, idx v1.ImageIndex, refNames []string) error {
	dir = filepath.Clean(dir)
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("--oci-layout %s: exists and is not a directory", dir)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); len(ents) > 0 && err != nil {
			return fmt.Errorf("--oci-layout %s: exists and is not an OCI layout; not replacing it", dir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if len(refNames) == 0 {
		if err := lp.AppendIndex(idx); err != nil {
			return err
		}
	}
	for _, r := range refNames {
		if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: r})); err != nil {
			return err
		}
	}
	// The layout writes some blobs 0600 and others 0777 &^ umask: make
	// them all world-readable, like any other build output.
	if err := filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	}); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
