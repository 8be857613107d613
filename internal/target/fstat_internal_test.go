//go:build unix

package target

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFstatInfo runs on Linux the fstat(2) look that macOS and FreeBSD
// use instead of statx: it must see the same inode, size, links and type.
func TestFstatInfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte("one\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // read-only
	want, err := statFD(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fstatInfo(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if !got.id.sameInode(want.id) || got.size != want.size || got.nlink != want.nlink || got.mode != want.mode || !got.regular() {
		t.Errorf("fstatInfo = %+v, statFD = %+v: want the same inode, size 8, 2 links, a regular file", got, want)
	}
	// Without a handle (there is none on these systems) only the birth time
	// proves a file the same; Linux's stat has none, so nothing is proven.
	if got.id.provable() || got.id.sameFile(got.id) {
		t.Errorf("fstatInfo id %+v provable on Linux, want not (no birth time in stat)", got.id)
	}
	bsd := fileID{Dev: got.id.Dev, Ino: got.id.Ino, Btime: 1}
	if !bsd.sameFile(bsd) || bsd.sameFile(fileID{Dev: bsd.Dev, Ino: bsd.Ino, Btime: 2}) {
		t.Errorf("sameFile by birth time alone: want true for the same, false for another")
	}
}
