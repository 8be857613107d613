package target_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/target"
)

// TestReopenFollowsRename: after Reopen and a logrotate rename the next
// append creates a new file at the name. The data is split between old and
// new, nothing lost or duplicated, and the commit records the new inode.
func TestReopenFollowsRename(t *testing.T) {
	for _, c := range []struct {
		name         string
		renameBefore bool
	}{
		{"rename after Reopen", false},
		{"rename before Reopen", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			name, rotated := filepath.Join(dir, "d", "app.log"), filepath.Join(dir, "d", "app.log.1")
			rename := func() {
				t.Helper()
				if err := os.Rename(name, rotated); err != nil {
					t.Fatal(err)
				}
			}
			d := mustOpen(t, dir)
			o := &owner{"c"}
			k := key("c", 1)
			s, _, _ := mustAttach(t, d, k, "d/app.log", 0, o)
			pOld := lines("x", 0, 10)
			end := mustAppend(t, d, s, o, 0, pOld)
			if c.renameBefore {
				rename()
			}
			acks, err := target.ReopenAcks(d)
			if err != nil {
				t.Fatalf("Reopen() = %v", err)
			}
			if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end || a.Owner != o {
				t.Errorf("Reopen() acks = %v, want %s at %d", acks, k, end)
			}
			if !c.renameBefore {
				rename()
			}
			pNew := lines("x", 10, 10)
			end = mustAppend(t, d, s, o, end, pNew)
			if acks := mustCommit(t, d); len(acks) != 1 || acks[0].At.Offset != end {
				t.Errorf("Commit() = %v, want one ack at %d", acks, end)
			}
			if got := readFile(t, rotated); got != pOld {
				t.Errorf("rotated file = %q, want %q", got, pOld)
			}
			if got := readFile(t, name); got != pNew {
				t.Errorf("new file = %q, want %q", got, pNew)
			}

			// The record follows the new inode: a crash now cuts the new file
			// back and leaves the rotated one alone.
			mustAppend(t, d, s, o, end, lines("x", 20, 3))
			crash(t, d, dir) // kill -9 here
			d = mustOpen(t, dir)
			if got := readFile(t, name); got != pNew {
				t.Errorf("new file after crash = %q, want %q", got, pNew)
			}
			if got := readFile(t, rotated); got != pOld {
				t.Errorf("rotated file after crash = %q, want %q", got, pOld)
			}
			_, off, _ := mustAttach(t, d, k, "d/app.log", 0, o)
			if off != end {
				t.Errorf("Attach after crash = %d, want %d", off, end)
			}
			mustClose(t, d)
			if recs := fileRecords(t, dir); len(recs) != 0 {
				t.Errorf("file records after recovery = %v, want none until the next open", recs)
			}
		})
	}
}

// Without a rename, Reopen goes on appending to the same file.
func TestReopenSameFile(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	end := mustAppend(t, d, s, o, 0, "a\n")
	ino := inodeOf(t, filepath.Join(dir, "x.log"))
	for i := range 3 {
		if err := d.Reopen(); err != nil {
			t.Fatalf("Reopen() = %v", err)
		}
		end = mustAppend(t, d, s, o, end, fmt.Sprintf("b%d\n", i))
	}
	if err := d.Reopen(); err != nil { // nothing open, nothing dirty
		t.Fatalf("Reopen() = %v", err)
	}
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "x.log")); got != "a\nb0\nb1\nb2\n" {
		t.Errorf("x.log = %q", got)
	}
	if got := inodeOf(t, filepath.Join(dir, "x.log")); got != ino {
		t.Errorf("inode changed from %d to %d", ino, got)
	}
}

// TestReopenUnderLoad: Reopen must follow a rename even when the file is
// written continuously (logrotate renames, then signals once).
func TestReopenUnderLoad(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var end uint64 // written by the appender until stopAppender returns
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := fmt.Sprintf("line %d\n", i)
			if err := s.Append(o, chunk(end, end+uint64(len(p)), []byte(p))); err != nil {
				t.Errorf("Append = %v", err)
				return
			}
			end += uint64(len(p))
		}
	})
	stopAppender := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopAppender()

	harness.WaitFor(t, 2*time.Second, func() error {
		if d.DirtyBytes() == 0 {
			return errors.New("appender has not started")
		}
		return nil
	})
	if err := os.Rename(filepath.Join(dir, "x.log"), filepath.Join(dir, "x.log.1")); err != nil {
		t.Fatal(err)
	}
	if err := d.Reopen(); err != nil {
		t.Fatalf("Reopen() = %v", err)
	}
	harness.WaitFor(t, 2*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(dir, "x.log")); err != nil {
			return fmt.Errorf("no new file at the name after Reopen: %w", err)
		}
		return nil
	})
	stopAppender()
	mustClose(t, d)
	old, cur := readFile(t, filepath.Join(dir, "x.log.1")), readFile(t, filepath.Join(dir, "x.log"))
	if got := uint64(len(old) + len(cur)); got != end {
		t.Errorf("old+new = %d bytes, want %d", got, end)
	}
	if !strings.HasSuffix(old, "\n") {
		t.Errorf("old file ends in a partial line")
	}
}
