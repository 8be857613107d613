//go:build unix

package e2e_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// TestManyFiles streams 10,000 files spread over 100 subdirectories: half
// written before the collector starts (and appended to after), half
// created while it runs. Every line must arrive exactly once. The
// collector's descriptors and memory at the end are reported, not
// asserted.
func TestManyFiles(t *testing.T) {
	skipShort(t)
	const (
		dirs        = 100
		filesPerDir = 100
		fdReport    = 2_000 // more descriptors than this is reported (a known gap), not failed
	)
	target, src := t.TempDir(), t.TempDir()
	type file struct {
		id, name string
		lines    uint64
	}
	var files []*file
	for d := range dirs {
		for f := range filesPerDir {
			files = append(files, &file{
				id:   fmt.Sprintf("d%02d-f%03d", d, f),
				name: fmt.Sprintf("d%02d/f%03d.log", d, f),
			})
		}
	}
	write := func(f *file, n uint64) {
		appendLines(t, filepath.Join(src, filepath.FromSlash(f.name)), f.id, f.lines, n)
		f.lines += n
	}
	start := time.Now()
	for i, f := range files {
		if i%2 == 0 {
			write(f, 3)
		}
	}
	t.Logf("%d files written before the collector starts in %v", len(files)/2, time.Since(start).Round(time.Millisecond))

	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, quickArgs...)
	start = time.Now()
	for i, f := range files {
		if i%2 == 0 {
			write(f, 2)
		} else {
			write(f, 3)
		}
	}
	t.Logf("%d files created and %d appended to while the collector runs, in %v",
		len(files)/2, len(files)/2, time.Since(start).Round(time.Millisecond))

	expect := make([]linecheck.Expect, len(files))
	var total uint64
	for i, f := range files {
		expect[i] = linecheck.Expect{Writer: f.id, Name: f.name, Lines: f.lines}
		total += f.lines
	}
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	delivered := time.Since(start)
	cfds, crss := procUsage(t, c.Pid())
	pfds, prss := procUsage(t, p.Pid())
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: files=%d lines=%d (%d in target) delivered %v after the collector started; collector fds=%d rss=%.1fMiB; processor fds=%d rss=%.1fMiB; race=%v",
		len(files), total, r.Lines, delivered.Round(time.Millisecond), cfds, float64(crss)/1024, pfds, float64(prss)/1024, harness.Race)
	if cfds > fdReport {
		t.Logf("note: the collector holds %d descriptors for %d files (more than %d)", cfds, len(files), fdReport)
	}
	if pfds > fdReport {
		t.Logf("note: the processor holds %d descriptors for %d target files (more than %d)", pfds, len(files), fdReport)
	}
	for _, msg := range []string{"inotify queue overflowed; rescanning", "cannot open source file",
		"open file limit reached; closing idle delivered files, reopened when they change"} {
		if n := logCount(c, msg); n > 0 {
			t.Logf("collector logged %q %d times", msg, n)
		}
	}
}
