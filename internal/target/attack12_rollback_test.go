package target_test

import (
	"path/filepath"
	"testing"

	"thunder/internal/digest"
	"thunder/internal/stream"
)

// Attack 12: the processor's state store is rolled back to an older copy
// (a backup restored, a snapshot of the state volume only) while the target
// files keep everything. Recovery trusts the old file record and cuts the
// target file back to its old length, destroying bytes that were committed
// and acknowledged (the collector may have deleted their source since).
// The collector then opens the stream at its acknowledged offset with its
// digest, the processor moves the stream forward to it (as for a failover),
// the Opened digest is the collector's own, and the ledger, rolled back
// with the cut, agrees with the file: nobody reported the lost bytes. Now
// the commit generation beside the state (generation.go) shows the state
// older than the last commit, and recovery cuts nothing.
func TestAttack12StateRollbackLossUndetected(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	k := key("c", 1)
	s, o, off := writeCommitted(t, d, k, "a.log", 100<<10)
	old := snapshotState(t, dir) // the copy that will be restored; a.log's record is in it
	p := payload(10 << 10)
	end := off
	for range 10 {
		end = mustAppend(t, d, s, o, end, string(p))
	}
	mustCommit(t, d) // acknowledged up to end: the collector may delete its source now
	acked := readFile(t, filepath.Join(dir, "a.log"))
	if int64(len(acked)) != int64(end) {
		t.Fatalf("a.log holds %d bytes, want %d", len(acked), end)
	}
	crash(t, d, dir)            // kill -9
	restoreStateDB(t, dir, old) // and the state store comes back from the older copy

	d = mustOpen(t, dir)
	// The collector reconnects with its acknowledged offset and digest.
	s2, at, _, err := d.Attach(k, mustName(t, "a.log"), stream.Mark{Offset: end, Digest: digest.Checksum([]byte(acked))}, o)
	if err != nil {
		t.Fatalf("Attach at the acknowledged offset: %v", err)
	}
	_ = s2
	got := readFile(t, filepath.Join(dir, "a.log"))
	_, sum := verifyAll(t, d)
	if len(got) < len(acked) && at.Offset == end && sum.OK() {
		t.Fatalf("%d acknowledged bytes cut from a.log (holds %d of %d) after a state rollback, the stream moved forward to %d and verify says ok: the loss is reported nowhere",
			len(acked)-len(got), len(got), len(acked), at.Offset)
	}
}
