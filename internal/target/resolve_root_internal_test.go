//go:build thunder_portable || windows

package target

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRootTreeRefusesLinks: os.Root follows a link that stays inside the
// target dir; the os.Root tree refuses it instead, wherever it is in a
// name, and never creates anything through it.
func TestRootTreeRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"a": "b", "l": "f"} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Skipf("cannot make links here: %v", err)
		}
	}
	root, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newTree(root)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrName) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: err = %v, want ErrName for a link", what, err)
		}
	}
	f, _, err := tr.openFile("a/x", os.O_APPEND, true, 0o644)
	refused("openFile a/x", err)
	if f != nil {
		f.Close()
	}
	if _, err := os.Lstat(filepath.Join(dir, "b", "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b/x made through the link a: %v", err)
	}
	_, _, err = tr.openFile("l", os.O_APPEND, false, 0)
	refused("openFile l", err)
	_, err = tr.openRead("l")
	refused("openRead l", err)
	_, _, err = tr.openDir("a", false)
	refused("openDir a", err)
	_, err = tr.openParent("a/x")
	refused("openParent a/x", err)

	// A name swapped for a link for the open and back before the look:
	// what was opened is not what the name holds.
	other, err := os.Create(filepath.Join(dir, "g"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = sameEntry(tr.r, "f", "f", other)
	if !errors.Is(err, ErrName) || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("sameEntry of f with g's file: err = %v, want ErrName, replaced", err)
	}
	if err := sameEntry(tr.r, "g", "g", other); err != nil {
		t.Errorf("sameEntry of g with g's file: %v", err)
	}
}
