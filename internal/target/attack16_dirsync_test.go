//go:build unix

package target_test

import (
	"os"
	"testing"

	"thunder/internal/target"
)

// TestDirSyncFailureNotAcknowledged: a commit that cannot fsync the
// directory a new target file was created in (the process out of
// descriptors, which issue 16 is about, or an I/O error) must not
// acknowledge the file's data: after a crash the file may be gone with its
// entry, and the collector may have deleted its source once acknowledged.
// The commit reported the error but handed out the acknowledgements
// anyway.
func TestDirSyncFailureNotAcknowledged(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "new/f.log", 0, o)
	end := mustAppend(t, d, s, o, 0, lines("line", 0, 3)) // creates new/ and new/f.log

	restore := lowerNofile(t, 64)
	target.SpendReserve(d) // spent by a shortage that lasts
	var hogs []*os.File    // every descriptor left
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		hogs = append(hogs, f)
	}
	acks, err := d.Commit()
	for _, f := range hogs {
		f.Close()
	}
	restore()
	t.Logf("commit out of descriptors: %d acks, %v", len(acks), err)
	if err == nil {
		t.Fatal("the commit found a descriptor for the directories")
	}
	if a, ok := ackFor(t, acks, s); ok {
		t.Errorf("acknowledged up to %d while the directory holding the new file was not synced", a.At.Offset)
	}
	acks = mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end {
		t.Errorf("once the directory syncs: ack %v, want up to %d", a.At, end)
	}
}
