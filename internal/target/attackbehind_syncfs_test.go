//go:build linux

package target_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// TestAttackBehindSyncfsErrorOfAFileClosedDirty is
// TestSyncfsErrorOfAFileNotInTheCommit for a file that write-behind closed
// with its bytes uncommitted. z is appended after a commit's snapshot and
// closed dirty (CloseIdle) before the commit's syncfs, which reports z's
// failed writeback; the commit's own files are fine. syncfsFailed had
// only the open files fsynced next time ("a file written since is open
// now": no longer true), so z's next commit trusted a syncfs, which
// reports nothing more, and acknowledged bytes the disk never got.
func TestAttackBehindSyncfsErrorOfAFileClosedDirty(t *testing.T) {
	defer target.SetSyncfsMin(target.SetSyncfsMin(1)) // the commit of a alone uses syncfs
	dir, fillBacking, freeBacking := failingExt4Free(t)
	d, logs := openLogged(t, dir)
	if !target.WritesBehind(d) {
		t.Skip("no write-behind on this kernel")
	}
	oa, oz := &owner{"a"}, &owner{"z"}
	sa, _, _ := mustAttach(t, d, key("a", 1), "a.log", 0, oa)
	sz, _, _ := mustAttach(t, d, key("z", 1), "z.log", 0, oz)
	endA := mustAppend(t, d, sa, oa, 0, lines("a", 0, 10))
	zOK := lines("z", 0, 10)
	endZ := mustAppend(t, d, sz, oz, 0, zOK)
	mustCommit(t, d)

	endA = mustAppend(t, d, sa, oa, endA, lines("a", 10, 10))
	flushPath(t, filepath.Join(dir, "a.log"))
	fillBacking()
	zLost := lines(strings.Repeat("lost", 40), 10, 30000) // ~5 MiB: more than the full backing store takes
	endZLost := endZ + uint64(len(zLost))
	var zWriteback error
	closed := 0
	fired := false
	target.SetSyncfs(t, func(fd int) error {
		if fired {
			return unix.Syncfs(fd)
		}
		fired = true
		mustAppend(t, d, sz, oz, endZ, zLost)
		closed = d.CloseIdle(0) // z, dirty; a is being synced
		// z's writeback, as the kernel's flusher would do it: through no
		// descriptor of z's, so z's own error stays unseen.
		other, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		zWriteback = unix.Syncfs(int(other.Fd()))
		other.Close()
		return unix.Syncfs(fd)
	})
	acks, err := d.Commit()
	if zWriteback == nil || !strings.Contains(logs.String(), "syncfs of the target file system failed") {
		t.Skipf("z's writeback did not fail (%v) or syncfs did not report it", zWriteback)
	}
	if closed == 0 || openByUs(filepath.Join(dir, "z.log")) {
		t.Fatal("z was not closed with its bytes uncommitted")
	}
	t.Logf("commit with a failed syncfs: %d acks, %v", len(acks), err)
	freeBacking()

	mustAppend(t, d, sa, oa, endA, lines("a", 20, 10))
	acks, err = d.Commit()
	t.Logf("next commit: %d acks, %v", len(acks), err)
	if a, ok := ackFor(t, acks, sz); ok && a.At.Offset == endZLost {
		t.Errorf("z acknowledged up to %d after the writeback of its last %d bytes failed", a.At.Offset, len(zLost))
	}
}
