//go:build linux

package target_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/target"
)

// A journaled file renamed by a third party to a name a stream then writes:
// two records name one inode, the old name's (its drop held until a
// checkpoint) and the new one's, longer. The checkpoint deletes the
// segments; the held drop goes only with the next commit that has something
// to do. A kill -9 in between: recovery found no segment, so it cut by
// each record (the longest only if there were segments), and the old,
// shorter record cut the file back over acknowledged bytes.
func TestAttackHeldDropCutsAfterCheckpoint(t *testing.T) {
	dir, d := journalDir(t, "boot-1")
	o := new(owner)
	for i := range 4 {
		s, _, _ := mustAttach(t, d, key("c", i), fmt.Sprintf("h/a%d.log", i), 0, o)
		mustAppend(t, d, s, o, 0, lines(fmt.Sprintf("a%d", i), 0, 10))
	}
	mustCommit(t, d) // four files: journaled, records kept
	// Someone renames h/a0.log to h/b.log; the processor is told to reopen
	// (logrotate's postrotate): a0's record is to be dropped, held.
	if err := os.Rename(filepath.Join(dir, "h/a0.log"), filepath.Join(dir, "h/b.log")); err != nil {
		t.Fatal(err)
	}
	if err := d.Reopen(); err != nil {
		t.Fatal(err)
	}
	// A stream writes b.log: the same inode, recorded again, longer.
	s, at, _ := mustAttach(t, d, key("c", 9), "h/b.log", 0, o)
	mustAppend(t, d, s, o, at, lines("b", 0, 10))
	acks := mustCommit(t, d) // one file: fsynced, recorded, acknowledged
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset == 0 {
		t.Fatalf("b.log's stream not acknowledged: %v", acks)
	}
	want := readFile(t, filepath.Join(dir, "h/b.log"))
	target.Checkpoint(d)
	target.WaitCheckpoint(d) // segments gone; the held drop waits for a commit
	if n := segmentsIn(t, dir); n != 0 {
		t.Fatalf("%d segments after the checkpoint", n)
	}
	playCrash(t, dir, d) // kill -9 while idle
	target.SetJournal(t, 4, "boot-1")
	d = mustOpen(t, dir)
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "h/b.log")); got != want {
		t.Errorf("h/b.log after restart = %d bytes, want the %d acknowledged", len(got), len(want))
	}
}
