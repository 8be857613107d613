package target_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/digest"
	"thunder/internal/stream"
	"thunder/internal/target"
)

// verifyAll runs Verify without a rate limit and returns its results by
// name (a name may have several entries).
func verifyAll(t testing.TB, d *target.Dir) (map[string][]target.FileResult, target.Summary) {
	t.Helper()
	got := make(map[string][]target.FileResult)
	sum, err := d.Verify(t.Context(), nil, func(r target.FileResult) { got[r.Name] = append(got[r.Name], r) })
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	return got, sum
}

// onlyResult returns the one result for name.
func onlyResult(t testing.TB, got map[string][]target.FileResult, name string) target.FileResult {
	t.Helper()
	if len(got[name]) != 1 {
		t.Fatalf("Verify results for %s = %+v, want one", name, got[name])
	}
	return got[name][0]
}

// writeCommitted appends n bytes of 100-byte lines to name in appends of
// 10 KiB (so the file passes checkpoints) and commits; it returns the
// stream and its end.
func writeCommitted(t testing.TB, d *target.Dir, k stream.Key, name string, n int) (*target.Stream, *owner, uint64) {
	t.Helper()
	o := &owner{name}
	s, off, _ := mustAttach(t, d, k, name, 0, o)
	p := payload(10 << 10)
	for written := 0; written < n; written += len(p) {
		off = mustAppend(t, d, s, o, off, string(p))
	}
	mustCommit(t, d)
	return s, o, off
}

// overwrite writes b at offset of path, in place.
func overwrite(t testing.TB, path string, offset int64, b string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(b), offset); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyUntouched(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pre.log"), []byte("not ours\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dir)
	writeCommitted(t, d, key("c", 1), "a.log", 300<<10)
	writeCommitted(t, d, key("c", 2), "sub/b.log", 20<<10)
	writeCommitted(t, d, key("c", 3), "pre.log", 100<<10)
	got, sum := verifyAll(t, d)
	if !sum.OK() || sum.Files != 3 {
		t.Fatalf("Verify of an untouched dir = %+v: %+v", sum, got)
	}
	for _, name := range []string{"a.log", "sub/b.log", "pre.log"} {
		r := onlyResult(t, got, name)
		b := readFile(t, filepath.Join(dir, name))
		if r.Size != int64(len(b)) || r.Digest != digest.Checksum([]byte(b[r.Base:])) || r.Lines != uint64(strings.Count(b[r.Base:], "\n")) {
			t.Errorf("%s: %+v; file holds %d bytes from base, digest %08x", name, r, len(b)-int(r.Base), digest.Checksum([]byte(b[r.Base:])))
		}
	}
	if r := onlyResult(t, got, "pre.log"); r.Base != int64(len("not ours\n")) {
		t.Errorf("pre.log base = %d, want the size it had before the processor wrote", r.Base)
	}
	// Bytes before the base are not ours: changing them is not checked.
	overwrite(t, filepath.Join(dir, "pre.log"), 0, "NOT")
	if got, sum := verifyAll(t, d); !sum.OK() {
		t.Errorf("Verify after changing bytes before the base = %+v", got)
	}
}

func TestVerifyModifiedByte(t *testing.T) {
	for _, at := range []int64{0, 64<<10 - 1, 64 << 10, 150_000, 300<<10 - 1} {
		dir := t.TempDir()
		d := mustOpen(t, dir)
		writeCommitted(t, d, key("c", 1), "a.log", 300<<10)
		writeCommitted(t, d, key("c", 2), "b.log", 300<<10)
		overwrite(t, filepath.Join(dir, "a.log"), at, "#")
		got, sum := verifyAll(t, d)
		r := onlyResult(t, got, "a.log")
		if r.Verdict != target.VerdictModified || at < r.Offset || at >= r.End {
			t.Errorf("byte %d changed: Verify = %+v, want modified in a range containing it", at, r)
		}
		if r.End-r.Offset > 64<<10+10<<10 {
			t.Errorf("byte %d changed: range [%d, %d) is wider than a checkpoint interval and an append", at, r.Offset, r.End)
		}
		if b := onlyResult(t, got, "b.log"); b.Verdict != target.VerdictOK {
			t.Errorf("b.log untouched: %+v", b)
		}
		if sum.OK() || sum.Counts[target.VerdictModified] != 1 {
			t.Errorf("summary = %+v, want one modified", sum)
		}
		mustClose(t, d)
	}
}

func TestVerifyTruncatedReplacedMissing(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	for i, name := range []string{"t.log", "r.log", "m.log", "ok.log"} {
		writeCommitted(t, d, key("c", i), name, 100<<10)
	}
	if err := os.Truncate(filepath.Join(dir, "t.log"), 1000); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "r.log.tmp")
	if err := os.WriteFile(tmp, []byte(readFile(t, filepath.Join(dir, "r.log"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "r.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "m.log")); err != nil {
		t.Fatal(err)
	}
	got, sum := verifyAll(t, d)
	if r := onlyResult(t, got, "t.log"); r.Verdict != target.VerdictTruncated || r.Found != 1000 || r.Size != fileSizeOf(100<<10) {
		t.Errorf("truncated file: %+v, want truncated, found 1000 of %d", r, fileSizeOf(100<<10))
	}
	if r := onlyResult(t, got, "r.log"); r.Verdict != target.VerdictReplaced {
		t.Errorf("file renamed over (same content): %+v, want replaced", r)
	}
	if r := onlyResult(t, got, "m.log"); r.Verdict != target.VerdictMissing {
		t.Errorf("deleted file: %+v, want missing", r)
	}
	if r := onlyResult(t, got, "ok.log"); r.Verdict != target.VerdictOK {
		t.Errorf("untouched file: %+v, want ok", r)
	}
	if sum.Files != 4 || sum.Counts[target.VerdictOK] != 1 {
		t.Errorf("summary = %+v", sum)
	}
	// A link at the name is not followed: replaced.
	if err := os.Remove(filepath.Join(dir, "ok.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("r.log", filepath.Join(dir, "ok.log")); err != nil {
		t.Fatal(err)
	}
	got, _ = verifyAll(t, d)
	if r := onlyResult(t, got, "ok.log"); r.Verdict != target.VerdictReplaced {
		t.Errorf("a symlink at the name: %+v, want replaced", r)
	}
}

// fileSizeOf is what writeCommitted writes for n.
func fileSizeOf(n int) int64 {
	p := int64(len(payload(10 << 10)))
	return (int64(n) + p - 1) / p * p
}

// Bytes another process appends are not in the processor's digest: once
// the processor commits past them, verify reports the file modified there.
func TestVerifyForeignAppend(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 200<<10)
	path := filepath.Join(dir, "a.log")
	at := fileSize(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("intruder\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := verifyAll(t, d); onlyResult(t, got, "a.log").Verdict != target.VerdictOK {
		t.Errorf("foreign bytes past the committed length are not checked yet: %+v", got)
	}
	mustAppend(t, d, s, o, off, lines("more", 0, 100))
	mustCommit(t, d)
	got, _ := verifyAll(t, d)
	r := onlyResult(t, got, "a.log")
	if r.Verdict != target.VerdictModified || at < r.Offset || at >= r.End {
		t.Errorf("foreign append at %d: %+v, want modified in a range containing it", at, r)
	}
}

// After logrotate moves a file away, its entry reports it missing until a
// Reopen, which drops it; the new file at the name is then ok.
func TestVerifyRotationReopen(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 100<<10)
	if err := os.Rename(filepath.Join(dir, "a.log"), filepath.Join(dir, "a.log.1")); err != nil {
		t.Fatal(err)
	}
	got, _ := verifyAll(t, d)
	if r := onlyResult(t, got, "a.log"); r.Verdict != target.VerdictMissing {
		t.Errorf("rotated away, no SIGHUP yet: %+v, want missing", r)
	}
	if _, err := target.ReopenAcks(d); err != nil {
		t.Fatal(err)
	}
	off = mustAppend(t, d, s, o, off, lines("new", 0, 2000))
	mustCommit(t, d)
	got, sum := verifyAll(t, d)
	if r := onlyResult(t, got, "a.log"); r.Verdict != target.VerdictOK || r.Base != 0 || r.Size != fileSize(t, filepath.Join(dir, "a.log")) {
		t.Errorf("new file after Reopen: %+v", r)
	}
	if sum.Files != 1 || !sum.OK() {
		t.Errorf("summary after rotation and Reopen = %+v, want the new file only", sum)
	}
	// A Reopen with the file still there keeps its entry and continues it.
	if _, err := target.ReopenAcks(d); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, d, s, o, off, lines("after", 0, 2000))
	mustCommit(t, d)
	if got, sum := verifyAll(t, d); sum.Files != 1 || !sum.OK() {
		t.Errorf("after a Reopen without rotation: %+v", got)
	}
}

// A file deleted or replaced without a Reopen stays reported beside the
// new file's entry.
func TestVerifyReplacedStaysReported(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 20<<10)
	if err := os.Remove(filepath.Join(dir, "a.log")); err != nil {
		t.Fatal(err)
	}
	// The processor finds its file deleted at the next commit, rewinds the
	// stream, and its resend goes to a new file.
	mustAppend(t, d, s, o, off, "lost\n")
	mustCommit(t, d)
	s, off, _ = mustAttach(t, d, key("c", 1), "a.log", 0, o)
	end := mustAppend(t, d, s, o, off, "resent\n")
	// The resend is committed (it was not, once: the file stayed dirty
	// after its rewind and was never queued for a commit again).
	if a, ok := ackFor(t, mustCommit(t, d), s); !ok || a.At.Offset != end {
		t.Fatalf("resend after the deletion not acknowledged: %+v, %v; want %d", a, ok, end)
	}
	got, _ := verifyAll(t, d)
	verdicts := map[target.Verdict]int{}
	for _, r := range got["a.log"] {
		verdicts[r.Verdict]++
	}
	if len(got["a.log"]) != 2 || verdicts[target.VerdictOK] != 1 || verdicts[target.VerdictReplaced] != 1 {
		t.Errorf("deleted and recreated: %+v, want the old entry replaced and the new ok", got["a.log"])
	}
}

// A crash between appends and their commit leaves a ledger that agrees
// with what recovery leaves, for a file new at the crash and for one
// continued, and the entry continues after the restart.
func TestVerifyAfterCrash(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 150<<10)
	mustAppend(t, d, s, o, off, string(payload(100<<10))) // past a checkpoint, never committed
	sB, _, _ := mustAttach(t, d, key("c", 2), "b.log", 0, o)
	mustAppend(t, d, sB, o, 0, lines("B", 0, 100)) // a new file, never committed
	crash(t, d, dir)

	d = mustOpen(t, dir)
	if got, sum := verifyAll(t, d); !sum.OK() || sum.Files != 1 {
		t.Fatalf("after the crash: %+v, %+v; want a.log ok", sum, got)
	}
	s, off, _ = mustAttach(t, d, key("c", 1), "a.log", 0, o)
	for range 10 {
		off = mustAppend(t, d, s, o, off, string(payload(10<<10)))
	}
	sB, _, _ = mustAttach(t, d, key("c", 2), "b.log", 0, o)
	mustAppend(t, d, sB, o, 0, lines("B", 0, 100))
	mustCommit(t, d)
	got, sum := verifyAll(t, d)
	if !sum.OK() || sum.Files != 2 {
		t.Fatalf("after the resend: %+v, %+v", sum, got)
	}
	if r := onlyResult(t, got, "a.log"); r.Base != 0 || r.Size != fileSize(t, filepath.Join(dir, "a.log")) {
		t.Errorf("a.log entry after restart = %+v, want it continued from 0", r)
	}
	// A clean restart continues the entries too.
	mustClose(t, d)
	d = mustOpen(t, dir)
	s, off, _ = mustAttach(t, d, key("c", 1), "a.log", 0, o)
	mustAppend(t, d, s, o, off, lines("A", 0, 10))
	mustCommit(t, d)
	if got, sum := verifyAll(t, d); !sum.OK() || sum.Files != 2 {
		t.Errorf("after a clean restart: %+v, %+v", sum, got)
	}
	// A corrupted byte found after the restart is still placed.
	overwrite(t, filepath.Join(dir, "a.log"), 200_000, "#")
	got, _ = verifyAll(t, d)
	if r := onlyResult(t, got, "a.log"); r.Verdict != target.VerdictModified || r.Offset > 200_000 || r.End <= 200_000 {
		t.Errorf("byte 200000 changed after restarts: %+v", r)
	}
}

// countingLimiter records what Verify asks of its limiter.
type countingLimiter struct {
	calls, bytes, largest int
}

func (l *countingLimiter) WaitN(_ context.Context, n int) error {
	l.calls++
	l.bytes += n
	l.largest = max(l.largest, n)
	return nil
}

func TestVerifyRateBounded(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	writeCommitted(t, d, key("c", 1), "a.log", 3<<20)
	writeCommitted(t, d, key("c", 2), "b.log", 10<<10)
	var lim countingLimiter
	sum, err := d.Verify(t.Context(), &lim, func(target.FileResult) {})
	if err != nil || !sum.OK() {
		t.Fatalf("Verify = %+v, %v", sum, err)
	}
	if int64(lim.bytes) != sum.Bytes || sum.Bytes != fileSizeOf(3<<20)+fileSizeOf(10<<10) {
		t.Errorf("limiter asked for %d bytes, Verify read %d; want both the %d committed", lim.bytes, sum.Bytes, fileSizeOf(3<<20)+fileSizeOf(10<<10))
	}
	if lim.largest > target.VerifyChunkBytes || lim.calls < 4 {
		t.Errorf("limiter: %d calls, largest %d; want chunks of at most %d", lim.calls, lim.largest, target.VerifyChunkBytes)
	}
	// A cancelled context stops it.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.Verify(ctx, target.NewRate(1<<20), func(target.FileResult) {}); err == nil {
		t.Error("Verify with a cancelled context succeeded")
	}
}

func TestVerifyStreams(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	_, _, end := writeCommitted(t, d, key("web-1", 1), "a.log", 20<<10)
	var got []target.StreamResult
	if err := d.Streams(func(s target.StreamResult) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	b := readFile(t, filepath.Join(dir, "a.log"))
	if len(got) != 1 || got[0].Collector != "web-1" || got[0].Name != "a.log" || got[0].Bytes != end || got[0].ID != key("web-1", 1).ID.String() ||
		got[0].Digest != digest.Checksum([]byte(b)) || got[0].Lines != uint64(strings.Count(b, "\n")) {
		t.Errorf("Streams = %+v, want web-1's a.log at %d, digest %08x", got, end, digest.Checksum([]byte(b)))
	}
}

// TestVerifyWhileWriting: checks run while appends and commits go on find
// every file ok each time: what they read of a file is what its snapshot
// of the ledger describes.
func TestVerifyWhileWriting(t *testing.T) {
	d := mustOpen(t, t.TempDir())
	type writer struct {
		s   *target.Stream
		o   *owner
		off uint64
	}
	var ws []*writer
	for i := range 3 {
		o := &owner{fmt.Sprint(i)}
		s, _, _ := mustAttach(t, d, key("c", i), fmt.Sprintf("w%d.log", i), 0, o)
		ws = append(ws, &writer{s, o, 0})
	}
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		p := payload(7 << 10)
		for n := 0; ; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			for _, w := range ws {
				c := chunk(w.off, w.off+uint64(len(p)), p)
				if err := w.s.Append(w.o, c); err != nil {
					done <- err
					return
				}
				w.off = c.End
			}
			if n%3 == 0 {
				if _, err := d.Commit(); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	for range 30 {
		got, sum := verifyAll(t, d)
		if !sum.OK() {
			close(stop)
			<-done
			t.Fatalf("Verify while writing = %+v: %+v", sum, got)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustCommit(t, d)
	if got, sum := verifyAll(t, d); !sum.OK() || sum.Files != 3 {
		t.Fatalf("Verify after writing = %+v: %+v", sum, got)
	}
}

// A file truncated by someone while written is written again from where it
// was cut, under a new entry; the old entry reports the truncation until a
// Reopen drops it, the file being still at its name.
func TestVerifyTruncatedThenReopen(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	s, o, off := writeCommitted(t, d, key("c", 1), "a.log", 100<<10)
	if err := os.Truncate(filepath.Join(dir, "a.log"), 500); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, d, s, o, off, "seen truncated\n") // the commit finds it cut and rewinds
	mustCommit(t, d)
	s, off, _ = mustAttach(t, d, key("c", 1), "a.log", 0, o)
	mustAppend(t, d, s, o, off, "resent\n")
	mustCommit(t, d)
	got, _ := verifyAll(t, d)
	verdicts := map[target.Verdict]int{}
	for _, r := range got["a.log"] {
		verdicts[r.Verdict]++
	}
	if len(got["a.log"]) != 2 || verdicts[target.VerdictTruncated] != 1 || verdicts[target.VerdictOK] != 1 {
		t.Fatalf("after a truncation: %+v, want the old entry truncated and a new one ok", got["a.log"])
	}
	if _, err := target.ReopenAcks(d); err != nil {
		t.Fatal(err)
	}
	got, sum := verifyAll(t, d)
	// The new entry starts where the file was when opened again: the cut
	// kept the append that found the file truncated.
	if r := onlyResult(t, got, "a.log"); r.Verdict != target.VerdictOK || r.Base != 500+int64(len("seen truncated\n")) {
		t.Errorf("after the Reopen: %+v, want the new entry only", r)
	}
	if !sum.OK() {
		t.Errorf("summary after the Reopen = %+v", sum)
	}
}
