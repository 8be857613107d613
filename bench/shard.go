//go:build unix

package main

import (
	"fmt"
	"runtime"

	"thunder/internal/shard"
)

// Shard shape: shardCollectors fake collectors with shardStreams files each,
// spread over shardProcs processors by rendezvous hashing of the file name.
const (
	shardCollectors = 100
	shardStreams    = 3
	shardProcs      = 3
	shardStreamMax  = 8 << 20 // bytes per stream at most: ≤ 2.3 GiB per configuration
)

// shardPlan returns the connections of the shard scenario for the given
// processors: collector i streams "cIIII/sJ.log", each to the processor
// shard.Rank(name, addrs) ranks first (all are reachable), on one
// connection per processor it needs, as the real collector with several
// --target-address values does. With one address it is one connection per
// collector carrying all its streams.
func shardPlan(addrs []string) []fakeSpec {
	var plan []fakeSpec
	for i := range shardCollectors {
		id := fmt.Sprintf("c%04d", i)
		by := make([][]fakeStreamSpec, len(addrs))
		for j := range shardStreams {
			s := fakeStreamSpec{name: fmt.Sprintf("%s/s%d.log", id, j), writer: fmt.Sprintf("%s-s%d", id, j)}
			p := shard.Rank(s.name, addrs)[0]
			by[p] = append(by[p], s)
		}
		for p, streams := range by {
			if len(streams) > 0 {
				plan = append(plan, fakeSpec{proc: p, collector: id, streams: streams})
			}
		}
	}
	return plan
}

// runShard plays 100 collectors with 3 files each against three processors,
// each file sent to the processor rendezvous hashing picks, then the same
// load against one processor, and reports the balance, the aggregate
// acknowledged throughput of both and their ratio, each processor's CPU
// and peak RSS; both runs are checked exactly once with linecheck over the
// union of the target dirs.
func (b *bench) runShard() error {
	three, err := b.runFakes("shard3", shardProcs, shardStreamMax, shardPlan)
	if err != nil {
		return fmt.Errorf("%d processors: %w", shardProcs, err)
	}
	one, err := b.runFakes("shard1", 1, shardStreamMax, shardPlan)
	if err != nil {
		return fmt.Errorf("1 processor: %w", err)
	}
	itoa := func(n int) string { return fmt.Sprint(n) }
	mibs := func(k int64) string { return fmt.Sprintf("%.0f", float64(k)/1024) }
	perCore := func(r fakeRun) string {
		c := make([]float64, len(r.cpu))
		for i, x := range r.cpu {
			c[i] = x / r.took.Seconds()
		}
		return joinf(c, "/", func(x float64) string { return fmt.Sprintf("%.2f", x) })
	}
	streams := shardCollectors * shardStreams
	rel := three.mibps() / one.mibps()
	for _, r := range []fakeRun{three, one} {
		b.rep.result("shard", kv{"processors", len(r.streams)}, kv{"collectors", shardCollectors}, kv{"streams", streams},
			kv{"conns", r.conns}, kv{"streams_per_processor", joinf(r.streams, "/", itoa)}, kv{"setup_s", r.setup},
			kv{"bytes", r.sent}, kv{"secs", r.took}, kv{"MiBps", r.mibps()}, kv{"lines_per_s", r.linesPerSec()},
			kv{"frame_lines", fakeFrameLines}, kv{"cpu_processor_cores", perCore(r)}, kv{"cpu_processors_total_cores", r.totalCores()},
			kv{"cpu_bench_cores", r.selfCores()}, kv{"rss_processor_MiB", joinf(r.peakKiB, "/", mibs)},
			kv{"verified", "linecheck.VerifyAll"}, kv{"quiet", r.quiet})
	}
	b.rep.result("shard", kv{"three_over_one", rel}, kv{"cores", runtime.NumCPU()})
	sec := "scale: 3 processors"
	b.rep.add(sec, fmt.Sprintf("%d collectors × %d files, by shard.Rank: files per processor", shardCollectors, shardStreams),
		joinf(three.streams, " / ", itoa), "",
		fmt.Sprintf("%d connections (one per collector per processor it needs); connect + open all %.2f s %s",
			three.conns, three.setup.Seconds(), quietNote(three.quiet, three.busy)))
	b.rep.add(sec, fmt.Sprintf("3 processors: Data frames of %d lines, window 64 KiB per file, %v", fakeFrameLines, b.liveFor),
		fmt.Sprintf("%.1f MiB/s acked", three.mibps()), ratio(three.mibps(), b.ceil.pipe),
		fmt.Sprintf("%.0f lines/s; processors %s core (%.2f in all), peak RSS %s MiB; load generator %.2f core; exactly once over the 3 target dirs (linecheck.VerifyAll)",
			three.linesPerSec(), perCore(three), three.totalCores(), joinf(three.peakKiB, " / ", mibs), three.selfCores()))
	b.rep.add(sec, fmt.Sprintf("same load, 1 processor (%d connections × %d files)", one.conns, shardStreams),
		fmt.Sprintf("%.1f MiB/s acked", one.mibps()), ratio(one.mibps(), b.ceil.pipe),
		fmt.Sprintf("%.0f lines/s; processor %.2f core, peak RSS %s MiB; load generator %.2f core; exactly once (linecheck) %s",
			one.linesPerSec(), one.totalCores(), mibs(one.peakKiB[0]), one.selfCores(), quietNote(one.quiet, one.busy)))
	note := fmt.Sprintf("%d cores: each processor and the load generator can have a core of its own", runtime.NumCPU())
	if runtime.NumCPU() < shardProcs+1 {
		note = fmt.Sprintf("only %d cores: 3 processors cannot use more CPU than 1 could, so this is not CPU scale-out", runtime.NumCPU())
	}
	note += fmt.Sprintf("; processors + load generator used %.2f (3) and %.2f (1) of %d cores",
		three.totalCores()+three.selfCores(), one.totalCores()+one.selfCores(), runtime.NumCPU())
	b.rep.add(sec, "3 processors ÷ 1 processor, same run", fmt.Sprintf("%.2f×", rel), "", note)
	return nil
}
