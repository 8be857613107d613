package target_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/relpath"
	"thunder/internal/target"
)

// journalFiles writes n files of a commit that the journal takes, then
// copies the state dir as a kill -9 (or a power cut) at that moment would
// leave it, closes d and puts the copy back.
func journalCrash(t *testing.T, dir string, n int) (want map[string]string) {
	t.Helper()
	d := mustOpen(t, dir)
	if !target.Journaling(d) {
		t.Skip("no journal here: commits cannot use syncfs(2) on this kernel or file system")
	}
	o := new(owner)
	want = make(map[string]string)
	for i := range n {
		name := fmt.Sprintf("h%02d/app.log", i)
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		p := lines(name, 0, 50)
		mustAppend(t, d, s, o, 0, p)
		want[name] = p
	}
	mustCommit(t, d)
	saved := saveStateDir(t, dir)
	if !hasSegment(saved) {
		t.Fatalf("no journal segment after a commit of %d files: %v", n, keys(saved))
	}
	mustClose(t, d)
	restoreStateDir(t, dir, saved)
	return want
}

func saveStateDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, relpath.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]byte)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, relpath.StateDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func restoreStateDir(t *testing.T, dir string, m map[string][]byte) {
	t.Helper()
	for n, b := range m {
		if err := os.WriteFile(filepath.Join(dir, relpath.StateDir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func hasSegment(m map[string][]byte) bool {
	for n := range m {
		if strings.HasPrefix(n, "journal.") {
			return true
		}
	}
	return false
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func segmentsIn(t *testing.T, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, relpath.StateDir, "journal.*"))
	return len(m)
}

// A machine that stopped before the kernel wrote the target files back:
// the journal puts every acknowledged byte back, exactly, and no more.
func TestJournalReplayAfterPowerCut(t *testing.T) {
	target.SetJournal(t, 4, "boot-1")
	dir := t.TempDir()
	want := journalCrash(t, dir, 8)
	// The page cache is gone: each file lost some or all of what was
	// written, or holds garbage past what the disk kept.
	i := 0
	for name, p := range want {
		path := filepath.Join(dir, name)
		switch i % 3 {
		case 0:
			mustTruncate(t, path, 0)
		case 1:
			mustTruncate(t, path, int64(len(p)/2))
		case 2:
			if err := os.WriteFile(path, []byte(strings.Repeat("\x00", len(p))), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	target.SetJournal(t, 4, "boot-2")
	d := mustOpen(t, dir)
	for name, p := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != p {
			t.Errorf("%s after replay = %d bytes, want the %d committed", name, len(got), len(p))
		}
	}
	if n := segmentsIn(t, dir); n != 0 {
		t.Errorf("%d journal segments after recovery, want none", n)
	}
	mustClose(t, d)
}

// A processor killed in the same boot left everything in the page cache:
// nothing is replayed, so a target file an operator emptied since stays
// empty.
func TestJournalSameBootNotReplayed(t *testing.T) {
	target.SetJournal(t, 4, "boot-1")
	dir := t.TempDir()
	want := journalCrash(t, dir, 8)
	var emptied string
	for name := range want {
		emptied = name
		break
	}
	mustTruncate(t, filepath.Join(dir, emptied), 0)
	d := mustOpen(t, dir)
	for name, p := range want {
		got := readFile(t, filepath.Join(dir, name))
		if name == emptied {
			p = ""
		}
		if got != p {
			t.Errorf("%s = %d bytes, want %d", name, len(got), len(p))
		}
	}
	if n := segmentsIn(t, dir); n != 0 {
		t.Errorf("%d journal segments after recovery, want none", n)
	}
	mustClose(t, d)
}

// A checkpoint whose syncfs fails keeps its segments, marked: recovery
// replays them even in the same boot, where the disk may have lost pages
// the page cache no longer holds as dirty.
func TestJournalFailedCheckpointReplayed(t *testing.T) {
	target.SetJournal(t, 4, "boot-1")
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if !target.Journaling(d) {
		t.Skip("no journal here: commits cannot use syncfs(2) on this kernel or file system")
	}
	o := new(owner)
	want := make(map[string]string)
	for i := range 8 {
		name := fmt.Sprintf("h%02d/app.log", i)
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		p := lines(name, 0, 40)
		mustAppend(t, d, s, o, 0, p)
		want[name] = p
	}
	mustCommit(t, d)
	target.SetSyncfs(t, func(int) error { return errors.New("EIO (injected)") })
	mustClose(t, d) // its checkpoint fails
	if n := segmentsIn(t, dir); n == 0 {
		t.Fatal("a failed checkpoint removed its segments")
	}
	if recs := fileRecords(t, dir); len(recs) == 0 {
		t.Fatal("a failed checkpoint let the records of journaled files go: replay could not find them")
	}
	target.SetSyncfs(t, func(int) error { return nil })
	for name := range want {
		mustTruncate(t, filepath.Join(dir, name), 0) // what the failed writeback lost
	}
	d = mustOpen(t, dir)
	for name, p := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != p {
			t.Errorf("%s after replay = %d bytes, want %d", name, len(got), len(p))
		}
	}
	mustClose(t, d)
}

// A damaged or torn segment is replayed up to the damage, never past it,
// and never into files it does not prove to be the recorded ones.
func TestJournalDamagedSegment(t *testing.T) {
	target.SetJournal(t, 4, "boot-1")
	dir := t.TempDir()
	want := journalCrash(t, dir, 8)
	segs, _ := filepath.Glob(filepath.Join(dir, relpath.StateDir, "journal.*"))
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x40 // one bit, mid-segment
		if err := os.WriteFile(seg, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name := range want {
		mustTruncate(t, filepath.Join(dir, name), 0)
	}
	target.SetJournal(t, 4, "boot-2")
	d := mustOpen(t, dir)
	whole, short := 0, 0
	for name, p := range want {
		got := readFile(t, filepath.Join(dir, name))
		switch {
		case got == p:
			whole++
		case strings.HasPrefix(p, got):
			short++
		default:
			t.Errorf("%s after replay of a damaged segment = %q: not a prefix of what was committed", name, got)
		}
	}
	if whole == 0 || short == 0 {
		t.Errorf("replay stopped at the wrong entry: %d files whole, %d short", whole, short)
	}
	mustClose(t, d)
}

func mustTruncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// What is not a segment of ours under a segment's name (a directory, a
// link, a name the processor would not write) never keeps the processor
// from starting, journal on or off, and is left alone.
func TestJournalStrangersInStateDir(t *testing.T) {
	dir := t.TempDir()
	mustClose(t, mustOpen(t, dir))
	sd := filepath.Join(dir, relpath.StateDir)
	if err := os.Mkdir(filepath.Join(sd, "journal.0000000000000001"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(sd, "journal.0000000000000002")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sd, "journal.000000000000000A"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		if on {
			target.SetJournal(t, 4, "boot-1")
		}
		d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("journal on=%v: Open with strangers named like segments = %v, want it to start", on, err)
		}
		mustClose(t, d)
	}
	for _, n := range []string{"journal.0000000000000001", "journal.0000000000000002", "journal.000000000000000A"} {
		if _, err := os.Lstat(filepath.Join(sd, n)); err != nil {
			t.Errorf("%s: %v, want it left alone", n, err)
		}
	}
}
