package target_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/target"
)

// openFDs counts this process's descriptors open on files under dir.
func openFDs(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot read /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(p, dir+"/") && !strings.Contains(p, ".thunder") {
			n++
		}
	}
	return n
}

func TestCloseIdle(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	const files, max = 40, 16
	ends := make([]uint64, files)
	streams := make([]any, files)
	for i := range files {
		s, _, _ := mustAttach(t, d, key("c", i), fmt.Sprintf("f%02d.log", i), 0, o)
		streams[i] = s
		ends[i] = mustAppend(t, d, s, o, 0, lines("a", 0, 3))
	}
	// Files with uncommitted bytes are closed only where the commit can
	// sync them without a descriptor (syncfs: behind.go); their streams
	// are acknowledged all the same.
	n := d.CloseIdle(max)
	switch {
	case target.WritesBehind(d) && (n == 0 || openFDs(t, dir) > max):
		t.Errorf("CloseIdle with uncommitted data closed %d files, leaving %d open, want at most %d", n, openFDs(t, dir), max)
	case !target.WritesBehind(d) && n != 0:
		t.Errorf("CloseIdle with uncommitted data closed %d files, want 0", n)
	}
	acks := mustCommit(t, d)
	for i := range files {
		if a, ok := ackFor(t, acks, streams[i].(*target.Stream)); !ok || a.At.Offset != ends[i] {
			t.Fatalf("f%02d.log: ack %+v (found %v), want %d", i, a.At, ok, ends[i])
		}
	}
	for i := range files { // every file open again
		ends[i] = mustAppend(t, d, streams[i].(*target.Stream), o, ends[i], lines("a", 3, 1))
	}
	mustCommit(t, d)
	if got := openFDs(t, dir); got != files {
		t.Fatalf("open target files before CloseIdle = %d, want %d", got, files)
	}
	closed := d.CloseIdle(max)
	if got := openFDs(t, dir); got > max || closed != files-got {
		t.Errorf("after CloseIdle(%d): %d open, %d closed", max, got, closed)
	}
	// Appends reopen the files; content stays exact.
	for i := range files {
		mustAppend(t, d, streams[i].(*target.Stream), o, ends[i], lines("b", 0, 2))
	}
	mustCommit(t, d)
	for i := range files {
		want := lines("a", 0, 4) + lines("b", 0, 2)
		if got := readFile(t, filepath.Join(dir, fmt.Sprintf("f%02d.log", i))); got != want {
			t.Errorf("f%02d.log = %q, want %q", i, got, want)
		}
	}
}
