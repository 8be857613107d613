package target_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"thunder/internal/relpath"
	"thunder/internal/target"
)

// The journal's holes an attacker's read found (issue 16): each test plays
// a crash the journal must come through with every acknowledged byte, and
// only those.

// journalDir opens a Dir with the journal on for commits of 4 files or
// more, or skips.
func journalDir(t *testing.T, boot string) (string, *target.Dir) {
	t.Helper()
	target.SetJournal(t, 4, boot)
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if !target.Journaling(d) {
		t.Skip("no journal here: commits cannot use syncfs(2) on this kernel or file system")
	}
	return dir, d
}

// playCrash closes d as a crash would leave the state directory: its
// segments and records as they are now.
func playCrash(t *testing.T, dir string, d *target.Dir) {
	t.Helper()
	saved := saveStateDir(t, dir)
	mustClose(t, d)
	restoreStateDir(t, dir, saved)
}

// A file truncated by someone (logrotate copytruncate) and written again
// holds new acknowledged bytes where the journal holds old ones: replay
// wrote the old ones over them, as entries did not say which opening of the
// file they were written through.
func TestJournalTruncatedFileNotOverwritten(t *testing.T) {
	dir, d := journalDir(t, "boot-1")
	o := new(owner)
	var victim *target.Stream
	var end uint64
	for i := range 4 {
		name := fmt.Sprintf("h%02d/app.log", i)
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		e := mustAppend(t, d, s, o, 0, lines("old "+name, 0, 50))
		if i == 0 {
			victim, end = s, e
		}
	}
	mustCommit(t, d) // four files: journaled
	path := filepath.Join(dir, "h00/app.log")
	mustTruncate(t, path, 0) // copied away and truncated
	more := lines("new", 0, 80)
	if err := victim.Append(o, chunk(end, end+uint64(len(more)), []byte(more))); err != nil {
		t.Fatalf("append after the truncation = %v", err)
	}
	_, _ = d.Commit() // finds it truncated: the stream resends
	var acked bool
	for try := 0; try < 3 && !acked; try++ {
		s, at, _ := mustAttach(t, d, key("c", 0), "h00/app.log", end, o)
		if err := s.Append(o, chunk(at, at+uint64(len(more)), []byte(more))); err != nil {
			t.Fatalf("resend after the truncation = %v", err)
		}
		acks, _ := d.Commit() // one file: synced, not journaled
		a, ok := ackFor(t, acks, s)
		acked = ok && a.At.Offset == at+uint64(len(more))
	}
	if !acked {
		t.Fatal("the rewritten file was never acknowledged")
	}
	want := readFile(t, path)
	playCrash(t, dir, d)
	target.SetJournal(t, 4, "boot-2") // the machine stopped: replay
	d = mustOpen(t, dir)
	if got := readFile(t, path); got != want {
		first, _, _ := strings.Cut(got, "\n")
		t.Errorf("h00/app.log after replay = %d bytes starting %q, want the %d acknowledged since the truncation, starting %q", len(got), first, len(want), "new 0")
	}
	mustClose(t, d)
}

// A writeback error is reported once per descriptor. The checkpoints'
// syncfs and the commits' shared one: an error the checkpoint saw was not
// seen by the next commit that used syncfs, which acknowledged what the
// failed writeback may have lost.
func TestJournalCheckpointErrorSeenByCommits(t *testing.T) {
	defer target.SetSyncfsMin(target.SetSyncfsMin(2))
	dir, d := journalDir(t, "boot-1")
	_ = dir
	o := new(owner)
	var ss []*target.Stream
	var ends []uint64
	for i := range 6 {
		s, _, _ := mustAttach(t, d, key("c", i), fmt.Sprintf("h%02d/app.log", i), 0, o)
		ss = append(ss, s)
		ends = append(ends, 0)
	}
	for i := range 4 {
		ends[i] = mustAppend(t, d, ss[i], o, 0, lines("a", 0, 20))
	}
	mustCommit(t, d) // journaled
	// A page fails its writeback: each descriptor open then is told once.
	var mu sync.Mutex
	told := make(map[int]bool)
	target.SetSyncfs(t, func(fd int) error {
		mu.Lock()
		defer mu.Unlock()
		if told[fd] {
			return nil
		}
		told[fd] = true
		return errors.New("EIO (injected)")
	})
	target.Checkpoint(d)
	target.WaitCheckpoint(d)
	for i := 4; i < 6; i++ {
		ends[i] = mustAppend(t, d, ss[i], o, 0, lines("b", 0, 20))
	}
	acks, err := d.Commit() // two files, below the journal's 4: syncfs
	for i := 4; i < 6; i++ {
		if a, ok := ackFor(t, acks, ss[i]); ok && err == nil {
			// fsynced each after a failed syncfs is right; acknowledged
			// on a syncfs that reported nothing is not.
			t.Logf("stream %d acknowledged to %d", i, a.At.Offset)
		}
	}
	mu.Lock()
	calls := len(told)
	mu.Unlock()
	if calls < 2 {
		t.Errorf("the commit's syncfs and the checkpoint's went through %d descriptor(s): the error the checkpoint saw was hidden from the commit, which acknowledged on a syncfs that reported nothing", calls)
	}
	mustClose(t, d)
}

// A checkpoint that fails while the next segment is being written marks
// only its own segments; the next checkpoint then deleted the one written
// meanwhile, though the failed writeback may have been of its bytes.
func TestJournalFailedCheckpointKeepsLaterSegments(t *testing.T) {
	dir, d := journalDir(t, "boot-1")
	o := new(owner)
	var ss []*target.Stream
	want := make(map[string]string)
	var ends [4]uint64
	for i := range 4 {
		name := fmt.Sprintf("h%02d/app.log", i)
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		p := lines("a "+name, 0, 30)
		ends[i] = mustAppend(t, d, s, o, 0, p)
		ss = append(ss, s)
		want[name] = p
	}
	mustCommit(t, d) // segment 1
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	target.SetSyncfs(t, func(int) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil // later syncfs calls: the error was told already
		}
		close(entered)
		<-release
		return errors.New("EIO (injected)")
	})
	target.Checkpoint(d)
	<-entered
	for i := range 4 {
		name := fmt.Sprintf("h%02d/app.log", i)
		p := lines("b "+name, 0, 30)
		ends[i] = mustAppend(t, d, ss[i], o, ends[i], p)
		want[name] += p
	}
	mustCommit(t, d) // segment 2, while the checkpoint runs
	close(release)
	target.WaitCheckpoint(d)
	before := segmentsIn(t, dir)
	for i := 4; i < 8; i++ {
		name := fmt.Sprintf("h%02d/app.log", i)
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		mustAppend(t, d, s, o, 0, lines("c "+name, 0, 30))
	}
	mustCommit(t, d) // after the failure: four other files
	if n := segmentsIn(t, dir); n != before {
		t.Errorf("%d segments after a commit that followed a failed checkpoint, %d before: the journal went on", n, before)
	}
	target.Checkpoint(d) // would succeed, and delete segment 2
	target.WaitCheckpoint(d)
	playCrash(t, dir, d)
	// What the failed writeback may have lost: the page cache's bytes of
	// the journaled files, all of them.
	for name := range want {
		mustTruncate(t, filepath.Join(dir, name), 0)
	}
	d = mustOpen(t, dir) // the same boot: only marked segments replay
	for name, p := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != p {
			t.Errorf("%s after the failed checkpoint and a restart = %d bytes, want the %d acknowledged", name, len(got), len(p))
		}
	}
	mustClose(t, d)
}

// A segment's name in the state directory must be durable before a commit
// relies on the segment: a crash could otherwise leave the segment's data
// without its name. If it cannot be synced, the commit syncs its files.
func TestJournalSegmentNameSynced(t *testing.T) {
	dir, d := journalDir(t, "boot-1")
	target.SetSegmentDirSync(t, func() error { return errors.New("EIO (injected)") })
	o := new(owner)
	var ss []*target.Stream
	var ends []uint64
	for i := range 4 {
		s, _, _ := mustAttach(t, d, key("c", i), fmt.Sprintf("h%02d/app.log", i), 0, o)
		ss = append(ss, s)
		ends = append(ends, mustAppend(t, d, s, o, 0, lines("a", 0, 20)))
	}
	acks := mustCommit(t, d)
	for i, s := range ss {
		if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != ends[i] {
			t.Errorf("stream %d: ack %v, want up to %d (synced in its file)", i, a.At, ends[i])
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, relpath.StateDir, "journal.*"))
	for _, seg := range segs {
		if info, err := os.Stat(seg); err == nil && info.Size() > 0 {
			t.Errorf("%s holds %d bytes: a commit journaled into a segment whose name was never synced", filepath.Base(seg), info.Size())
		}
	}
	mustClose(t, d)
}

// A file journaled, closed while idle and appended to by another writer is
// recorded afresh when it is opened again. Replay skips the entries of its
// earlier record (another serial), so before that record is replaced the
// file must be made durable: else a crash loses what only those entries
// held.
func TestJournalRecordedAfreshSynced(t *testing.T) {
	dir, d := journalDir(t, "boot-1")
	settles := target.CountSettles(t)
	o := new(owner)
	var victim *target.Stream
	var end uint64
	for i := range 4 {
		name := fmt.Sprintf("h%02d/app.log", i)
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		e := mustAppend(t, d, s, o, 0, lines("a "+name, 0, 40))
		if i == 0 {
			victim, end = s, e
		}
	}
	mustCommit(t, d) // journaled: in the page cache and the segment only
	if n := d.CloseIdle(0); n == 0 {
		t.Fatal("CloseIdle closed nothing")
	}
	path := filepath.Join(dir, "h00/app.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("another writer\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustAppend(t, d, victim, o, end, lines("b", 0, 10)) // opens it again: recorded afresh
	if settles.Load() == 0 {
		t.Error("h00/app.log was recorded afresh, so that replay skips its journal entries, without being synced first: a crash now loses what only those entries held")
	}
	mustCommit(t, d)
	mustClose(t, d)
}
