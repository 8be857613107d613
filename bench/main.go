//go:build unix

// Command bench is thunder's benchmark suite: it builds cmd/thunder, runs the
// real daemons on 127.0.0.1 through the scenarios of docs/BENCHMARKS.md
// (bulk, live, idle, scale, Kafka output, and optionally the rsyslog and
// syslog-ng peers of the shared kit) and prints a table in which every figure is compared
// with a ceiling measured in the same run: one loopback TCP connection into
// a file with an fsync at the end.
//
// Usage:
//
//	go run ./bench [-quick] [-peers] [-only=bulk,live,...]
//
// Every load is bounded in size and time, only loopback addresses are used,
// and only processes started here are stopped, by PID. Scratch data goes to
// $BENCH_WORK (default /tmp/thunder-bench) and is removed, except the
// corpus, which is kept for the next run; every figure is also printed as a
// RESULT line and appended to $BENCH_WORK/results.txt.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"thunder/internal/harness"
)

// scenarios in the order they run.
var scenarios = []string{"bulk", "live", "checksums", "idle", "files", "fleet", "fleet10k", "storm", "storm10k", "shard", "kafka", "peers"}

// bench holds what every scenario needs.
type bench struct {
	ctx         context.Context
	bin         string // thunder binary built for this run
	work        string // $BENCH_WORK
	tmp         string // this run's scratch dir under work, removed at the end
	corpus      string
	corpusBytes int64
	quick       bool
	runs        int           // repetitions of the ceiling
	liveFor     time.Duration // per live run
	idleFor     time.Duration // idle CPU window
	quietMax    time.Duration // longest wait for a quiet box before a run
	procFlags   []string      // more flags for the processors of the fake scenarios
	rep         *report
	ceil        ceilings
	bulk        map[string]bulkResult // by compression
	live        map[string]liveResult // by case name
	idle        idleResult
	peers       []peerResult
	// peersSkipped: the peers were wanted but not asked for with -peers.
	peersSkipped bool
	keep         bool // -keep: the scratch dir stays
	keptFailed   bool // a failed run's dir was kept: so is the scratch dir above it
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 2 && args[0] == framesCeilServeArg {
		return framesCeilingServe(args[1])
	}
	b, want, err := newBench(ctx, args)
	if err != nil {
		return err
	}
	defer b.drop(b.tmp)
	b.logf("machine: %s load1=%.2f", machine(), loadAverage())
	if b.bin, err = harness.Build(ctx, b.tmp, false); err != nil {
		return err
	}
	if b.corpus, b.corpusBytes, err = corpus(filepath.Join(b.work, "corpus"), b.corpusBytes); err != nil {
		return err
	}
	b.rep.result("machine", kv{"info", machine()}, kv{"load1", loadAverage()}, kv{"quick", b.quick})
	b.logf("ceiling: %d MiB through loopback TCP into a file + fsync", b.corpusBytes/mib)
	if err := b.measureCeilings(); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	failed := b.runScenarios(want)
	if b.peersSkipped {
		b.rep.add("peers", "skipped", "run with -peers", "", "")
	}
	b.targets()
	fmt.Println()
	fmt.Printf("thunder benchmark, %s, load1 %.2f at the end\n", machine(), loadAverage())
	b.rep.print(os.Stdout)
	fmt.Printf("\nRESULT lines appended to %s\n", b.rep.results)
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

// drop removes a scratch dir, unless -keep asked to keep it, and notes
// when it removed many files (afterDeletes).
func (b *bench) drop(dir string) {
	if b.keep || b.keptFailed && dir == b.tmp {
		b.logf("kept, with the daemons' logs: %s", dir)
		return
	}
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			n++
		}
		return nil
	})
	os.RemoveAll(dir)
	if n >= manyDeletes {
		_ = os.WriteFile(filepath.Join(b.work, lastDeletesFile), []byte(time.Now().Format(time.RFC3339Nano)), 0o644)
	}
}

// keepFailed keeps the dir of a run that failed, with the daemons' logs,
// for a look at what went wrong (a loss seen once in many runs is not seen
// again on demand).
func (b *bench) keepFailed(dir string) {
	b.keptFailed = true
	b.logf("the run failed; kept, with the daemons' logs: %s", dir)
}

// ext4 without a journal (this VM's root), when it creates a file, passes
// over every free inode deleted in the last 60 s, or 360 s while its inode
// table block is dirty (RECENTCY_MIN, RECENTCY_DIRTY: recently_deleted in
// fs/ext4/ialloc.c), reading each one's inode. A run that creates thousands
// of files after thousands were deleted spends a third of its CPU and more
// there (docs/BENCHMARKS.md): it would measure the run before it. So runs
// wait out the 60 s; the creates of the run itself dirty the blocks again,
// which no wait between runs avoids: measure scale on a journaled file
// system (BENCH_WORK) for figures without it.
const (
	manyDeletes     = 1000
	recentlyDeleted = 60 * time.Second   // RECENTCY_MIN
	lastDeletesFile = "last-mass-delete" // in b.work: runs of bench before this one count too
)

// afterDeletes waits until ext4 no longer passes over the inodes of the
// last mass delete, and returns how long it waited.
func (b *bench) afterDeletes() time.Duration {
	raw, err := os.ReadFile(filepath.Join(b.work, lastDeletesFile))
	if err != nil {
		return 0
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(raw)))
	if err != nil {
		return 0
	}
	wait := time.Until(at.Add(recentlyDeleted + 5*time.Second))
	if wait <= 0 {
		return 0
	}
	b.logf("waiting %.0f s: ext4 without a journal passes over inodes deleted in the last %v when it creates files, and %s deleted many at %s",
		wait.Seconds(), recentlyDeleted, b.work, at.Format(time.TimeOnly))
	select {
	case <-time.After(wait):
	case <-b.ctx.Done():
	}
	return wait
}

// newBench parses the command line into a bench with its scratch dir made
// (the caller removes b.tmp) and b.corpusBytes set to the bulk size, and
// returns which scenarios to run.
func newBench(ctx context.Context, args []string) (*bench, func(string) bool, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "small sizes and short runs: a smoke run in under two minutes")
	peers := fs.Bool("peers", false, "also run rsyslog and syslog-ng through the shared kit ($THUNDER_BENCH_KIT or /work/shared/bench)")
	only := fs.String("only", "", "comma-separated scenarios to run (default all but fleet10k and storm10k): "+strings.Join(scenarios, ","))
	bulkMiB := fs.Int("bulk-mib", 0, "bulk file size in MiB (default 1024, -quick 128)")
	quietMax := fs.Duration("quiet-max", 0, "longest wait for a quiet box before each run (default 30s, -quick 5s)")
	keep := fs.Bool("keep", false, "keep the scratch dir (daemons' logs, target dirs) instead of removing it at the end")
	procFlags := fs.String("processor-flags", "", "space-separated flags added to the processors of the fleet, storm, shard and kafka scenarios, to compare settings (e.g. --max-open-files=9000)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	want := func(s string) bool {
		if s == "peers" && !*peers {
			return false
		}
		if *only == "" {
			// fleet10k needs a quiet box and fake collectors that
			// reconnect (docs/BENCHMARKS.md): asked for by name only.
			return s != "fleet10k" && s != "storm10k"
		}
		return slices.Contains(strings.Split(*only, ","), s)
	}
	work := os.Getenv("BENCH_WORK")
	if work == "" {
		work = "/tmp/thunder-bench"
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp(work, "run-")
	if err != nil {
		return nil, nil, err
	}
	b := &bench{
		ctx: ctx, work: work, tmp: tmp, quick: *quick, runs: 3, corpusBytes: 1024 * mib,
		liveFor: 10 * time.Second, idleFor: 10 * time.Second, quietMax: 30 * time.Second,
		rep: newReport(os.Stdout, work), bulk: map[string]bulkResult{}, live: map[string]liveResult{},
		peersSkipped: !*peers && (*only == "" || strings.Contains(*only, "peers")),
	}
	if b.quick {
		b.corpusBytes, b.runs, b.liveFor, b.idleFor, b.quietMax = 128*mib, 1, 3*time.Second, 3*time.Second, 5*time.Second
	}
	if *bulkMiB > 0 {
		b.corpusBytes = int64(*bulkMiB) * mib
	}
	b.procFlags = strings.Fields(*procFlags)
	b.keep = *keep
	if *quietMax > 0 {
		b.quietMax = *quietMax
	}
	return b, want, nil
}

// runScenarios runs the scenarios want accepts, in order, and returns
// those that failed.
func (b *bench) runScenarios(want func(string) bool) []string {
	steps := map[string]func() error{
		"bulk": b.runBulk, "live": b.runLive, "checksums": b.runChecksums, "idle": b.runIdle,
		"files": b.runFiles, "fleet": b.runFleet, "fleet10k": b.runFleet10k, "storm": b.runStorm, "storm10k": b.runStorm10k, "shard": b.runShard, "kafka": b.runKafka, "peers": b.runPeers,
	}
	var failed []string
	for _, s := range scenarios {
		if !want(s) {
			continue
		}
		if b.ctx.Err() != nil {
			break
		}
		b.logf("scenario %s", s)
		if err := steps[s](); err != nil {
			b.logf("scenario %s failed: %v", s, err)
			b.rep.add(s, "FAILED", err.Error(), "", "")
			failed = append(failed, s)
		}
	}
	return failed
}

// logf prints progress on stderr.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// quiet syncs, then waits (bounded) until the box is quiet, logs when it was not, and
// reports whether it was.
func (b *bench) quiet() (bool, float64) {
	// Write back what earlier runs left dirty, as the kit does before each
	// run, so that no run pays for the previous one's writeback.
	syscall.Sync()
	b.afterDeletes()
	q, pct := waitQuiet(b.quietMax)
	if !q {
		b.logf("box still busy after %v (%.0f%% of all cores, not this run); measuring anyway", b.quietMax, pct)
	}
	return q, pct
}

// scratch returns a fresh directory for one run under the run's temp dir.
func (b *bench) scratch(name string) (string, error) {
	return os.MkdirTemp(b.tmp, name+"-")
}
