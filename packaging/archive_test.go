//go:build unix

package packaging_test

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// entry is one file of an archive.
type entry struct {
	mode os.FileMode
	data []byte
}

// wantArchive is every entry of a release archive under its directory,
// with its mode; the binary is checked by its first bytes.
func wantArchive(exe string, units bool) map[string]os.FileMode {
	want := map[string]os.FileMode{
		exe: 0o755, "README.md": 0o644, "LICENSE": 0o644,
		"collector.toml": 0o644, "processor.toml": 0o644,
	}
	if units {
		want["thunder-collector.service"] = 0o644
		want["thunder-processor.service"] = 0o644
	}
	return want
}

// testArchives checks the .tar.gz of this machine's architecture and the
// Windows .zip: each holds the binary, README, LICENSE and the example
// configs (the .tar.gz also the systemd units) under one directory, the
// files as in the source tree, and SHA256SUMS lists both.
func testArchives(t *testing.T, dir string) {
	v := strings.TrimPrefix(firstVer, "v")
	linux := "thunder_" + v + "_linux_" + runtime.GOARCH
	windows := "thunder_" + v + "_windows_amd64"
	checkArchive(t, linux+".tar.gz", readTar(t, filepath.Join(dir, linux+".tar.gz")), linux, wantArchive("thunder", true), "\x7fELF")
	checkArchive(t, windows+".zip", readZip(t, filepath.Join(dir, windows+".zip")), windows, wantArchive("thunder.exe", false), "MZ")
	sums := readSums(t, filepath.Join(dir, "SHA256SUMS"))
	for _, name := range []string{linux + ".tar.gz", windows + ".zip"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got, want := sums[name], hex.EncodeToString(sum[:]); got != want {
			t.Errorf("SHA256SUMS: %s = %q, want %s", name, got, want)
		}
	}
}

func checkArchive(t *testing.T, archive string, got map[string]entry, top string, want map[string]os.FileMode, magic string) {
	t.Helper()
	var names []string
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	var wantNames []string
	for name := range want {
		wantNames = append(wantNames, top+"/"+name)
	}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("%s: entries %q, want %q", archive, names, wantNames)
	}
	src := map[string]string{
		"README.md": "../README.md", "LICENSE": "../LICENSE",
		"collector.toml": "collector.toml", "processor.toml": "processor.toml",
		"thunder-collector.service": "thunder-collector.service", "thunder-processor.service": "thunder-processor.service",
	}
	for name, mode := range want {
		e, ok := got[top+"/"+name]
		if !ok {
			continue // reported above
		}
		if e.mode.Perm() != mode {
			t.Errorf("%s: %s mode %v, want %v", archive, name, e.mode.Perm(), mode)
		}
		if path, ok := src[name]; ok {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.data, b) {
				t.Errorf("%s: %s differs from %s", archive, name, path)
			}
		} else if !bytes.HasPrefix(e.data, []byte(magic)) {
			t.Errorf("%s: %s starts %q, want an executable starting %q", archive, name, e.data[:min(len(e.data), 4)], magic)
		}
	}
}

func readTar(t *testing.T, path string) map[string]entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // read-only
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	got := map[string]entry{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, h.Name, err)
		}
		got[h.Name] = entry{h.FileInfo().Mode(), b}
	}
}

func readZip(t *testing.T, path string) map[string]entry {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close() // read-only
	got := map[string]entry{}
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		b, err := io.ReadAll(r)
		r.Close() // read-only
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		got[f.Name] = entry{f.Mode(), b}
	}
	return got
}

// readSums reads SHA256SUMS: file name to hex digest.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // read-only
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sum, name, ok := strings.Cut(sc.Text(), "  "); ok {
			sums[name] = sum
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}
