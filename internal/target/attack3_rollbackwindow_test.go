package target_test

import (
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/digest"
	"thunder/internal/stream"
)

// Attack 3 on the commit generation: recovery after a rollback drops every
// file record, but leaves the state's count below the file's. Until the
// next commit every start sees the rollback again, so records written
// afresh since (the first opens of files) are not cut either: a plain
// kill -9 before that commit leaves unacknowledged bytes in the target
// file, and the collectors' resend duplicates them.

// rollbackWindow kills the processor after appends that no commit
// acknowledged, on a state the generation says is behind, and checks that
// the next start cuts them.
func rollbackWindow(t *testing.T, dir string, acked string) {
	t.Helper()
	d := mustOpen(t, dir)
	k := key("c", 1)
	o := &owner{"a.log"}
	end := uint64(len(acked))
	s, at, _, err := d.Attach(k, mustName(t, "a.log"), stream.Mark{Offset: end, Digest: digest.Checksum([]byte(acked))}, o)
	if err != nil || at.Offset != end {
		t.Fatalf("Attach at the acknowledged offset %d = %d, %v", end, at.Offset, err)
	}
	mustAppend(t, d, s, o, end, string(payload(10<<10))) // opens a.log: recorded at len(acked)
	crash(t, d, dir)                                     // kill -9 before any commit

	mustOpen(t, dir)
	if got := readFile(t, filepath.Join(dir, "a.log")); len(got) != len(acked) {
		t.Fatalf("a.log holds %d bytes after a crash, want its %d acknowledged: %d unacknowledged bytes not cut, the resend duplicates them",
			len(got), len(acked), len(got)-len(acked))
	}
}

func TestAttack3RollbackSeenAgainAfterRecovery(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 100<<10)
	old := snapshotState(t, dir)
	mustAppend(t, d, s, o, off, string(payload(10<<10)))
	mustCommit(t, d)
	crash(t, d, dir)
	restoreStateDB(t, dir, old) // rolled back: the next start cuts nothing

	d = mustOpen(t, dir) // sees the rollback, drops the records
	acked := readFile(t, filepath.Join(dir, "a.log"))
	mustClose(t, d) // a clean stop with nothing to commit

	rollbackWindow(t, dir, acked)
}

func TestAttack3StateStoreRemoved(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	writeCommitted(t, d, key("c", 1), "a.log", 100<<10)
	mustClose(t, d)
	// The operator resets the state; the generation file stays.
	if err := os.Remove(statePath(dir)); err != nil {
		t.Fatal(err)
	}
	rollbackWindow(t, dir, readFile(t, filepath.Join(dir, "a.log")))
}

// The fix must keep the high-water mark: the same old copy restored a
// second time, before any commit, is still a rollback.
func TestAttack3SameCopyRestoredTwice(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 100<<10)
	old := snapshotState(t, dir)
	mustAppend(t, d, s, o, off, string(payload(10<<10)))
	mustCommit(t, d)
	crash(t, d, dir)
	acked := readFile(t, filepath.Join(dir, "a.log"))
	restoreStateDB(t, dir, old)
	mustClose(t, mustOpen(t, dir)) // sees it, cuts nothing
	restoreStateDB(t, dir, old)    // and again

	mustOpen(t, dir)
	if got := readFile(t, filepath.Join(dir, "a.log")); len(got) != len(acked) {
		t.Fatalf("a.log holds %d bytes after the same old state was restored twice, want its %d acknowledged", len(got), len(acked))
	}
}
