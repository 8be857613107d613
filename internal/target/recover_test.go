package target_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCrashCutsBack: data appended after the last commit is cut off at the
// next Open, and Attach resumes at the committed offset, so a resend lands
// exactly once.
func TestCrashCutsBack(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	kA, kB, kC := key("c1", 1), key("c2", 1), key("c2", 2)
	sA, _, _ := mustAttach(t, d, kA, "n/e/s/ted.log", 0, o)
	sB, _, _ := mustAttach(t, d, kB, "flat.log", 0, o)

	pA := lines("A", 0, 10)
	endA := mustAppend(t, d, sA, o, 0, pA)
	pB := lines("B", 0, 3)
	endB := mustAppend(t, d, sB, o, 0, pB)
	mustCommit(t, d)

	// Lost at the crash: more data, from known and new streams.
	lostA := lines("A", 10, 5)
	mustAppend(t, d, sA, o, endA, lostA)
	lostB := lines("B", 3, 7)
	mustAppend(t, d, sB, o, endB, lostB)
	sC, _, _ := mustAttach(t, d, kC, "flat.log", 0, o)
	mustAppend(t, d, sC, o, 0, lines("C", 0, 4))
	crash(t, d, dir) // kill -9 here

	d = mustOpen(t, dir)
	for _, c := range []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "n", "e", "s", "ted.log"), pA},
		{filepath.Join(dir, "flat.log"), pB},
	} {
		if got := readFile(t, c.path); got != c.want {
			t.Errorf("%s after crash = %q, want %q", c.path, got, c.want)
		}
	}
	// The collectors resend from the committed offsets.
	sA, offA, committedA := mustAttach(t, d, kA, "n/e/s/ted.log", 0, o)
	sB, offB, _ := mustAttach(t, d, kB, "flat.log", 0, o)
	sC, offC, _ := mustAttach(t, d, kC, "flat.log", 0, o)
	if offA != endA || committedA != endA || offB != endB || offC != 0 {
		t.Fatalf("Attach after crash = A %d (committed %d), B %d, C %d; want %d, %d, 0", offA, committedA, offB, offC, endA, endB)
	}
	mustAppend(t, d, sA, o, offA, lostA)
	mustAppend(t, d, sB, o, offB, lostB)
	pC := lines("C", 0, 4)
	mustAppend(t, d, sC, o, 0, pC)
	mustClose(t, d)
	if got, want := readFile(t, filepath.Join(dir, "n", "e", "s", "ted.log")), pA+lostA; got != want {
		t.Errorf("ted.log = %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(dir, "flat.log")), pB+lostB+pC; got != want {
		t.Errorf("flat.log = %q, want %q", got, want)
	}
}

// A file shorter than its record (someone truncated it) is left alone.
func TestCrashShorterFileLeftAlone(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	mustAppend(t, d, s, o, 0, lines("x", 0, 10))
	mustClose(t, d)
	if err := os.Truncate(filepath.Join(dir, "x.log"), 4); err != nil {
		t.Fatal(err)
	}
	mustClose(t, mustOpen(t, dir))
	if got := fileSize(t, filepath.Join(dir, "x.log")); got != 4 {
		t.Errorf("truncated file size after Open = %d, want 4", got)
	}
}

// TestCrashAfterRename: logrotate renamed the target file after the last
// commit; the crash leaves uncommitted bytes in the renamed file. Open finds
// it by inode in the same directory and cuts it back, and drops the record of
// the name.
func TestCrashAfterRename(t *testing.T) {
	for _, c := range []struct {
		name   string
		create bool // logrotate created a new empty file at the name
	}{
		{"name missing", false},
		{"new file at name", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			d := mustOpen(t, dir)
			o := &owner{"c"}
			k := key("c", 1)
			s, _, _ := mustAttach(t, d, k, "logs/app.log", 0, o)
			p := lines("x", 0, 10)
			end := mustAppend(t, d, s, o, 0, p)
			mustCommit(t, d)

			lost := lines("x", 10, 10)
			mustAppend(t, d, s, o, end, lost)
			name, rotated := filepath.Join(dir, "logs", "app.log"), filepath.Join(dir, "logs", "app.log.1")
			if err := os.Rename(name, rotated); err != nil {
				t.Fatal(err)
			}
			if c.create {
				writeFile(t, name, "")
			}
			crash(t, d, dir) // kill -9 here

			d = mustOpen(t, dir)
			if got := readFile(t, rotated); got != p {
				t.Errorf("rotated file after crash = %q, want %q", got, p)
			}
			if c.create {
				if got := readFile(t, name); got != "" {
					t.Errorf("new file at name = %q, want empty", got)
				}
			}
			mustClose(t, d)
			if recs := fileRecords(t, dir); len(recs) != 0 {
				t.Errorf("file records after recovery = %v, want none (stale record dropped)", recs)
			}

			// The collector resends; the data goes to the name, which records
			// the new inode.
			d = mustOpen(t, dir)
			s, off, _ := mustAttach(t, d, k, "logs/app.log", 0, o)
			if off != end {
				t.Fatalf("Attach after crash = %d, want %d", off, end)
			}
			mustAppend(t, d, s, o, off, lost)
			mustClose(t, d)
			if got := readFile(t, name); got != lost {
				t.Errorf("app.log = %q, want %q", got, lost)
			}
			if got := readFile(t, rotated); got != p {
				t.Errorf("app.log.1 = %q, want %q", got, p)
			}
			if recs := fileRecords(t, dir); len(recs) != 0 {
				t.Errorf("file records after a clean close = %v, want none", recs)
			}
		})
	}
}

// TestCrashBeforeFirstCommit: a target file created (or first opened) after
// the last commit has no record, so Open does not cut it back; the collector
// resends from the committed offset and the lines land twice.
func TestCrashBeforeFirstCommit(t *testing.T) {
	for _, c := range []struct {
		name   string
		rotate bool // the new file is the one created after Reopen and a rename
	}{
		{"new name", false},
		{"after reopen and rename", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			d := mustOpen(t, dir)
			o := &owner{"c"}
			k := key("c", 1)
			s, _, _ := mustAttach(t, d, k, "x.log", 0, o)
			var end uint64
			var p string
			if c.rotate {
				p = lines("x", 0, 5)
				end = mustAppend(t, d, s, o, 0, p)
				if err := d.Reopen(); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, "x.log"), filepath.Join(dir, "x.log.1")); err != nil {
					t.Fatal(err)
				}
			}
			mustCommit(t, d)
			lost := lines("x", 5, 5)
			mustAppend(t, d, s, o, end, lost)
			crash(t, d, dir) // kill -9 here

			d = mustOpen(t, dir)
			s, off, _ := mustAttach(t, d, k, "x.log", 0, o)
			if off != end {
				t.Fatalf("Attach after crash = %d, want %d", off, end)
			}
			mustAppend(t, d, s, o, off, lost)
			mustClose(t, d)
			if got := readFile(t, filepath.Join(dir, "x.log")); got != lost {
				t.Errorf("x.log = %q, want %q (each line once)", got, lost)
			}
		})
	}
}
