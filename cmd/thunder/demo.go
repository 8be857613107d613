package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"thunder/internal/collector"
	"thunder/internal/linecheck"
	"thunder/internal/processor"
	"thunder/internal/shard"
	"thunder/internal/target"
)

const demoHelp = `Usage: thunder demo [--seconds=N] [--rate=LINES_PER_SECOND] [--processors=N]

Runs the whole pipeline on this machine, in a temporary directory, on
127.0.0.1: a processor, a collector rotating its files every MiB, and writers
of both write contracts. Halfway through it restarts the processor. At the
end it checks that every line written arrived exactly once, in order.

With --processors=3 the collector shards its files over three processors;
the one holding the busiest file is restarted, its files fail over to the next in their
ranking and come back, and the check covers the three target directories.
`

// demoWriter is one writer of the demo.
type demoWriter struct {
	id       string
	name     string
	contract linecheck.Contract
}

var demoWriters = []demoWriter{
	{"web-1", "app/access.log", linecheck.OpenWriteClose},
	{"web-2", "app/access.log", linecheck.OpenWriteClose},
	{"api-1", "app/access.log", linecheck.LockedAppend},
	{"worker-1", "worker/jobs.log", linecheck.LockedAppend},
	{"cron-1", "cron.log", linecheck.OpenWriteClose},
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoHelp, stdout)
	seconds := fs.Int("seconds", 10, "how long the writers write")
	rate := fs.Int("rate", 5000, "lines per second of each writer")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	nproc := fs.Int("processors", 1, "processors to shard the files over (1 to 8)")
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if *seconds < 1 || *rate < 1 {
		return usageError{errors.New("demo: --seconds and --rate must be positive")}
	}
	if *nproc < 1 || *nproc > 8 {
		return usageError{errors.New("demo: --processors must be between 1 and 8")}
	}
	root, err := os.MkdirTemp("", "thunder-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(root)
	}
	d := &demo{out: stdout, root: root, seconds: *seconds, rate: *rate}
	logf, err := d.makeDirs(*nproc)
	if err != nil {
		return err
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer d.stopProcessors() // on an early return; the normal end stops them itself
	if err := d.startProcessors(ctx); err != nil {
		return err
	}
	colDone, stopCol, err := d.startCollector(ctx)
	if err != nil {
		return err
	}
	defer stopCol()
	w := d.startWriters(ctx)
	defer w.stop()
	d.tick = time.NewTicker(time.Second)
	defer d.tick.Stop()
	if err := d.watch(ctx, w.done); err != nil {
		return err
	}
	expect, total, err := w.expect()
	if err != nil {
		return err
	}
	return d.finish(ctx, expect, total, colDone, stopCol)
}

// finish waits for the writers' lines to be delivered, runs thunder
// verify's check with the daemons still running, stops them, and checks
// that every line arrived exactly once.
func (d *demo) finish(ctx context.Context, expect []linecheck.Expect, total uint64, colDone <-chan error, stopCol func()) error {
	fmt.Fprintf(d.out, "writers stopped after %d lines; waiting for delivery\n", total)
	if err := d.awaitDelivery(ctx, expect); err != nil {
		return err
	}
	verified, err := d.verify(ctx)
	if err != nil {
		return err
	}
	stopCol()
	errs := []error{<-colDone, d.col.Close(), d.stopProcessors()}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return errors.Join(d.report(expect, total), verified)
}

// demo is one run of `thunder demo`: its directories, daemons and progress.
type demo struct {
	out           io.Writer
	root          string
	seconds, rate int
	src           string
	dsts          []string // a target dir per processor
	log           *slog.Logger

	addrs []string // by processor, kept across its restart
	pcfgs []processor.Config
	procs []demoProcessor
	col   *collector.Collector

	tick      *time.Ticker // the progress lines
	start     time.Time
	lastAcked uint64
	lastT     time.Time
}

// makeDirs creates the source dir, a target dir per processor and the
// daemons' log file, which it returns.
func (d *demo) makeDirs(nproc int) (*os.File, error) {
	d.src = filepath.Join(d.root, "source")
	d.dsts = []string{filepath.Join(d.root, "target")}
	if nproc > 1 {
		d.dsts = d.dsts[:0]
		for i := range nproc {
			d.dsts = append(d.dsts, filepath.Join(d.root, fmt.Sprintf("target-%d", i)))
		}
	}
	for _, dir := range append([]string{d.src}, d.dsts...) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(d.root, "daemons.log"))
	if err != nil {
		return nil, err
	}
	d.log = slog.New(slog.NewTextHandler(logf, nil))
	fmt.Fprintf(d.out, "thunder demo in %s (daemon logs: daemons.log)\n", d.root)
	return logf, nil
}

// startProcessors starts a processor per target dir. Each listens on a
// loopback port of its own choosing and keeps it across the restart.
func (d *demo) startProcessors(ctx context.Context) error {
	d.procs = make([]demoProcessor, len(d.dsts))
	for i, dst := range d.dsts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		pcfg := processor.DefaultConfig()
		pcfg.TargetDir, pcfg.Name = dst, fmt.Sprintf("demo-processor-%d", i)
		pcfg.Logger = d.log.With("daemon", pcfg.Name)
		if d.procs[i], err = startDemoProcessor(ctx, pcfg, ln); err != nil {
			return err
		}
		d.addrs, d.pcfgs = append(d.addrs, ln.Addr().String()), append(d.pcfgs, pcfg)
	}
	return nil
}

// stopProcessors stops the processors still running.
func (d *demo) stopProcessors() error {
	var errs []error
	for i := range d.procs {
		if d.procs[i].stop != nil {
			errs = append(errs, d.procs[i].stop())
			d.procs[i].stop = nil
		}
	}
	return errors.Join(errs...)
}

// startCollector starts the collector, rotating every MiB and reconnecting
// quickly, and prints what the demo runs. Run's result arrives on done
// after stop.
func (d *demo) startCollector(ctx context.Context) (done <-chan error, stop func(), err error) {
	ccfg := collector.DefaultConfig()
	ccfg.Name, ccfg.SourceDir, ccfg.OffsetsDB = "demo-host", d.src, filepath.Join(d.root, "offsets.db")
	ccfg.Targets, ccfg.RotateSize, ccfg.Logger = d.addrs, 1<<20, d.log.With("daemon", "collector")
	ccfg.BackoffMin, ccfg.BackoffMax = 50*time.Millisecond, time.Second
	if d.col, err = collector.New(ccfg); err != nil {
		return nil, nil, err
	}
	colCtx, stopCol := context.WithCancel(ctx)
	colDone := make(chan error, 1)
	go func() { colDone <- d.col.Run(colCtx) }()

	fmt.Fprintf(d.out, "processor on %s, collector %q, %d writers × %d lines/s for %ds\n",
		strings.Join(d.addrs, ","), ccfg.Name, len(demoWriters), d.rate, d.seconds)
	for _, w := range demoWriters {
		fmt.Fprintf(d.out, "  writer %-8s → %-16s (%s)\n", w.id, w.name, w.contract)
	}
	return colDone, stopCol, nil
}

// demoWriting is the writers of a demo at work.
type demoWriting struct {
	stop    context.CancelFunc
	done    chan struct{} // closed when every writer returned
	written []uint64      // lines, by writer
	mu      sync.Mutex
	err     error
}

// startWriters starts the writers for the demo's seconds.
func (d *demo) startWriters(ctx context.Context) *demoWriting {
	wctx, stop := context.WithTimeout(ctx, time.Duration(d.seconds)*time.Second)
	w := &demoWriting{stop: stop, done: make(chan struct{}), written: make([]uint64, len(demoWriters))}
	var wg sync.WaitGroup
	for i, dw := range demoWriters {
		wr := &linecheck.Writer{ID: dw.id, Path: filepath.Join(d.src, filepath.FromSlash(dw.name)), Contract: dw.contract, Rate: d.rate}
		wg.Go(func() {
			n, err := wr.Run(wctx)
			w.written[i] = n
			w.mu.Lock()
			w.err = errors.Join(w.err, err)
			w.mu.Unlock()
		})
	}
	go func() { wg.Wait(); close(w.done) }()
	d.start = time.Now()
	d.lastT = d.start
	return w
}

// expect returns what the writers wrote, once they are done.
func (w *demoWriting) expect() ([]linecheck.Expect, uint64, error) {
	if w.err != nil {
		return nil, 0, fmt.Errorf("demo writer: %w", w.err)
	}
	var total uint64
	expect := make([]linecheck.Expect, len(demoWriters))
	for i, dw := range demoWriters {
		expect[i] = linecheck.Expect{Writer: dw.id, Name: dw.name, Lines: w.written[i]}
		total += w.written[i]
	}
	return expect, total, nil
}

// watch prints a progress line a second until the writers are done, and
// restarts a processor halfway.
func (d *demo) watch(ctx context.Context, writersDone <-chan struct{}) error {
	restartAt := d.start.Add(time.Duration(d.seconds) * time.Second / 2)
	restarted := false
	for {
		select {
		case <-d.tick.C:
			d.progress()
			if !restarted && time.Now().After(restartAt) {
				restarted = true
				if err := d.restart(ctx); err != nil {
					return err
				}
			}
		case <-writersDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// restart stops the processor of the busiest file (the first writer's)
// for a second, so that its files fail over, and starts it again on the
// same address.
func (d *demo) restart(ctx context.Context) error {
	victim := shard.Rank(demoWriters[0].name, d.addrs)[0]
	if len(d.procs) == 1 {
		fmt.Fprintln(d.out, "restarting the processor (collector keeps its data on disk and resumes)")
	} else {
		fmt.Fprintf(d.out, "restarting processor %d (its files continue on the next processor, then come back)\n", victim)
	}
	stop := d.procs[victim].stop
	d.procs[victim].stop = nil
	if err := stop(); err != nil {
		return err
	}
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	ln, err := listenRetry(ctx, d.addrs[victim])
	if err != nil {
		return err
	}
	d.procs[victim], err = startDemoProcessor(ctx, d.pcfgs[victim], ln)
	return err
}

// progress prints one progress line.
func (d *demo) progress() {
	st := d.col.Stats()
	now := time.Now()
	rate := float64(st.AckedBytes-d.lastAcked) / now.Sub(d.lastT).Seconds() / 1e6
	d.lastAcked, d.lastT = st.AckedBytes, now
	state := "connected"
	if !st.Connected {
		state = "reconnecting"
	}
	if len(st.Processors) > 1 {
		var up []string
		for _, p := range st.Processors {
			if p.Connected {
				up = append(up, strconv.Itoa(p.Streams))
			} else {
				up = append(up, "down")
			}
		}
		state = "streams per processor " + strings.Join(up, "/")
	}
	fmt.Fprintf(d.out, "[%4.1fs] delivered %7.1f MB  %6.2f MB/s  lag %8d B  rotations %3d  deleted %3d  %s\n",
		now.Sub(d.start).Seconds(), float64(st.AckedBytes)/1e6, rate, st.LagBytes, st.Rotations, st.Deletions, state)
}

// awaitDelivery waits up to a minute for the target dirs to hold every
// line written (or a problem), printing progress meanwhile, then for the
// collector's lag to reach 0, and prints the last progress line.
func (d *demo) awaitDelivery(ctx context.Context, expect []linecheck.Expect) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := linecheck.VerifyAll(d.dsts, expect, linecheck.Options{})
		if err != nil {
			return err
		}
		if rep.Complete() || rep.Failed() || time.Now().After(deadline) {
			break
		}
		select {
		case <-d.tick.C:
			d.progress()
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The collector's lag is recomputed once a second: let it catch up
	// with the acknowledgements before the last progress line.
	for end := time.Now().Add(3 * time.Second); d.col.Stats().LagBytes > 0 && time.Now().Before(end); {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.progress()
	return nil
}

// report checks the target dirs with every daemon stopped and prints the
// verdict: an error unless every line arrived exactly once, in order.
func (d *demo) report(expect []linecheck.Expect, total uint64) error {
	rep, err := linecheck.VerifyAll(d.dsts, expect, linecheck.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "verified %s\n", rep)
	if !rep.OK() || !rep.Complete() {
		for _, p := range rep.Problems {
			fmt.Fprintln(d.out, "  ", p)
		}
		return errors.New("demo: delivery check failed")
	}
	if len(d.dsts) == 1 {
		fmt.Fprintf(d.out, "every one of the %d lines arrived exactly once, in order, across rotations and a processor restart\n", total)
		return nil
	}
	for i, dir := range d.dsts {
		one, err := linecheck.Verify(dir, expect, linecheck.Options{})
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "  processor %d (%s) holds %d lines\n", i, filepath.Base(dir), one.Lines)
	}
	fmt.Fprintf(d.out, "every one of the %d lines arrived exactly once over the %d processors, in order, across rotations and a processor restart\n", total, len(d.dsts))
	return nil
}

type demoProcessor struct {
	p    *processor.Processor
	stop func() error
}

// verify runs thunder verify's check on each processor, still running,
// and prints its verdict; the error it returns (nil if every file is as
// committed) is the demo's failure once the line check is printed too.
func (d *demo) verify(ctx context.Context) (failed error, err error) {
	var files, bad int
	for i, dp := range d.procs {
		sum, err := dp.p.Verify(ctx, 0, func(l processor.VerifyLine) error {
			if f := l.File; f != nil && f.Verdict != target.VerdictOK {
				fmt.Fprintf(d.out, "   processor %d: %s %s (%+v)\n", i, f.Verdict, f.Name, *f)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		files, bad = files+sum.Files, bad+sum.Files-sum.Counts[target.VerdictOK]
	}
	if bad > 0 {
		fmt.Fprintf(d.out, "thunder verify: NOT OK: %d of %d target files differ from what the processor committed\n", bad, files)
		return errors.New("demo: thunder verify found target files not as committed"), nil
	}
	fmt.Fprintf(d.out, "thunder verify: ok: all %d target files hold exactly what the processor committed (checked with it running)\n", files)
	return nil, nil
}

func startDemoProcessor(ctx context.Context, cfg processor.Config, ln net.Listener) (demoProcessor, error) {
	p, err := processor.New(cfg)
	if err != nil {
		ln.Close()
		return demoProcessor{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	return demoProcessor{p: p, stop: func() error {
		cancel()
		return errors.Join(<-done, p.Close())
	}}, nil
}

// listenRetry listens on addr again after a restart; the port may linger.
func listenRetry(ctx context.Context, addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, err
}
