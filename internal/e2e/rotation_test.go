//go:build unix

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// cleanTimeout bounds how long rotated files may outlive their writers:
// the issue promises "within seconds" (a one-second delete grace, a
// one-second tick, and the flush idle time).
const cleanTimeout = 30 * time.Second

// TestRotationContracts rotates a file shared by writers of every
// contract dozens of times: two writers open/write/close per line, two
// hold flock(LOCK_SH) and reopen every 300ms, one holds the file open
// without a lock for 2s at a time. Every line must arrive exactly once and
// in order, and once the writers have closed their files the source dir
// must hold no rotated file.
func TestRotationContracts(t *testing.T) {
	skipShort(t)
	const (
		lines = 12_000
		rate  = 2_500 // 5 writers * 2,500 * 100 bytes: a 64KiB rotation every ~50ms
	)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, withQuick("--rotate-size=64KiB")...)
	app, other := filepath.Join(src, "app.log"), filepath.Join(src, "sub", "other.log")
	w := startWriters(t)
	w.addWriters(src,
		linecheck.Writer{ID: "owc1", Path: app, Contract: linecheck.OpenWriteClose, Lines: lines, Rate: rate},
		linecheck.Writer{ID: "owc2", Path: app, Contract: linecheck.OpenWriteClose, Lines: lines, Rate: rate},
		linecheck.Writer{ID: "lock1", Path: app, Contract: linecheck.LockedAppend, Lines: lines, Rate: rate, ReopenAfter: 300 * time.Millisecond},
		linecheck.Writer{ID: "lock2", Path: app, Contract: linecheck.LockedAppend, Lines: lines, Rate: rate, ReopenAfter: 300 * time.Millisecond},
		linecheck.Writer{ID: "unlocked", Path: app, Contract: linecheck.Unlocked, Lines: lines, Rate: rate, ReopenAfter: 2 * time.Second},
		linecheck.Writer{ID: "other", Path: other, Contract: linecheck.LockedAppend, Lines: lines, Rate: rate, ReopenAfter: 300 * time.Millisecond},
	)
	// Sample how many rotated files exist at once while the writers run.
	var maxRotated int
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				maxRotated = max(maxRotated, countRotated(src))
			}
		}
	}()
	expect := w.Wait()
	close(stop)
	<-sampled
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	// Every writer has closed its file: the rotated files must go.
	start := time.Now()
	live := map[string]bool{"app.log": true, "sub/other.log": true}
	harness.WaitFor(t, cleanTimeout, func() error {
		var extra []string
		for _, rel := range sourceFiles(t, src) {
			if !live[rel] {
				extra = append(extra, rel)
			}
		}
		if len(extra) > 0 {
			return fmt.Errorf("source dir still holds %d files besides the live ones: %v", len(extra), extra)
		}
		return nil
	}, p, c)
	cleaned := time.Since(start)
	rotations := logCount(c, "file rotated")
	deleted := logCount(c, "rotated file deleted")
	grew := logCount(c, "rotated file grew while deleted; finishing it")
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: lines=%d rotations=%d deleted=%d grew-while-deleted=%d most rotated files at once=%d source dir clean %v after delivery; left: %v",
		r.Lines, rotations, deleted, grew, maxRotated, cleaned.Round(time.Millisecond), sourceFiles(t, src))
	if rotations < 20 {
		t.Errorf("%d rotations, want at least 20", rotations)
	}
	if deleted == 0 || deleted+grew != rotations {
		t.Errorf("%d rotated files deleted (+%d finished after growing), want all %d", deleted, grew, rotations)
	}
}

// TestUnlockedWriterKeepsRotatedFile holds a file open without any lock,
// as an ordinary daemon does, across its rotation: the rotated file must
// stay while the writer holds it, the lines written to it afterwards must
// arrive, and it must go once the writer closes it.
func TestUnlockedWriterKeepsRotatedFile(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, withQuick("--rotate-size=64KiB")...)
	path := filepath.Join(src, "u.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() }) // closed below; a second close is harmless
	var written uint64
	write := func(n uint64) {
		t.Helper()
		if _, err := f.Write(seqLines(t, "u", written, n)); err != nil {
			t.Fatal(err)
		}
		written += n
	}
	expect := func() []linecheck.Expect {
		return []linecheck.Expect{{Writer: "u", Name: "u.log", Lines: written}}
	}

	write(1000) // 100,000 bytes: past the 64KiB rotate size
	waitLog(t, 30*time.Second, c, "file rotated", 1, p, c)
	rotated := rotatedFiles(t, src)
	if len(rotated) != 1 {
		t.Fatalf("rotated files %v, want one", rotated)
	}
	t.Logf("rotated to %s; the writer still holds it", rotated[0])
	rotatedPath := filepath.Join(src, filepath.FromSlash(rotated[0]))

	// The writer goes on appending through its descriptor, i.e. to the
	// rotated file, in small writes spread over a few seconds: longer than
	// the delete grace, so the collector must notice the holder.
	for range 30 {
		write(20)
		pause(t, 100*time.Millisecond)
	}
	waitDelivered(t, target, expect(), linecheck.Options{}, p, c)
	pause(t, 2*time.Second) // two more ticks with everything acknowledged
	if _, err := os.Stat(rotatedPath); err != nil {
		t.Fatalf("rotated file gone while a writer holds it open: %v", err)
	}
	if n := logCount(c, "rotated file deleted"); n != 0 {
		t.Fatalf("collector deleted %d rotated files while the writer holds one", n)
	}
	write(500)
	waitDelivered(t, target, expect(), linecheck.Options{}, p, c)

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	harness.WaitFor(t, cleanTimeout, func() error {
		if _, err := os.Stat(rotatedPath); err == nil {
			return fmt.Errorf("%s still there after the writer closed it", rotated[0])
		}
		return nil
	}, p, c)
	t.Logf("rotated file deleted %v after the writer closed it", time.Since(closed).Round(time.Millisecond))
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect(), linecheck.Options{})
	if left := sourceFiles(t, src); len(left) != 0 && !slices.Equal(left, []string{"u.log"}) {
		t.Errorf("source dir holds %v, want nothing", left)
	}
	t.Logf("figures: lines=%d rotations=%d deletions=%d", written, logCount(c, "file rotated"), logCount(c, "rotated file deleted"))
}
