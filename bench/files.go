//go:build unix

package main

import (
	"fmt"
	"time"

	"thunder/internal/linecheck"
)

// runFiles writes 10,000 files into a running collector's source dir,
// 16 writers at a time, 10 write(2)s per file, and measures the time from
// the first write until the target holds every line; linecheck then checks
// that each line arrived exactly once, in order, under its name.
func (b *bench) runFiles() error {
	dir, err := b.scratch("files")
	if err != nil {
		return err
	}
	defer b.drop(dir)
	cfg := pairConfig{bin: b.bin, dir: dir}
	p, err := startPair(b.ctx, cfg)
	if err != nil {
		return err
	}
	defer p.kill()
	lines := 100
	if b.quick {
		lines = 20
	}
	q, busy := b.quiet()
	c0, p0, err := p.cpu()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := writeFiles(cfg.src(), idleFiles, lines, 10, 16); err != nil {
		return err
	}
	written := time.Since(start)
	want := int64(idleFiles * lines * lineBytes)
	if err := waitTree(cfg.dst(), idleFiles, want, 30*time.Second, 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(start)
	c1, p1, err := p.cpu()
	if err != nil {
		return err
	}
	cu, pu, err := p.stop()
	if err != nil {
		return err
	}
	expect := make([]linecheck.Expect, idleFiles)
	for i := range expect {
		expect[i] = linecheck.Expect{Writer: fileID(i), Name: fileID(i) + ".log", Lines: uint64(lines)}
	}
	rep, err := linecheck.Verify(cfg.dst(), expect, linecheck.Options{})
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("target check: %v %v", rep, rep.Problems)
	}
	b.rep.result("files", kv{"files", idleFiles}, kv{"lines_per_file", lines}, kv{"bytes", want}, kv{"write_s", written},
		kv{"delivered_s", took}, kv{"files_per_s", idleFiles / took.Seconds()}, kv{"MiBps", mibps(want, took)},
		kv{"cpu_collector_s", c1 - c0}, kv{"cpu_processor_s", p1 - p0},
		kv{"rss_collector_MiB", float64(cu.peakKiB) / 1024}, kv{"rss_processor_MiB", float64(pu.peakKiB) / 1024},
		kv{"verified", "linecheck"}, kv{"quiet", q})
	b.rep.add("scale: 10,000 files", fmt.Sprintf("written concurrently (16 writers, %d lines each) → all in target", lines),
		fmt.Sprintf("%.2f s", took.Seconds()), "",
		fmt.Sprintf("writing took %.2f s; %.0f files/s; CPU collector %.1f s, processor %.1f s; RSS %.0f / %.0f MiB; exactly once (linecheck) %s",
			written.Seconds(), idleFiles/took.Seconds(), c1-c0, p1-p0, float64(cu.peakKiB)/1024, float64(pu.peakKiB)/1024, quietNote(q, busy)))
	return nil
}
