// Command mkimage builds a single-layer linux container image archive from
// local files, without Docker or a registry. The output is a docker-archive
// tarball (manifest.json + config + one gzip layer) that
// `ctr -n k8s.io images import FILE` loads and tags with every --tag given.
//
// The output is deterministic: entries are sorted, owned by 0:0 and carry a
// fixed mtime, and the image config has a fixed creation time, so the same
// inputs always give the same image digest.
//
// Example:
//
//	go run ./hack/mkimage --tag localhost/netdiag-helper:dev --out img.tar \
//	  --file _output/bin/netdiag-helper:/netdiag-helper:0755 \
//	  --entrypoint /netdiag-helper --cmd idle
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the fixed timestamp used for every layer entry and the config.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
	Arch       string
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

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tags, files, links, dirs, envs listFlag
	var out, entrypoint, cmd, workdir, arch string
	fs.Var(&tags, "tag", "image reference to tag the image with, e.g. localhost/foo:v1 (repeatable)")
	fs.StringVar(&out, "out", "", "output archive file")
	fs.Var(&files, "file", "SRC:DST[:MODE] file to add (repeatable); MODE is octal, default the source's mode")
	fs.Var(&links, "symlink", "DST:TARGET symlink to add (repeatable)")
	fs.Var(&dirs, "dir", "DST empty directory to add (repeatable)")
	fs.StringVar(&entrypoint, "entrypoint", "", "PATH[,ARG...] entrypoint")
	fs.StringVar(&cmd, "cmd", "", "ARG[,ARG...] default command")
	fs.Var(&envs, "env", "K=V environment variable (repeatable); PATH defaults to a standard value")
	fs.StringVar(&workdir, "workdir", "", "working directory")
	fs.StringVar(&arch, "arch", "amd64", "image architecture (os is always linux)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if out == "" {
		return errors.New("--out is required")
	}
	if len(tags) == 0 {
		return errors.New("at least one --tag is required")
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
	return build(s, out)
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
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
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
