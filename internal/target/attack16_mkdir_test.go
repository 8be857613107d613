package target_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"thunder/internal/target"
)

// TestDirCreatedByAFailedOpenIsSynced: an open that makes a directory and
// the file, then fails (its record cannot be written; or the process runs
// out of descriptors after the mkdir, issue 16's case) left the directory
// entries unsynced for good: the next open finds the file there, and no
// directory is fsynced. A crash could then lose the directory, and the
// acknowledged file in it.
func TestDirCreatedByAFailedOpenIsSynced(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "new/f.log", 0, o)
	target.BreakState(d)
	p := []byte("line\n")
	err := s.Append(o, chunk(0, uint64(len(p)), p))
	if _, serr := os.Stat(filepath.Join(dir, "new/f.log")); err == nil || serr != nil {
		t.Fatalf("the open did not fail after making the file: %v, %v", err, serr)
	}
	t.Logf("append with the state store failing: %v", err)
	dirs := target.DirsToSync(d)
	for _, want := range []string{".", "new"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("the next commit fsyncs %q, not %q whose entries the failed open changed", dirs, want)
		}
	}
}
