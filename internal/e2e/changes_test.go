//go:build unix

package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// TestLogrotateRenameCreate rotates a file the way logrotate's default
// (rename + create) does, three times, while writers keep appending to it
// by name: rm a.log.2; mv a.log.1 a.log.2; mv a.log a.log.1; create a.log.
// A renamed file keeps its target name, so every line reaches a.log.
func TestLogrotateRenameCreate(t *testing.T) {
	skipShort(t)
	const lines, rate = 10_000, 2_000
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	a := filepath.Join(src, "a.log")
	w := startWriters(t)
	w.addWriters(src,
		linecheck.Writer{ID: "owc1", Path: a, Contract: linecheck.OpenWriteClose, Lines: lines, Rate: rate},
		linecheck.Writer{ID: "owc2", Path: a, Contract: linecheck.OpenWriteClose, Lines: lines, Rate: rate},
		linecheck.Writer{ID: "lock", Path: a, Contract: linecheck.LockedAppend, Lines: lines, Rate: rate, ReopenAfter: 300 * time.Millisecond},
	)
	const rotations = 3
	for i := range rotations {
		pause(t, time.Second)
		if err := os.Remove(a + ".2"); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.Rename(a+".1", a+".2"); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.Rename(a, a+".1"); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(a, os.O_WRONLY|os.O_CREATE, 0o644) // logrotate's "create"
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("logrotate %d: a.log renamed to a.log.1 and created again", i+1)
	}
	expect := w.Wait()
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	if names := targetFiles(t, target); !slices.Equal(names, []string{"a.log"}) {
		t.Errorf("target holds %v, want only a.log", names)
	}
	t.Logf("figures: lines=%d logrotates=%d streams=%d", r.Lines, rotations, logCount(c, "new stream"))
}

// TestCopytruncate rotates a file the way logrotate's copytruncate does:
// copy a.log to a.log.N in the source dir, then truncate a.log in place.
//
// Copytruncate cannot be made exact by any reader, because of its own
// window between the copy and the truncate: lines appended in that window
// are in a.log but not in the copy, and the truncate erases them; if the
// collector had not read them yet they are lost, and the copy is lacking
// them either way. And the copy itself is a new file in the source dir,
// so it is shipped as its own stream: its lines reach the target twice,
// once as a.log and once as a.log.N (use logrotate's olddir outside the
// source dir to avoid that). Here the writer pauses during the copytruncate,
// so the window is empty and the result is exact: target a.log holds every
// line exactly once, and target a.log.N is a byte copy of source a.log.N.
func TestCopytruncate(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	a := filepath.Join(src, "a.log")
	var written uint64
	write := func(n uint64) {
		appendLines(t, a, "ct", written, n)
		written += n
	}
	expect := func() []linecheck.Expect {
		return []linecheck.Expect{{Writer: "ct", Name: "a.log", Lines: written}}
	}
	write(2000)
	const cycles = 3
	copies := []string{"a.log"}
	for i := 1; i <= cycles; i++ {
		harness.WaitFor(t, deliverTimeout, func() error {
			r := verifyOnly(t, target, []string{"a.log"}, expect())
			if !r.Complete() {
				return fmt.Errorf("a.log not delivered: %v", r)
			}
			return nil
		}, p, c)
		ended := logCount(c, "stream ended")
		copyName := fmt.Sprintf("a.log.%d", i)
		copyFile(t, a, filepath.Join(src, copyName))
		if err := os.Truncate(a, 0); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, copyName)
		// The collector must see the truncation before the file grows again
		// for the result to be exact (else it tells by the fingerprint).
		waitLog(t, 10*time.Second, c, "stream ended", ended+1, p, c)
		write(uint64(1000 + 500*i))
	}
	harness.WaitFor(t, deliverTimeout, func() error {
		r := verifyOnly(t, target, []string{"a.log"}, expect())
		if r.Failed() {
			t.Fatalf("target a.log: %v\n%s", r, problems(r))
		}
		if !r.Complete() {
			return fmt.Errorf("a.log not delivered: %v", r)
		}
		for _, name := range copies[1:] {
			want, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(target, name))
			if err != nil || !bytes.Equal(got, want) {
				return fmt.Errorf("target %s: %d bytes (%v), want the %d bytes of the copy", name, len(got), err, len(want))
			}
		}
		return nil
	}, p, c)
	c.Stop()
	p.Stop()
	r := verifyOnly(t, target, []string{"a.log"}, expect())
	if !r.OK() {
		t.Fatalf("target a.log: %v\n%s", r, problems(r))
	}
	if names := targetFiles(t, target); !slices.Equal(names, copies) {
		t.Errorf("target holds %v, want %v", names, copies)
	}
	t.Logf("figures: lines=%d copytruncates=%d truncations logged=%d; a.log exact: %v", written, cycles,
		logCount(c, "file truncated; streaming it again from the start as a new stream"), r)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close() // the copy error is the one to report
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTruncateInPlace truncates a file to 0 and writes it again: a new
// stream from offset 0, appended to the same target file. Twice: once
// after the collector noticed the truncation (it sees the size shrink),
// once rewritten at once with more than it held (it can only tell by the
// fingerprint of the first bytes).
func TestTruncateInPlace(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	path := filepath.Join(src, "t.log")
	var written uint64
	expect := func() []linecheck.Expect {
		return []linecheck.Expect{{Writer: "tr", Name: "t.log", Lines: written}}
	}

	appendLines(t, path, "tr", 0, 1000)
	written = 1000
	waitDelivered(t, target, expect(), linecheck.Options{}, p, c)

	// Truncate, let the collector see the empty file, then write less.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	waitLog(t, 10*time.Second, c, "stream ended", 1, p, c)
	appendLines(t, path, "tr", written, 500)
	written += 500
	waitDelivered(t, target, expect(), linecheck.Options{}, p, c)

	// Truncate and at once write more than the file held.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(seqLines(t, "tr", written, 2000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	written += 2000
	waitDelivered(t, target, expect(), linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect(), linecheck.Options{})
	t.Logf("figures: lines=%d streams ended=%d (%v)", written, logCount(c, "stream ended"), logWhy(c, "stream ended"))
}

// logWhy returns the why= attribute of d's log lines with message msg.
func logWhy(d *Daemon, msg string) []string {
	var out []string
	for _, l := range logMatches(d, msg) {
		if _, why, ok := strings.Cut(l, " why="); ok {
			out = append(out, why)
		}
	}
	return out
}

// TestDeletedBeforeSent deletes files whose lines the collector has not
// sent yet, while the processor is down: one partly sent, one never sent.
// The collector holds them open, so it must finish them through its
// descriptors once the processor is back.
func TestDeletedBeforeSent(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	d1, d2 := filepath.Join(src, "d1.log"), filepath.Join(src, "sub", "d2.log")
	appendLines(t, d1, "d1", 0, 1000)
	waitDelivered(t, target, []linecheck.Expect{{Writer: "d1", Name: "d1.log", Lines: 1000}}, linecheck.Options{}, p, c)

	p.Stop()
	appendLines(t, d1, "d1", 1000, 4000)
	appendLines(t, d2, "d2", 0, 5000)
	// Once the collector has seen d2 (it opens a file when it finds it),
	// both files are deleted.
	harness.WaitFor(t, 10*time.Second, func() error {
		for _, l := range logMatches(c, "new stream") {
			if strings.Contains(l, " path=sub/d2.log ") {
				return nil
			}
		}
		return fmt.Errorf("collector has not found sub/d2.log")
	}, c)
	for _, path := range []string{d1, d2} {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	pause(t, 1500*time.Millisecond) // a rescan with the files gone
	p.Restart()
	expect := []linecheck.Expect{
		{Writer: "d1", Name: "d1.log", Lines: 5000},
		{Writer: "d2", Name: "sub/d2.log", Lines: 5000},
	}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	// Both streams end once acknowledged: the collector must let go of the
	// deleted files, or their disk space is never freed.
	harness.WaitFor(t, 10*time.Second, func() error {
		if held := heldDeleted(c.Pid(), src); len(held) > 0 {
			return fmt.Errorf("collector still holds %d deleted files %v; streams finished: %d, want 2",
				len(held), held, logCount(c, "stream finished"))
		}
		return nil
	}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: lines=10000 deleted files=2 streams finished=%d", logCount(c, "stream finished"))
}

// TestInodeReuse deletes a fully delivered file and creates a new one of
// the same name at once, so that the file system may give it the old
// inode: it must be a new stream (told apart by the fingerprint of its
// first bytes) and every one of its lines must arrive. Once with the
// collector running, once while it is stopped (it then finds the old
// inode in its offsets DB).
func TestInodeReuse(t *testing.T) {
	skipShort(t)
	target, src, spare := t.TempDir(), t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	live, stopped := filepath.Join(src, "r.log"), filepath.Join(src, "s.log")
	appendLines(t, live, "r", 0, 1000)
	appendLines(t, stopped, "s", 0, 1000)
	expect := []linecheck.Expect{{Writer: "r", Name: "r.log", Lines: 1000}, {Writer: "s", Name: "s.log", Lines: 1000}}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	// Running collector: it holds r.log open until the deleted file is
	// finished, so the inode can be reused only after that.
	oldIno := inode(t, live)
	finished := logCount(c, "stream finished")
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}
	waitLog(t, 10*time.Second, c, "stream finished", finished+1, p, c)
	reusedLive := createWithInode(t, live, oldIno, spare)
	appendLines(t, live, "r", 1000, 1000)
	t.Logf("running collector: r.log inode %d, then %d (reused: %v)", oldIno, inode(t, live), reusedLive)
	expect[0].Lines = 2000
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	// Stopped collector: its offsets DB still names s.log's inode, which
	// nothing holds: the new s.log gets it, with the same length.
	c.Stop()
	oldIno = inode(t, stopped)
	if err := os.Remove(stopped); err != nil {
		t.Fatal(err)
	}
	reused := createWithInode(t, stopped, oldIno, spare)
	appendLines(t, stopped, "s", 1000, 1000)
	t.Logf("stopped collector: s.log inode %d, then %d (reused: %v)", oldIno, inode(t, stopped), reused)
	c.Restart()
	expect[1].Lines = 2000
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	ended := logWhy(c, "stream ended")
	t.Logf("figures: lines=4000 inode reused: running=%v stopped=%v; streams ended=%v", reusedLive, reused, ended)
	if !reused {
		t.Log("the file system did not hand out the old inode again: the reuse case was not exercised")
	} else if !slices.Contains(ended, `"inode reused"`) {
		t.Errorf("s.log got its old inode back but the collector did not log the end of the old stream")
	}
}

// TestRenameBetweenSubdirs moves a file to another subdirectory, then to a
// new one, while lines are appended to it by its new name: the stream keeps
// the name it had when first seen, sub1/x.log.
func TestRenameBetweenSubdirs(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	x1 := filepath.Join(src, "sub1", "x.log")
	x2 := filepath.Join(src, "sub2", "x.log")
	x3 := filepath.Join(src, "sub3", "deeper", "x.log")
	if err := os.MkdirAll(filepath.Dir(x2), 0o755); err != nil {
		t.Fatal(err)
	}
	expect := []linecheck.Expect{{Writer: "x", Name: "sub1/x.log", Lines: 1000}}
	appendLines(t, x1, "x", 0, 1000)
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	// Lines not yet read when the file moves, more lines by the new name.
	appendLines(t, x1, "x", 1000, 500)
	if err := os.Rename(x1, x2); err != nil {
		t.Fatal(err)
	}
	appendLines(t, x2, "x", 1500, 500)
	expect[0].Lines = 2000
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	// Into a directory created just before.
	if err := os.MkdirAll(filepath.Dir(x3), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(x2, x3); err != nil {
		t.Fatal(err)
	}
	appendLines(t, x3, "x", 2000, 500)
	expect[0].Lines = 2500
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	if names := targetFiles(t, target); !slices.Equal(names, []string{"sub1/x.log"}) {
		t.Errorf("target holds %v, want only sub1/x.log", names)
	}
}

// TestSymlinksNotFollowed puts symlinks in the source dir, to a file and
// to a directory outside it. The collector's documented choice (package
// watch) is never to follow a symlink, except the source dir itself: a
// symlink is not a file to stream, so nothing of its target is shipped
// and nothing outside the source dir can be reached through one.
func TestSymlinksNotFollowed(t *testing.T) {
	skipShort(t)
	target, src, outside := t.TempDir(), t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret.log")
	appendLines(t, secret, "secret", 0, 100)
	appendLines(t, filepath.Join(outside, "dir", "inner.log"), "inner", 0, 100)
	if err := os.Symlink(secret, filepath.Join(src, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "dir"), filepath.Join(src, "linkdir")); err != nil {
		t.Fatal(err)
	}

	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	// Symlinks made while the collector runs, and their targets growing.
	appendLines(t, filepath.Join(src, "sub", "real.log"), "real", 0, 500)
	if err := os.Symlink(secret, filepath.Join(src, "sub", "late.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "sub", "latedir")); err != nil {
		t.Fatal(err)
	}
	appendLines(t, secret, "secret", 100, 100)
	appendLines(t, filepath.Join(outside, "dir", "inner.log"), "inner", 100, 100)
	appendLines(t, filepath.Join(src, "sub", "real.log"), "real", 500, 500)

	expect := []linecheck.Expect{{Writer: "real", Name: "sub/real.log", Lines: 1000}}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	pause(t, 2500*time.Millisecond) // two safety-net rescans
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{}) // a secret or inner line would be unexpected
	if names := targetFiles(t, target); !slices.Equal(names, []string{"sub/real.log"}) {
		t.Errorf("target holds %v, want only sub/real.log", names)
	}
	if n := logCount(c, "new stream"); n != 1 {
		t.Errorf("collector opened %d streams, want 1 (sub/real.log)", n)
	}
}

// TestSubdirRecreated deletes a subdirectory with its files, fully
// delivered, and creates it again with new files, one of them of the same
// name: they are new streams, and all their lines arrive.
func TestSubdirRecreated(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	sub := filepath.Join(src, "sub")
	appendLines(t, filepath.Join(sub, "a.log"), "a", 0, 1000)
	appendLines(t, filepath.Join(sub, "deep", "b.log"), "b", 0, 1000)
	expect := []linecheck.Expect{
		{Writer: "a", Name: "sub/a.log", Lines: 1000},
		{Writer: "b", Name: "sub/deep/b.log", Lines: 1000},
	}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	for round := range 3 {
		finished := logCount(c, "stream finished")
		if err := os.RemoveAll(sub); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			// Let the collector see the deletion before the new files come.
			waitLog(t, 10*time.Second, c, "stream finished", finished+2, p, c)
		}
		from := uint64(1000 * (round + 1))
		appendLines(t, filepath.Join(sub, "a.log"), "a", from, 1000)
		appendLines(t, filepath.Join(sub, "deep", "b.log"), "b", from, 1000)
		id := fmt.Sprintf("c%d", round)
		appendLines(t, filepath.Join(sub, "deep", "er", id+".log"), id, 0, 1000)
		expect[0].Lines += 1000
		expect[1].Lines += 1000
		expect = append(expect, linecheck.Expect{Writer: id, Name: "sub/deep/er/" + id + ".log", Lines: 1000})
		waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	var total uint64
	for _, e := range expect {
		total += e.Lines
	}
	t.Logf("figures: lines=%d dir recreations=3 streams=%d finished=%d", total, logCount(c, "new stream"), logCount(c, "stream finished"))
}
