//go:build linux

package target_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/target"
)

// Attacks by an independent reviewer of the issue 11 fixes. Each test
// states what it tries; each broke the first version of those fixes, and a
// failure is a broken promise. (Two more found limits that are documented
// instead, in PROTOCOL §8: bytes another process appends to a quiet target
// file, or a truncation by another process, between a commit and a crash.)

// RT1: a file record is kept across an idle close (CloseIdle), but the
// file's inode is released from the "opened" map at once. A second name
// for the same inode (a hard link, a bind mount, or a logrotate rename to
// a name another stream writes) can then be claimed and written. Both
// records stay in the state; after kill -9 recovery cuts the inode back to
// the *first* name's stale length: acknowledged bytes of the second name
// are lost.
func TestRTIdleClosedSecondName(t *testing.T) {
	cases := []struct {
		name  string
		first string
		other string
		make  func(t *testing.T, dir string)
	}{
		{"hard link", "a.log", "b.log", func(t *testing.T, dir string) {
			if err := os.Link(filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")); err != nil {
				t.Fatal(err)
			}
		}},
		{"logrotate rename", "a.log", "a.log.1", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "a.log"), filepath.Join(dir, "a.log.1")); err != nil {
				t.Fatal(err)
			}
		}},
		{"bind mount", "x/a.log", "y/a.log", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("bind mount needs root")
			}
			if err := os.Mkdir(filepath.Join(dir, "y"), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mount", "--bind", filepath.Join(dir, "x"), filepath.Join(dir, "y")).CombinedOutput(); err != nil {
				t.Skipf("bind mount: %v %s", err, out)
			}
			t.Cleanup(func() { _ = syscall.Unmount(filepath.Join(dir, "y"), syscall.MNT_DETACH) })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			d := mustOpen(t, dir)
			o := &owner{"c"}
			s1, _, _ := mustAttach(t, d, key("c", 1), c.first, 0, o)
			first := lines("first", 0, 10)
			mustAppend(t, d, s1, o, 0, first)
			mustCommit(t, d)
			if n := d.CloseIdle(0); n != 1 {
				t.Fatalf("CloseIdle(0) = %d, want 1", n)
			}
			c.make(t, dir)
			s2, off, _ := mustAttach(t, d, key("c", 2), c.other, 0, o)
			second := lines("second", 0, 50)
			err := s2.Append(o, chunk(off, off+uint64(len(second)), []byte(second)))
			if errors.Is(err, target.ErrName) {
				// Refused while the first name's record claims the inode:
				// nothing can be cut by it later. Check that it holds.
				crash(t, d, dir)
				mustClose(t, mustOpen(t, dir))
				if got := readFile(t, filepath.Join(dir, c.other)); got != first {
					t.Errorf("after kill -9 and restart, %s = %d bytes, want the %d committed", c.other, len(got), len(first))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			end := off + uint64(len(second))
			acks := mustCommit(t, d)
			if a, ok := ackFor(t, acks, s2); !ok || a.At.Offset != end {
				t.Fatalf("second stream not acked at %d: %v", end, acks)
			}
			want := first + second
			if got := readFile(t, filepath.Join(dir, c.other)); got != want {
				t.Fatalf("before crash %s = %d bytes, want %d", c.other, len(got), len(want))
			}
			crash(t, d, dir)
			mustClose(t, mustOpen(t, dir))
			if got := readFile(t, filepath.Join(dir, c.other)); got != want {
				t.Errorf("after kill -9 and restart, %s = %d bytes, want %d: recovery cut %d ACKNOWLEDGED bytes by the stale record of %s",
					c.other, len(got), len(want), len(want)-len(got), c.first)
			}
		})
	}
}

// RT2: the rename wait (defect 4) only takes the stream from its old owner
// when it finds bytes pending. If the stream is settled at that moment, the
// old owner keeps it until bindLocked reads prev.committed (after a bolt
// read); an append from the old connection in that window lands in the
// old name uncommitted, and the new name starts below it: the collector
// resends those bytes into the new name, so they are in both files.
func TestRTRenameRaceWithOldOwner(t *testing.T) {
	hits := 0
	for trial := 0; trial < 300 && hits == 0; trial++ {
		dir := t.TempDir()
		d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		k := key("c", 1)
		o1, o2 := &owner{"old"}, &owner{"new"}
		s, _, _ := mustAttach(t, d, k, "one.log", 0, o1)
		var wg sync.WaitGroup
		start := make(chan struct{})
		var appended uint64
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			off := uint64(0)
			p := []byte("line of the old connection\n")
			for i := 0; i < 200; i++ {
				if err := s.Append(o1, chunk(off, off+uint64(len(p)), p)); err != nil {
					if !errors.Is(err, target.ErrNotOwner) {
						t.Errorf("append: %v", err)
					}
					break
				}
				off += uint64(len(p))
				if i%2 == 1 {
					if _, err := d.Commit(); err != nil {
						t.Errorf("commit: %v", err)
					}
				}
			}
			appended = off
		}()
		close(start)
		for i := 0; i < trial%50; i++ {
			_ = i
		}
		stop := make(chan struct{})
		committer := make(chan struct{})
		go func() { // the processor's commit loop, so a waiting Attach settles
			defer close(committer)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = d.Commit()
				time.Sleep(time.Millisecond)
			}
		}()
		_, newOff, _, err := attachAt(d, k, mustName(t, "two.log"), 0, o2)
		wg.Wait()
		close(stop)
		<-committer
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "one.log"))
		inOne := uint64(len(b))
		_ = appended
		if newOff < inOne {
			hits++
			t.Errorf("trial %d: Attach(two.log) answered offset %d, but one.log holds %d bytes of the stream (committed): the collector resends [%d,%d) into two.log, %d bytes in both names",
				trial, newOff, inOne, newOff, inOne, inOne-newOff)
		}
	}
}

// RT3: a failed write is cut back with Truncate(f.size), f.size being what
// the processor believes the file holds. After a foreign truncation (e.g.
// logrotate copytruncate) f.size is larger than the file, and the "cut
// back" extends the file with NUL bytes: a target file with a block of
// zeros, which is neither a line nor anything anyone wrote.
func TestRTShortWriteAfterForeignTruncate(t *testing.T) {
	mnt := harness.MountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "target")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	good := lines("good", 0, 1000)
	end := mustAppend(t, d, s, o, 0, good)
	mustCommit(t, d)
	name := filepath.Join(dir, "x.log")
	// copytruncate: the file is copied away and truncated to 0.
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mnt, "gap"), string(make([]byte, 8<<10)))
	fill(t, filepath.Join(mnt, "filler"))
	if err := os.Remove(filepath.Join(mnt, "gap")); err != nil {
		t.Fatal(err)
	}
	big := lines("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 0, 1000)
	err := s.Append(o, chunk(end, end+uint64(len(big)), []byte(big)))
	if !errors.Is(err, target.ErrStorage) {
		t.Fatalf("Append on a full disk = %v, want ErrStorage", err)
	}
	b, _ := os.ReadFile(name)
	zeros := 0
	for _, c := range b {
		if c == 0 {
			zeros++
		}
	}
	if zeros > 0 {
		t.Errorf("x.log after a failed append = %d bytes, %d of them NUL: the cut-back after a short write extended the truncated file to the processor's stale size", len(b), zeros)
	}
}

// RT6: a stream renamed away (Attach under a new name) is unbound from its
// old file; the commit's evictLocked returns early for it
// (d.streams[key] != s), so the old file is never removed from d.files and
// keeps its descriptor (and its record) for the processor's life. A
// collector that renames a stream N times leaves N open files.
func TestRTRenameLeaksOldFile(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	k := key("c", 1)
	o := &owner{"c"}
	fds := openFDs(t, dir)
	var off uint64
	const n = 20
	for i := 0; i < n; i++ {
		s, got, _ := mustAttach(t, d, k, filepath.Join("r", string(rune('a'+i))+".log"), 0, o)
		if got != off {
			t.Fatalf("rename %d: offset %d, want %d", i, got, off)
		}
		off = mustAppend(t, d, s, o, off, lines("x", i, 1))
		mustCommit(t, d)
	}
	mustCommit(t, d)
	files, streams, opened := d.Counts()
	leaked := openFDs(t, dir) - fds
	t.Logf("after %d renames of one stream: files=%d streams=%d opened=%d, extra fds=%d", n, files, streams, opened, leaked)
	if files > 1 || opened > 1 || leaked > 1 {
		t.Errorf("one stream renamed %d times holds files=%d opened=%d and %d descriptors; want 1 each", n, files, opened, leaked)
	}
}

// RT9: a foreign truncation of bytes not yet committed is treated as "its
// length is what it is": the commit records the shorter length and
// acknowledges the stream's offset, though the bytes it acknowledges are in
// no file. A deletion, by contrast, rewinds the stream so they are resent.
func TestRTForeignTruncateAcksMissingBytes(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	end := mustAppend(t, d, s, o, 0, lines("committed", 0, 10))
	mustCommit(t, d)
	x := lines("pending", 0, 10)
	end2 := mustAppend(t, d, s, o, end, x)
	name := filepath.Join(dir, "x.log")
	if err := os.Truncate(name, int64(end)); err != nil { // cut exactly the pending bytes
		t.Fatal(err)
	}
	acks := mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); ok && a.At.Offset == end2 {
		if got := readFile(t, name); !strings.Contains(got, x) {
			t.Errorf("commit acknowledged offset %d, but the %d bytes [%d,%d) it acknowledges are not in x.log (%d bytes): they were truncated away by another process before the commit, which saw it (fstat size < written) and acked anyway",
				a.At.Offset, len(x), end, end2, len(got))
		}
	}
}

// RT7: a rename waits for the old name's bytes to settle; with the state
// store failing every commit, the wait must end (timeout or Close), Close
// must not hang, and an Append after Close must not write.
func TestRTRenameWaitFailingStateThenClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chattr needs root")
	}
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o1, o2 := &owner{"old"}, &owner{"new"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "one.log", 0, o1)
	end := mustAppend(t, d, s, o1, 0, lines("a", 0, 5))
	mustCommit(t, d)
	// A second stream, dirty by acked alone (no bytes): size == committed.
	s2, _, _ := mustAttach(t, d, key("c", 2), "two.log", 0, o1)
	mustAppend(t, d, s2, o1, 0, "x\n")
	mustCommit(t, d)
	mustAppend(t, d, s, o1, end, lines("b", 0, 5))
	if out, err := exec.Command("chattr", "+i", statePath(dir)).CombinedOutput(); err != nil {
		t.Skipf("chattr: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", statePath(dir)).Run() })
	if _, err := d.Commit(); err == nil {
		t.Skip("commit did not fail with an immutable state store")
	}
	s2, _, _ = mustAttach(t, d, key("c", 2), "two.log", 1000, o1) // dirty, no bytes
	done := make(chan error, 1)
	go func() {
		_, _, _, err := attachAt(d, k, mustName(t, "three.log"), 0, o2)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Attach under a new name returned %v before the old bytes settled", err)
	case <-time.After(500 * time.Millisecond):
	}
	closed := make(chan error, 1)
	go func() { err := d.Close(); closed <- err }()
	select {
	case err := <-done:
		t.Logf("Attach after Close: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Attach still waiting 5 s after Close")
	}
	select {
	case err := <-closed:
		t.Logf("Close: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	fds := openFDs(t, dir)
	err := s2.Append(o1, chunk(1000, 1002, []byte("y\n")))
	t.Logf("Append after Close = %v", err)
	if err == nil {
		t.Errorf("Append after Close succeeded: it wrote to two.log with the state store closed")
	}
	if n := openFDs(t, dir); n > fds {
		t.Errorf("Append after Close left %d descriptors open on target files", n-fds)
	}
}

// RT10: recovery treats any error opening a recorded name, other than "not
// there" and name problems, as fatal: the processor does not start. A file
// that is not the recorded one but cannot be opened for writing (immutable,
// on a read-only bind mount, a running executable: EPERM, EROFS, ETXTBSY)
// at a recorded name keeps the processor down, though the recorded file is
// right beside it (logrotate moved it) and the name's file is not its to cut.
func TestRTRecoveryUnwritableStrangerBlocksStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chattr needs root")
	}
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	end := mustAppend(t, d, s, o, 0, lines("a", 0, 10))
	mustCommit(t, d)
	mustAppend(t, d, s, o, end, lines("uncommitted", 0, 10))
	crash(t, d, dir)
	name := filepath.Join(dir, "x.log")
	if err := os.Rename(name, name+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, name, "someone else's file\n")
	if out, err := exec.Command("chattr", "+i", name).CombinedOutput(); err != nil {
		t.Skipf("chattr: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", name).Run() })
	d2, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Errorf("Open after kill -9 = %v: the processor cannot start because a file it has no business cutting is at a recorded name", err)
		return
	}
	d2.Close()
}

// RT12: Close(done) queues the stream's record for deletion at the next
// commit. If the stream is opened again and written before that commit,
// the commit records its new offset and then deletes the record in the
// same transaction: the stream's committed offset is gone from the state
// while its bytes are acknowledged. After a restart Opened answers the
// collector's own (possibly lagging) acked offset, and the resend
// duplicates [acked, committed).
func TestRTForgetThenReopenLosesRecord(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	k := key("c", 1)
	o1, o2 := &owner{"c1"}, &owner{"c2"}
	s, _, _ := mustAttach(t, d, k, "x.log", 0, o1)
	end := mustAppend(t, d, s, o1, 0, lines("first", 0, 10))
	mustCommit(t, d)
	s.Forget(o1) // Close(done)
	s, off, _ := mustAttach(t, d, k, "x.log", 0, o2)
	if off != end {
		t.Fatalf("re-Open offset %d, want %d", off, end)
	}
	end2 := mustAppend(t, d, s, o2, off, lines("second", 0, 10))
	acks := mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end2 {
		t.Fatalf("not acked: %v", acks)
	}
	crash(t, d, dir)
	d = mustOpen(t, dir)
	_, off, committed, err := attachAt(d, k, mustName(t, "x.log"), end, o1) // the collector's offsets DB lags one ack
	if err != nil {
		t.Fatal(err)
	}
	if off != end2 {
		t.Errorf("after restart Opened offset=%d committed=%d, want %d: the record of the acknowledged offset was deleted by the Forget queued before the re-Open; the collector resends [%d,%d) again", off, committed, end2, off, end2)
	}
}

// RT12b: the same without any restart: the re-opened stream's connection
// drops (Detach evicts the committed stream), it reconnects, and Attach
// reads the deleted record.
func TestRTForgetThenReopenNoRestart(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	k := key("c", 1)
	o1, o2, o3 := &owner{"c1"}, &owner{"c2"}, &owner{"c3"}
	s, _, _ := mustAttach(t, d, k, "x.log", 0, o1)
	end := mustAppend(t, d, s, o1, 0, lines("first", 0, 10))
	mustCommit(t, d)
	s.Forget(o1)
	s, off, _ := mustAttach(t, d, k, "x.log", 0, o2)
	end2 := mustAppend(t, d, s, o2, off, lines("second", 0, 10))
	mustCommit(t, d)
	s.Detach(o2) // connection cut
	_, off, _ = mustAttach(t, d, k, "x.log", end, o3)
	if off != end2 {
		t.Errorf("reconnect: Opened offset=%d, want %d: the collector resends [%d,%d), already in x.log", off, end2, off, end2)
	}
}

// RT13: two Attach calls for one stream under two new names (two
// connections of one collector, e.g. a reconnect racing a rename). Attach
// binds under d.mu, releases it, then sets the owner under f.mu; in
// between the other Attach can rebind the stream elsewhere (it is settled,
// so settledLocked does not wait) and unbind the first one. The first
// caller then owns an orphan Stream that still appends to its file and is
// committed and acknowledged; both callers got the same offset, so the
// same source bytes land in both names.
func TestRTConcurrentAttachTwoNames(t *testing.T) {
	for trial := 0; trial < 500; trial++ {
		dir := t.TempDir()
		d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		k := key("c", 1)
		var wg sync.WaitGroup
		var errs [2]error
		var offs [2]uint64
		for i, name := range []string{"two.log", "three.log"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := &owner{name}
				s, off, _, err := attachAt(d, k, mustName(t, name), 0, o)
				if err != nil {
					errs[i] = err
					return
				}
				offs[i] = off
				errs[i] = s.Append(o, chunk(off, off+5, []byte("same\n")))
			}()
		}
		stop := make(chan struct{})
		committed := make(chan struct{})
		go func() { // the processor's commit loop
			defer close(committed)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = d.Commit()
				time.Sleep(time.Millisecond)
			}
		}()
		wg.Wait()
		close(stop)
		<-committed
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(filepath.Join(dir, "two.log"))
		b, _ := os.ReadFile(filepath.Join(dir, "three.log"))
		if len(a) > 0 && len(b) > 0 && offs[0] == offs[1] && errs[0] == nil && errs[1] == nil {
			t.Fatalf("trial %d: both Attach calls answered offset %d and both appends succeeded: the stream's bytes [%d,%d) are in both two.log (%q) and three.log (%q)", trial, offs[0], offs[0], offs[0]+5, a, b)
		}
	}
}
