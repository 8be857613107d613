//go:build unix

package e2e_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// TestDiskFull gives the processor a 2 MiB target dir and a collector with
// more to ship: the processor must report the storage error, keep only
// whole lines in its files, and acknowledge nothing it could not write
// (what it did not write is resent later, so an acknowledged loss would
// show as a lost line). Once the filesystem grows, everything must arrive
// exactly once without restarting anything.
func TestDiskFull(t *testing.T) {
	skipShort(t)
	target := harness.MountTmpfs(t, "2m")
	src := t.TempDir()

	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	// 3 × 12,000 lines of 100 bytes: 3.6 MB, well over 2 MiB.
	specs := []writerSpec{
		{ID: "full-a", Dir: src, Name: "a.log", Contract: linecheck.OpenWriteClose, Lines: linesPerWriter, Rate: 2 * writerRate},
		{ID: "full-b", Dir: src, Name: "sub/b.log", Contract: linecheck.LockedAppend, Lines: linesPerWriter, Rate: 2 * writerRate},
		{ID: "full-c", Dir: src, Name: "c.log", Contract: linecheck.Unlocked, Lines: linesPerWriter, Rate: 2 * writerRate},
	}
	w := startWriters(t, specs...)

	waitLogRE(t, 45*time.Second, p, regexp.MustCompile(`no space left on device`), p, c)
	expect := w.Wait()

	// While full: both daemons live on; the target holds whole lines only,
	// none twice, and not all of them.
	var full linecheck.Report
	harness.WaitFor(t, 20*time.Second, func() error {
		r, err := linecheck.Verify(target, expect, linecheck.Options{})
		if err != nil {
			return err
		}
		if r.Failed() {
			t.Fatalf("while full: %v\n%s%s", r, problems(r), listing(target))
		}
		if r.Partial != 0 {
			return fmt.Errorf("while full: %v (a partial line is left after a failed write)", r)
		}
		full = r
		return nil
	}, p, c)
	t.Logf("while full: %v", full)
	if full.Complete() {
		t.Fatalf("everything arrived on a 2 MiB filesystem: %v", full)
	}
	if !regexp.MustCompile(`collector refused.*code=storage|commit failed`).MatchString(p.LogText()) {
		t.Error("processor did not report the storage failure as a refusal or a failed commit")
	}

	harness.RemountTmpfs(t, target, "64m")
	t.Log("tmpfs grown to 64 MiB")
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}
