package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
	if err := run(args, io.Discard); err != nil {
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
	if err := run(args, io.Discard); err != nil {
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
		if err := run(args, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want error", args)
		}
	}
}
