//go:build unix

package watch_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"thunder/internal/watch"
)

// mustTree creates the files (with parents) under a new temp dir.
func mustTree(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, p, "x\n")
	}
	return dir
}

// walked returns the paths Walk visits, relative to dir.
func walked(t *testing.T, dir string, fn func(string) error) ([]string, error) {
	t.Helper()
	var got []string
	err := watch.Walk(dir, func(p string, info fs.FileInfo) error {
		if !info.Mode().IsRegular() {
			t.Errorf("Walk visited %s with mode %v", p, info.Mode())
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rel)
		if fn != nil {
			return fn(rel)
		}
		return nil
	})
	return got, err
}

func TestWalk(t *testing.T) {
	dir := mustTree(t, "a.log", "sub/b.log", "sub/deep/c.log")
	outside := mustTree(t, "secret.log")
	for link, target := range map[string]string{
		"linkdir":  outside,
		"linkfile": filepath.Join(outside, "secret.log"),
		"dangling": filepath.Join(outside, "missing"),
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := walked(t, dir, nil)
	want := []string{"a.log", "sub/b.log", "sub/deep/c.log"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Walk = %q, %v, want %q, nil", got, err, want)
	}
}

func TestWalkSymlinkedRoot(t *testing.T) {
	target := mustTree(t, "a.log", "sub/b.log")
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(target, root); err != nil {
		t.Fatal(err)
	}
	got, err := walked(t, root, nil)
	want := []string{"a.log", "sub/b.log"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Walk = %q, %v, want %q, nil", got, err, want)
	}
}

func TestWalkVanishing(t *testing.T) {
	dir := mustTree(t, "a.log", "b/1.log", "b/2.log", "c.log", "d/e/f.log", "g.log")
	got, err := walked(t, dir, func(rel string) error {
		if rel != "a.log" {
			return nil
		}
		// Files and directories ahead of the walk vanish.
		for _, p := range []string{"b", "c.log", "d/e"} {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	want := []string{"a.log", "g.log"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Walk = %q, %v, want %q, nil", got, err, want)
	}
}

func TestWalkErrors(t *testing.T) {
	errBad := errors.New("bad file")
	dir := mustTree(t, "a.log", "b.log", "c.log")
	got, err := walked(t, dir, func(rel string) error {
		if rel == "b.log" {
			return errBad
		}
		return nil
	})
	want := []string{"a.log", "b.log", "c.log"}
	if !errors.Is(err, errBad) || !slices.Equal(got, want) {
		t.Errorf("Walk = %q, %v, want %q, %v", got, err, want, errBad)
	}

	got, err = walked(t, dir, func(rel string) error { return filepath.SkipAll })
	if err != nil || len(got) != 1 {
		t.Errorf("Walk stopped by SkipAll = %q, %v, want one file, nil", got, err)
	}

	missing := filepath.Join(dir, "missing")
	if _, err := walked(t, missing, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Walk(%s) = %v, want %v", missing, err, fs.ErrNotExist)
	}
}
