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
	"sync"
	"time"

	"thunder/internal/collector"
	"thunder/internal/linecheck"
	"thunder/internal/processor"
)

const demoHelp = `Usage: thunder demo [--seconds=N] [--rate=LINES_PER_SECOND]

Runs the whole pipeline on this machine, in a temporary directory, on
127.0.0.1: a processor, a collector rotating its files every MiB, and writers
of both write contracts. Halfway through it restarts the processor. At the
end it checks that every line written arrived exactly once, in order.
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
	if err := parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	if *seconds < 1 || *rate < 1 {
		return usageError{errors.New("demo: --seconds and --rate must be positive")}
	}
	root, err := os.MkdirTemp("", "thunder-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(root)
	}
	src, dst := filepath.Join(root, "source"), filepath.Join(root, "target")
	for _, d := range []string{src, dst} {
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

	// The processor listens on a loopback port of its own choosing and keeps
	// it across the restart.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	pcfg := processor.DefaultConfig()
	pcfg.TargetDir, pcfg.Name, pcfg.Logger = dst, "demo-processor", log.With("daemon", "processor")
	ccfg := collector.DefaultConfig()
	ccfg.Name, ccfg.SourceDir, ccfg.OffsetsDB = "demo-host", src, filepath.Join(root, "offsets.db")
	ccfg.Targets, ccfg.RotateSize, ccfg.Logger = []string{addr}, 1<<20, log.With("daemon", "collector")
	ccfg.BackoffMin, ccfg.BackoffMax = 50*time.Millisecond, time.Second

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	procDone, err := startDemoProcessor(ctx, pcfg, ln)
	if err != nil {
		return err
	}
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
				fmt.Fprintln(stdout, "restarting the processor (collector keeps its data on disk and resumes)")
				cancel2 := procDone.stop
				if err := cancel2(); err != nil {
					return err
				}
				ln, err := listenRetry(ctx, addr)
				if err != nil {
					return err
				}
				if procDone, err = startDemoProcessor(ctx, pcfg, ln); err != nil {
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
		rep, err = linecheck.Verify(dst, expect, linecheck.Options{})
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
	cerr := errors.Join(<-colDone, col.Close())
	perr := procDone.stop()
	if err := errors.Join(cerr, perr); err != nil {
		return err
	}
	rep, err = linecheck.Verify(dst, expect, linecheck.Options{})
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
