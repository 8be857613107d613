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
	src := filepath.Join(root, "source")
	dsts := []string{filepath.Join(root, "target")}
	if *nproc > 1 {
		dsts = dsts[:0]
		for i := range *nproc {
			dsts = append(dsts, filepath.Join(root, fmt.Sprintf("target-%d", i)))
		}
	}
	for _, d := range append([]string{src}, dsts...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	logf, err := os.Create(filepath.Join(root, "daemons.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, nil))
	fmt.Fprintf(stdout, "thunder demo in %s (daemon logs: daemons.log)\n", root)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each processor listens on a loopback port of its own choosing and
	// keeps it across the restart.
	var addrs []string
	var pcfgs []processor.Config
	procs := make([]demoProcessor, len(dsts))
	defer func() {
		for _, p := range procs {
			if p.stop != nil {
				_ = p.stop() // on an early return; the normal end stops them itself
			}
		}
	}()
	for i, dst := range dsts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		pcfg := processor.DefaultConfig()
		pcfg.TargetDir, pcfg.Name = dst, fmt.Sprintf("demo-processor-%d", i)
		pcfg.Logger = log.With("daemon", pcfg.Name)
		if procs[i], err = startDemoProcessor(ctx, pcfg, ln); err != nil {
			return err
		}
		addrs, pcfgs = append(addrs, ln.Addr().String()), append(pcfgs, pcfg)
	}
	addr := strings.Join(addrs, ",")
	ccfg := collector.DefaultConfig()
	ccfg.Name, ccfg.SourceDir, ccfg.OffsetsDB = "demo-host", src, filepath.Join(root, "offsets.db")
	ccfg.Targets, ccfg.RotateSize, ccfg.Logger = addrs, 1<<20, log.With("daemon", "collector")
	ccfg.BackoffMin, ccfg.BackoffMax = 50*time.Millisecond, time.Second
	col, err := collector.New(ccfg)
	if err != nil {
		return err
	}
	colCtx, stopCol := context.WithCancel(ctx)
	defer stopCol()
	colDone := make(chan error, 1)
	go func() { colDone <- col.Run(colCtx) }()

	fmt.Fprintf(stdout, "processor on %s, collector %q, %d writers × %d lines/s for %ds\n",
		addr, ccfg.Name, len(demoWriters), *rate, *seconds)
	for _, w := range demoWriters {
		fmt.Fprintf(stdout, "  writer %-8s → %-16s (%s)\n", w.id, w.name, w.contract)
	}

	wctx, stopWriters := context.WithTimeout(ctx, time.Duration(*seconds)*time.Second)
	defer stopWriters()
	written := make([]uint64, len(demoWriters))
	var wg sync.WaitGroup
	var werr error
	var werrMu sync.Mutex
	for i, w := range demoWriters {
		wr := &linecheck.Writer{ID: w.id, Path: filepath.Join(src, filepath.FromSlash(w.name)), Contract: w.contract, Rate: *rate}
		wg.Go(func() {
			n, err := wr.Run(wctx)
			written[i] = n
			werrMu.Lock()
			werr = errors.Join(werr, err)
			werrMu.Unlock()
		})
	}

	start := time.Now()
	restartAt := start.Add(time.Duration(*seconds) * time.Second / 2)
	restarted := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	var lastAcked uint64
	lastT := start
	progress := func() {
		st := col.Stats()
		now := time.Now()
		rate := float64(st.AckedBytes-lastAcked) / now.Sub(lastT).Seconds() / 1e6
		lastAcked, lastT = st.AckedBytes, now
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
		fmt.Fprintf(stdout, "[%4.1fs] delivered %7.1f MB  %6.2f MB/s  lag %8d B  rotations %3d  deleted %3d  %s\n",
			now.Sub(start).Seconds(), float64(st.AckedBytes)/1e6, rate, st.LagBytes, st.Rotations, st.Deletions, state)
	}
wait:
	for {
		select {
		case <-tick.C:
			progress()
			if !restarted && time.Now().After(restartAt) {
				restarted = true
				// The processor of the busiest file (the first writer's).
				victim := shard.Rank(demoWriters[0].name, addrs)[0]
				if len(procs) == 1 {
					fmt.Fprintln(stdout, "restarting the processor (collector keeps its data on disk and resumes)")
				} else {
					fmt.Fprintf(stdout, "restarting processor %d (its files continue on the next processor, then come back)\n", victim)
				}
				stop := procs[victim].stop
				procs[victim].stop = nil
				if err := stop(); err != nil {
					return err
				}
				// Down for a moment, so that its files fail over.
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
				ln, err := listenRetry(ctx, addrs[victim])
				if err != nil {
					return err
				}
				if procs[victim], err = startDemoProcessor(ctx, pcfgs[victim], ln); err != nil {
					return err
				}
			}
		case <-writersDone:
			break wait
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if werr != nil {
		return fmt.Errorf("demo writer: %w", werr)
	}
	var total uint64
	expect := make([]linecheck.Expect, len(demoWriters))
	for i, w := range demoWriters {
		expect[i] = linecheck.Expect{Writer: w.id, Name: w.name, Lines: written[i]}
		total += written[i]
	}
	fmt.Fprintf(stdout, "writers stopped after %d lines; waiting for delivery\n", total)
	deadline := time.Now().Add(60 * time.Second)
	var rep linecheck.Report
	for {
		rep, err = linecheck.VerifyAll(dsts, expect, linecheck.Options{})
		if err != nil {
			return err
		}
		if rep.Complete() || rep.Failed() || time.Now().After(deadline) {
			break
		}
		select {
		case <-tick.C:
			progress()
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The collector's lag is recomputed once a second: let it catch up
	// with the acknowledgements before the last progress line.
	for end := time.Now().Add(3 * time.Second); col.Stats().LagBytes > 0 && time.Now().Before(end); {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	progress()
	stopCol()
	errs := []error{<-colDone, col.Close()}
	for i := range procs {
		errs = append(errs, procs[i].stop())
		procs[i].stop = nil
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	rep, err = linecheck.VerifyAll(dsts, expect, linecheck.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified %s\n", rep)
	if !rep.OK() || !rep.Complete() {
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "  ", p)
		}
		return errors.New("demo: delivery check failed")
	}
	if len(dsts) > 1 {
		for i, d := range dsts {
			one, err := linecheck.Verify(d, expect, linecheck.Options{})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  processor %d (%s) holds %d lines\n", i, filepath.Base(d), one.Lines)
		}
		fmt.Fprintf(stdout, "every one of the %d lines arrived exactly once over the %d processors, in order, across rotations and a processor restart\n", total, len(dsts))
		return nil
	}
	fmt.Fprintf(stdout, "every one of the %d lines arrived exactly once, in order, across rotations and a processor restart\n", total)
	return nil
}

type demoProcessor struct {
	stop func() error
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
	return demoProcessor{stop: func() error {
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
