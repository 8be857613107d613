//go:build unix

package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// bulkResult is one bulk run.
type bulkResult struct {
	visible, durable float64 // MiB/s
	collCPU, procCPU float64 // seconds per GiB
	collMiB, procMiB float64 // peak RSS
	wire             float64 // bytes written to the socket / file bytes

	secsVisible, secsDurable time.Duration
	quiet                    bool    // the box was quiet before the run
	busy                     float64 // else how busy, % of all cores
}

// runBulk drops the corpus into the source dir (a hard link appears
// complete, like the kit's waitfile -drop-mode mv) and measures until the
// target holds every byte (visible) and until the processor, stopped with
// SIGTERM right then, has made its final commit and exited 0 (durable),
// without and with --compress=zstd.
func (b *bench) runBulk() error {
	for _, comp := range []string{"", "zstd"} {
		if err := b.bulkOnce(comp); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) bulkOnce(comp string) error {
	name := "plain"
	var args []string
	if comp != "" {
		name, args = comp, []string{"--compress=" + comp}
	}
	// Median of b.runs by the durable figure, with the spread: one run
	// of a 2-core VM can be a third off (issue 16).
	runs := make([]bulkResult, 0, b.runs)
	for range b.runs {
		r, err := b.bulkRun(args)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(x, y bulkResult) int { return cmp.Compare(x.durable, y.durable) })
	r := runs[len(runs)/2]
	spread := fmt.Sprintf("median of %d (%.0f–%.0f MiB/s, %.2f–%.2f×)", len(runs), runs[0].durable, runs[len(runs)-1].durable,
		runs[0].durable/b.ceil.pipe, runs[len(runs)-1].durable/b.ceil.pipe)
	b.bulk[name] = r
	b.rep.result("bulk", kv{"compress", name}, kv{"bytes", b.corpusBytes}, kv{"MiBps_visible", r.visible},
		kv{"MiBps_durable", r.durable}, kv{"secs_visible", r.secsVisible}, kv{"secs_durable", r.secsDurable},
		kv{"ratio_ceiling", r.durable / b.ceil.pipe}, kv{"cpu_collector_s_per_GiB", r.collCPU},
		kv{"cpu_processor_s_per_GiB", r.procCPU}, kv{"rss_collector_MiB", r.collMiB},
		kv{"rss_processor_MiB", r.procMiB}, kv{"wire_ratio", r.wire}, kv{"verified", "cmp"}, kv{"quiet", r.quiet},
		kv{"runs", len(runs)}, kv{"MiBps_durable_min", runs[0].durable}, kv{"MiBps_durable_max", runs[len(runs)-1].durable})
	sec := "bulk " + name
	note := quietNote(r.quiet, r.busy)
	b.rep.add(sec, fmt.Sprintf("%d MiB file → durable in target", b.corpusBytes/mib), fmt.Sprintf("%.0f MiB/s", r.durable),
		ratio(r.durable, b.ceil.pipe), fmt.Sprintf("%s; %.2f s; target == source (cmp) %s", spread, r.secsDurable.Seconds(), note))
	b.rep.add(sec, "→ visible in target (before final commit)", fmt.Sprintf("%.0f MiB/s", r.visible), ratio(r.visible, b.ceil.pipe), "")
	b.rep.add(sec, "CPU collector / processor", fmt.Sprintf("%.2f / %.2f s/GiB", r.collCPU, r.procCPU), "", "user+sys")
	b.rep.add(sec, "peak RSS collector / processor", fmt.Sprintf("%.0f / %.0f MiB", r.collMiB, r.procMiB), "", "VmHWM")
	b.rep.add(sec, "bytes written to the socket / file bytes", fmt.Sprintf("%.3f", r.wire), "", "collector wchar (/proc/PID/io)")
	return nil
}

// bulkRun ships the corpus through a fresh pair whose collector gets
// collArgs, and measures it; the target must equal the source.
func (b *bench) bulkRun(collArgs []string) (bulkResult, error) {
	var r bulkResult
	dir, err := b.scratch("bulk")
	if err != nil {
		return r, err
	}
	defer b.drop(dir)
	p, err := startPair(b.ctx, pairConfig{bin: b.bin, dir: dir, collArgs: collArgs})
	if err != nil {
		return r, err
	}
	defer p.kill()
	q, busy := b.quiet()
	c0, p0, err1 := p.cpu()
	w0, err2 := ioField(p.coll.pid(), "wchar")
	if err := errors.Join(err1, err2); err != nil {
		return r, err
	}
	dst := filepath.Join(dir, "dst", "bulk.log")
	start := time.Now()
	if err := os.Link(b.corpus, filepath.Join(dir, "src", "bulk.log")); err != nil {
		return r, err
	}
	if err := waitSize(dst, b.corpusBytes, 30*time.Second, 20*time.Minute); err != nil {
		return r, err
	}
	visible := time.Since(start)
	c1, err1 := cpuSeconds(p.coll.pid())
	w1, err2 := ioField(p.coll.pid(), "wchar")
	collPeak, err3 := statusKiB(p.coll.pid(), "VmHWM")
	if err := errors.Join(err1, err2, err3); err != nil {
		return r, err
	}
	pu, err := p.proc.stop() // final commit: fsync + state record, then exit 0
	durable := time.Since(start)
	if err != nil {
		return r, fmt.Errorf("processor stop after bulk: %w", err)
	}
	if _, err := p.coll.stop(); err != nil {
		return r, err
	}
	if err := sameContent(b.corpus, dst); err != nil {
		return r, err
	}
	return bulkResult{
		visible: mibps(b.corpusBytes, visible), durable: mibps(b.corpusBytes, durable),
		collCPU: perGiB(c1-c0, b.corpusBytes), procCPU: perGiB(pu.cpu-p0, b.corpusBytes),
		collMiB: float64(collPeak) / 1024, procMiB: float64(pu.peakKiB) / 1024,
		wire: float64(w1-w0) / float64(b.corpusBytes), secsVisible: visible, secsDurable: durable,
		quiet: q, busy: busy,
	}, nil
}

// waitSize polls path every 2 ms until it holds want bytes. It fails when
// the size has not changed for stall or timeout has passed.
func waitSize(path string, want int64, stall, timeout time.Duration) error {
	start := time.Now()
	last, lastChange := int64(-1), start
	for {
		n := fileSize(path)
		if n >= want {
			return nil
		}
		now := time.Now()
		if n != last {
			last, lastChange = n, now
		}
		if now.Sub(lastChange) > stall || now.Sub(start) > timeout {
			return fmt.Errorf("%s holds %d of %d bytes after %v", path, n, want, now.Sub(start).Round(time.Millisecond))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
