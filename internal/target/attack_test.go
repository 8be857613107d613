//go:build linux

package target_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/relpath"
	"thunder/internal/target"
)

// The tests here are the defects an independent attack found (issue 11):
// each failed before the fix.

// reuseInode deletes path and creates files beside it until one gets its
// inode, as ext4 does at once; it returns that file's name, or skips when
// the file system does not reuse inodes (tmpfs never does).
func reuseInode(t *testing.T, path string, content string) string {
	t.Helper()
	ino := inodeOf(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		name := filepath.Join(filepath.Dir(path), fmt.Sprintf("new-%d.log", i))
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if inodeOf(t, name) == ino {
			return name
		}
	}
	t.Skipf("the file system of %s did not reuse inode %d for new files; this test needs one that does (ext4)", path, ino)
	return ""
}

// Defect 1: a retention job deletes a target file, a new file gets its
// inode, and the next start, after SIGTERM or kill -9, must not cut it.
func TestRecoverReusedInode(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(map[bool]string{false: "SIGTERM", true: "kill -9"}[kill], func(t *testing.T) {
			dir := t.TempDir()
			d := mustOpen(t, dir)
			o := &owner{"c"}
			s, _, _ := mustAttach(t, d, key("c", 1), "old.log", 0, o)
			mustAppend(t, d, s, o, 0, "short\n")
			mustCommit(t, d)
			s.Detach(o) // the collector finished it: the file is closed
			var state stateSnapshot
			if kill {
				state = snapshotState(t, dir) // the record of old.log is still there
			}
			mustClose(t, d)
			if kill {
				restoreState(t, dir, state)
			}
			want := lines("unrelated", 0, 50)
			name := reuseInode(t, filepath.Join(dir, "old.log"), want)
			mustClose(t, mustOpen(t, dir))
			if got := readFile(t, name); got != want {
				t.Errorf("%s, which reused old.log's inode, = %d bytes after a restart, want %d: recovery cut a file it could not prove was the one recorded", filepath.Base(name), len(got), len(want))
			}
		})
	}
}

// Defect 1, the other half: the record of a file the processor stopped
// holding is gone by the next commit, so nothing can be cut by it later.
func TestRecordsEndWithTheFile(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s1, _, _ := mustAttach(t, d, key("c", 1), "a.log", 0, o)
	s2, _, _ := mustAttach(t, d, key("c", 2), "b.log", 0, o)
	mustAppend(t, d, s1, o, 0, "a\n")
	mustAppend(t, d, s2, o, 0, "b\n")
	mustCommit(t, d)
	s1.Detach(o)                      // a.log closed
	mustAppend(t, d, s2, o, 2, "b\n") // any later commit drops its record
	mustCommit(t, d)
	snap := snapshotState(t, dir)
	mustClose(t, d)
	restoreState(t, dir, snap)
	if recs := fileRecords(t, dir); len(recs) != 1 || recs["b.log"] == 0 {
		t.Errorf("file records after a.log was closed and a commit ran = %v, want only b.log", recs)
	}
	mustClose(t, mustOpen(t, dir))
	if recs := fileRecords(t, dir); len(recs) != 0 {
		t.Errorf("file records after a clean stop = %v, want none", recs)
	}
}

// Defect 1 while running: a target file deleted while it is written. What
// was appended since the last commit went into the deleted file; the
// streams resend it into a new file at the name, and nothing is acked for
// bytes nobody can read.
func TestDeletedWhileWritten(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	end := mustAppend(t, d, s, o, 0, lines("x", 0, 3))
	mustCommit(t, d)
	lost := lines("x", 3, 3)
	mustAppend(t, d, s, o, end, lost)
	if err := os.Remove(filepath.Join(dir, "x.log")); err != nil {
		t.Fatal(err)
	}
	if acks := mustCommit(t, d); len(acks) != 0 {
		t.Errorf("commit after the file was deleted acked %v, want nothing", acks)
	}
	s, off, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	if off != end {
		t.Fatalf("Attach after the delete = %d, want the committed offset %d", off, end)
	}
	mustAppend(t, d, s, o, off, lost)
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "x.log")); got != lost {
		t.Errorf("x.log = %q, want %q", got, lost)
	}
}

// Defect 2: one inode under two names, through a hard link or a symlink
// to a directory inside the target. Acknowledged bytes must survive a
// restart whatever the names resolve to.
func TestOneFileTwoNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		alias string
		plant func(t *testing.T, dir string)
	}{
		{"hard link", "b.log", func(t *testing.T, dir string) {
			if err := os.Link(filepath.Join(dir, "sub", "a.log"), filepath.Join(dir, "b.log")); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a directory", "alias/a.log", func(t *testing.T, dir string) {
			if err := os.Symlink("sub", filepath.Join(dir, "alias")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			d := mustOpen(t, dir)
			o := &owner{"c"}
			s1, _, _ := mustAttach(t, d, key("c", 1), "sub/a.log", 0, o)
			want := lines("one", 0, 5)
			end := mustAppend(t, d, s1, o, 0, want)
			mustCommit(t, d)
			c.plant(t, dir)

			s2, _, _ := mustAttach(t, d, key("c", 2), c.alias, 0, o)
			p := lines("two", 0, 5)
			err := s2.Append(o, chunk(0, uint64(len(p)), []byte(p)))
			if err == nil {
				mustCommit(t, d)
				want += p
			} else if !errors.Is(err, target.ErrName) {
				t.Fatalf("Append to %s = %v, want ErrName", c.alias, err)
			}
			more := lines("one", 5, 5)
			mustAppend(t, d, s1, o, end, more)
			want += more
			acks := mustCommit(t, d)
			if _, ok := ackFor(t, acks, s1); !ok {
				t.Fatal("no ack for sub/a.log")
			}
			crash(t, d, dir)
			mustClose(t, mustOpen(t, dir))
			if got := readFile(t, filepath.Join(dir, "sub", "a.log")); got != want {
				t.Errorf("sub/a.log after restart = %d bytes, want the %d acknowledged", len(got), len(want))
			}
			if err == nil {
				t.Errorf("Append to %s, the same file as sub/a.log, succeeded; want ErrName", c.alias)
			}
		})
	}
}

// Defect 3: links into the state dir. Whatever a name resolves to, no
// byte goes into the state and recovery never cuts it.
func TestLinksIntoState(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	mustClose(t, d)
	state := filepath.Join(dir, relpath.StateDir)
	if err := os.Symlink(relpath.StateDir, filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(relpath.StateDir, "state.db"), filepath.Join(dir, "db.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(state, "state.db"), filepath.Join(dir, "hard.log")); err != nil {
		t.Fatal(err)
	}
	names := []string{"x/state.db", "x/new.log", "x/sub/new.log", "db.log", "hard.log"}
	if mnt := bindMount(t, state, filepath.Join(dir, "bind")); mnt {
		names = append(names, "bind/state.db", "bind/new.log")
	}
	before := stateFiles(t, state)

	d = mustOpen(t, dir)
	o := &owner{"c"}
	for i, name := range names {
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		err := s.Append(o, chunk(0, 5, []byte("evil\n")))
		if !errors.Is(err, target.ErrName) {
			t.Errorf("Append to %s = %v, want ErrName", name, err)
		}
	}
	crash(t, d, dir)
	mustClose(t, mustOpen(t, dir))
	if after := stateFiles(t, state); after != before {
		t.Errorf("state dir changed:\nbefore %s\nafter  %s", before, after)
	}
	b, err := os.ReadFile(filepath.Join(state, "state.db"))
	if err != nil || bytes.Contains(b, []byte("evil")) {
		t.Errorf("state.db holds data sent as a target file (err %v)", err)
	}
}

// stateFiles lists the names in the state dir.
func stateFiles(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		b.WriteString(e.Name() + " ")
	}
	return b.String()
}

// bindMount bind-mounts src on dst when the test runs as root; it reports
// whether it did.
func bindMount(t *testing.T, src, dst string) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: the bind mount case is skipped")
		return false
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", src, dst).CombinedOutput(); err != nil {
		t.Logf("cannot bind mount: %v: %s; that case is skipped", err, out)
		return false
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dst, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
	return true
}

// Defect 4: a stream attached under a new name while some of its bytes
// are not committed resumes after them (PROTOCOL §4: offset = max(appended,
// acked)), so the resend does not put them in both files.
func TestRenameWithUncommittedData(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o1, o2 := &owner{"c1"}, &owner{"c2"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "one.log", 0, o1)
	first := lines("a", 0, 4)
	end := mustAppend(t, d, s, o1, 0, first)

	type attached struct {
		s   *target.Stream
		off uint64
		err error
	}
	done := make(chan attached, 1)
	go func() {
		s, off, _, err := attachAt(d, k, mustName(t, "two.log"), 0, o2)
		done <- attached{s, off, err}
	}()
	var a attached
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case a = <-done:
			break wait
		case <-deadline:
			t.Fatal("Attach under the new name did not return")
		default:
			mustCommit(t, d) // the processor's commit loop
			time.Sleep(time.Millisecond)
		}
	}
	if a.err != nil || a.off != end {
		t.Fatalf("Attach as two.log = %d, %v; want %d (what one.log got)", a.off, a.err, end)
	}
	second := lines("a", 4, 4)
	mustAppend(t, d, a.s, o2, a.off, second)
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "one.log")); got != first {
		t.Errorf("one.log = %q, want %q", got, first)
	}
	if got := readFile(t, filepath.Join(dir, "two.log")); got != second {
		t.Errorf("two.log = %q, want %q", got, second)
	}
}
