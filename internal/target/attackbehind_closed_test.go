//go:build linux

package target_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// closeDirty leaves fixture file i closed with a line written and not
// committed (unsynced): every file is closed idle, the append opens i
// again (descriptors are free), and CloseIdle closes it dirty.
func closeDirty(t *testing.T, fx *behindFixture, i, r int) string {
	t.Helper()
	fx.d.CloseIdle(0)
	committed := fx.want[i]
	fx.add(t, i, r)
	if fx.d.CloseIdle(0) == 0 || openByUs(filepath.Join(fx.dir, behindName(i))) {
		t.Fatalf("%s was not closed with its bytes uncommitted", behindName(i))
	}
	if got := readFile(t, filepath.Join(fx.dir, behindName(i))); got != fx.want[i] {
		t.Fatalf("%s = %q, want %q written", behindName(i), got, fx.want[i])
	}
	return committed
}

// resend re-attaches file i's stream under a new owner, which must resume
// at the committed end of committed, appends line p and commits; it
// returns the new owner's stream.
func resend(t *testing.T, fx *behindFixture, i int, committed, p string) {
	t.Helper()
	o := &owner{"again"}
	s, off, _ := mustAttach(t, fx.d, key("c", i), behindName(i), 0, o)
	if off != uint64(len(committed)) {
		t.Fatalf("%s re-attached at %d, want the committed %d", behindName(i), off, len(committed))
	}
	end := mustAppend(t, fx.d, s, o, off, p)
	acks := mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end {
		t.Fatalf("%s: resent line acked %+v (%v), want %d", behindName(i), a.At, ok, end)
	}
}

// TestAttackBehindReopenAfterCheapOpen: a file closed dirty (unsynced)
// and then opened again by an append, cheaply, kept f.unsynced set though
// it had a descriptor again and everything was committed. After a Reopen
// (or a logrotate that put a new file at the name) the next open took the
// stale flag for "closed with bytes written" and broke the file, outside
// any commit: every append failed with a storage error, for ever.
func TestAttackBehindReopenAfterCheapOpen(t *testing.T) {
	fx := newBehindFixture(t)
	const i = 0
	closeDirty(t, fx, i, 1)
	fx.add(t, i, 2) // opens it again: a descriptor is free
	acks := mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, fx.streams[i]); !ok || a.At.Offset != fx.ends[i] {
		t.Fatalf("ack %+v (%v), want %d", a.At, ok, fx.ends[i])
	}
	if err := fx.d.Reopen(); err != nil {
		t.Fatal(err)
	}
	p := "round 3\n"
	if err := fx.streams[i].Append(fx.o, chunk(fx.ends[i], fx.ends[i]+uint64(len(p)), []byte(p))); err != nil {
		t.Fatalf("append after a Reopen: %v", err)
	}
	fx.ends[i] += uint64(len(p))
	fx.want[i] += p
	acks = mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, fx.streams[i]); !ok || a.At.Offset != fx.ends[i] {
		t.Fatalf("ack after the Reopen %+v (%v), want %d", a.At, ok, fx.ends[i])
	}
	fx.check(t, "after the Reopen", func(i int) string { return fx.want[i] })
	mustClose(t, fx.d)
}

// TestAttackBehindAppendedWhileClosedDirty: another process appends to a
// file closed with bytes uncommitted. The commit's open finds it changed
// and rewinds it; the rewind had already dropped the file's record
// (committed -1) and cut the file to -1: the truncate failed, the file
// stayed broken, and every commit after tried again. The re-attached
// stream's appends failed with a storage error for ever.
func TestAttackBehindAppendedWhileClosedDirty(t *testing.T) {
	fx := newBehindFixture(t)
	const i = 1
	committed := closeDirty(t, fx, i, 1)
	path := filepath.Join(fx.dir, behindName(i))
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("someone else\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	acks := mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, fx.streams[i]); ok {
		t.Fatalf("acked at %d a file changed while closed", a.At.Offset)
	}
	resent := fmt.Sprintf("round 1 of file %02d\n", i)
	resend(t, fx, i, committed, resent)
	got := readFile(t, path)
	if !strings.HasPrefix(got, committed) || strings.Count(got, resent) != 1 {
		t.Fatalf("%s = %q: want the committed %q and the resent line once", behindName(i), got, committed)
	}
	mustClose(t, fx.d)
}

// TestAttackBehindRotatedWhileClosedDirty: logrotate renames a file
// closed with bytes uncommitted. The commit finds another file (or none)
// at the name and rewinds the streams, but cut only what the name holds:
// the renamed file kept the unacknowledged line, and the collector's
// resend put it in the new file too: delivered twice, no crash needed.
// Recovery would have cut it (it looks beside the name); so must the
// rewind.
func TestAttackBehindRotatedWhileClosedDirty(t *testing.T) {
	fx := newBehindFixture(t)
	const i = 2
	committed := closeDirty(t, fx, i, 1)
	path := filepath.Join(fx.dir, behindName(i))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	acks := mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, fx.streams[i]); ok {
		t.Fatalf("acked at %d a file renamed while closed", a.At.Offset)
	}
	resent := fmt.Sprintf("round 1 of file %02d\n", i)
	resend(t, fx, i, committed, resent)
	all := readFile(t, path+".1") + readFile(t, path)
	if n := strings.Count(all, resent); n != 1 {
		t.Fatalf("the line is in the target %d times: %s.1 = %q, %s = %q", n, path, readFile(t, path+".1"), path, readFile(t, path))
	}
	mustClose(t, fx.d)
}

// TestAttackBehindSymlinkWhileClosedDirty: the name of a file closed with
// bytes uncommitted is made a symbolic link (the file renamed beside it).
// The commit's open is refused, the rewind's cut by name too, and it was
// retried at every commit, the file broken for ever; the renamed file
// kept the unacknowledged line.
func TestAttackBehindSymlinkWhileClosedDirty(t *testing.T) {
	fx := newBehindFixture(t)
	const i = 3
	committed := closeDirty(t, fx, i, 1)
	path := filepath.Join(fx.dir, behindName(i))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(path)+".1", path); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, fx.d)
	if got := readFile(t, path+".1"); got != committed {
		t.Fatalf("the renamed file kept what was not acknowledged: %q, want %q", got, committed)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	resend(t, fx, i, committed, fmt.Sprintf("round 1 of file %02d\n", i))
	mustClose(t, fx.d)
}

// TestAttackBehindReopenClosedDirty: SIGHUP while a file is closed with
// bytes uncommitted and still at its name. Reopen dropped its record
// (committed -1) before its commit; the commit's open then took the file
// for replaced, and the rewind cut it to -1, which failed: broken for
// ever. What was written before the Reopen belongs in the file there.
func TestAttackBehindReopenClosedDirty(t *testing.T) {
	fx := newBehindFixture(t)
	const i = 4
	closeDirty(t, fx, i, 1)
	acks, err := target.ReopenAcks(fx.d)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ackFor(t, acks, fx.streams[i]); !ok || a.At.Offset != fx.ends[i] {
		t.Fatalf("Reopen acked %+v (%v), want %d", a.At, ok, fx.ends[i])
	}
	fx.add(t, i, 2)
	mustCommit(t, fx.d)
	fx.check(t, "after the Reopen", func(i int) string { return fx.want[i] })
	crash(t, fx.d, fx.dir)
	d := mustOpen(t, fx.dir)
	fx.check(t, "after a crash", func(i int) string { return fx.want[i] })
	mustClose(t, d)
}

// TestAttackBehindReplacedDuringItsCommit: a commit writes and syncs a
// file closed dirty, records it and acknowledges its streams; meanwhile
// logrotate moved it and an append found the new file at the name, which
// broke f. The commit then left f.committed behind what it had recorded
// (it skips a broken file), and the rewind cut the moved file back to
// that: acknowledged lines gone from the target. (Before the rewind cut
// moved files, f stayed broken for ever instead: the append that broke it
// did not queue it for the commit that rewinds it.)
func TestAttackBehindReplacedDuringItsCommit(t *testing.T) {
	fx := newBehindFixture(t)
	const i = 5
	closeDirty(t, fx, i, 1)
	path := filepath.Join(fx.dir, behindName(i))
	acked := fx.want[i]
	p := []byte("round 2\n")
	var appendErr error
	fired := false
	target.SetSyncfs(t, func(fd int) error {
		if !fired {
			fired = true
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			appendErr = fx.streams[i].Append(fx.o, chunk(fx.ends[i], fx.ends[i]+uint64(len(p)), p))
		}
		return unix.Syncfs(fd)
	})
	acks := mustCommit(t, fx.d)
	if !fired {
		t.Fatal("the commit did not use syncfs")
	}
	t.Logf("append during the commit: %v", appendErr)
	a, ok := ackFor(t, acks, fx.streams[i])
	if !ok || a.At.Offset != fx.ends[i] {
		t.Fatalf("ack %+v (%v), want %d", a.At, ok, fx.ends[i])
	}
	mustCommit(t, fx.d)
	if got := readFile(t, path+".1"); got != acked {
		t.Fatalf("the moved file = %q, acknowledged %q", got, acked)
	}
	if got := readFile(t, path); strings.Contains(got, fmt.Sprintf("file %02d", i)) {
		t.Fatalf("the new file = %q", got)
	}
	resend(t, fx, i, acked, string(p))
	if got := readFile(t, path); got != string(p) {
		t.Fatalf("the new file after the resend = %q", got)
	}
	mustClose(t, fx.d)
}
