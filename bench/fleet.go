//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// Shape of the fake-collector scenarios (fleet, shard): Data frames of
// fakeFrameLines lines, at most fakeWindow bytes unacknowledged per stream.
const (
	fleetSize      = 1000
	fleetStreamMax = 4 << 20 // bytes per stream at most: ≤ 3.9 GiB in the target
	fakeFrameLines = 10
	fakeWindow     = 64 << 10
	fakeDialers    = 128 // handshakes at once (the processor admits 256)
)

// runFleet plays 1,000 collectors against one processor from this process,
// speaking the protocol directly (docs/PROTOCOL.md): preface and Hello,
// Welcome, Open, Opened, then Data frames of a few lines each with a
// window, counting Acks. It reports the time to connect all of them, the
// acknowledged throughput, and the processor's CPU and RSS.
func (b *bench) runFleet() error { return b.fleet("fleet", fleetSize, 1) }

// runFleet10k is runFleet with 10,000 collectors of 3 files each: 30,000
// target files, one directory per collector, more than --max-open-files.
func (b *bench) runFleet10k() error { return b.fleet("fleet10k", 10_000, 3) }

func (b *bench) fleet(name string, collectors, files int) error {
	plan := fleetPlan(collectors, files)
	streamMax := fleetStreamMax * fleetSize / int64(collectors*files) // the same bytes in all
	r, err := b.runFakes(name, 1, streamMax, func([]string) []fakeSpec { return plan })
	if err != nil {
		return err
	}
	tput := r.mibps()
	idle, busy := r.perConnKiB(0)
	title := fmt.Sprintf("scale: %s collectors × %d file(s)", thousands(collectors), files)
	b.rep.result(name, kv{"collectors", collectors}, kv{"files_per_collector", files}, kv{"setup_s", r.setup}, kv{"setup_cpu_processor_s", r.setupCPU[0]},
		kv{"bytes", r.sent}, kv{"secs", r.took}, kv{"MiBps", tput}, kv{"lines_per_s", r.linesPerSec()},
		kv{"frame_lines", fakeFrameLines}, kv{"cpu_processor_cores", r.cores(0)}, kv{"cpu_bench_cores", r.selfCores()},
		kv{"rss_processor_MiB", r.peakMiB(0)}, kv{"conn_idle_KiB", idle}, kv{"conn_busy_KiB", busy}, kv{"verified", "linecheck"}, kv{"quiet", r.quiet})
	b.rep.add(title, fmt.Sprintf("connect + handshake + open, all %s", thousands(collectors)), fmt.Sprintf("%.2f s", r.setup.Seconds()), "",
		fmt.Sprintf("processor CPU %.2f s %s", r.setupCPU[0], quietNote(r.quiet, r.busy)))
	b.rep.add(title, "processor memory per connection (VmRSS above the one before they connected)",
		fmt.Sprintf("idle %.1f KiB, busy %.1f KiB", idle, busy), "", "busy: at the peak, with the target's write-behind (≤ 128 MiB in all) shared out")
	b.rep.add(title, fmt.Sprintf("Data frames of %d lines, window 64 KiB each, %v", fakeFrameLines, b.liveFor),
		fmt.Sprintf("%.1f MiB/s acked", tput), ratio(tput, b.ceil.pipe),
		fmt.Sprintf("%.0f lines/s; processor %.2f core, peak RSS %.0f MiB, %v; load generator %.2f core; %d reconnects; exactly once (linecheck)",
			r.linesPerSec(), r.cores(0), r.peakMiB(0), r.commits[0], r.selfCores(), r.reconnects))
	b.logf("%s: frames ceiling, %s connections × %d files copied by %d plain processes", name, thousands(collectors), files, framesCeilProcs)
	fc, err := b.framesCeiling(name, collectors, files, streamMax)
	if err != nil {
		return err
	}
	b.rep.result(name+"-frames-ceiling", kv{"collectors", collectors}, kv{"files_per_collector", files}, kv{"bytes", fc.bytes}, kv{"secs", fc.took},
		kv{"MiBps", fc.mibps()}, kv{"vs_pipe_ceiling", fc.mibps() / b.ceil.pipe}, kv{"thunder_vs_frames_ceiling", tput / fc.mibps()},
		kv{"cpu_copiers_cores", fc.cores}, kv{"cpu_generator_cores", fc.genCores}, kv{"quiet", fc.quiet})
	b.rep.add(title, fmt.Sprintf("frames ceiling: the same connections, files and frames copied socket → file by %d plain Go processes (every file open, no protocol, no acks, one sync at the end)", framesCeilProcs),
		fmt.Sprintf("%.1f MiB/s", fc.mibps()), ratio(fc.mibps(), b.ceil.pipe),
		fmt.Sprintf("thunder acks %s of it; copiers %.2f core, generator %.2f core %s", ratio(tput, fc.mibps()), fc.cores, fc.genCores, quietNote(fc.quiet, fc.busy)))
	return nil
}

// fleetPlan is collectors fake collectors of files streams each: one
// target file each, or a directory of files per collector.
func fleetPlan(collectors, files int) []fakeSpec {
	plan := make([]fakeSpec, collectors)
	for i := range plan {
		id := fmt.Sprintf("c%05d", i)
		plan[i] = fakeSpec{collector: id}
		for f := range files {
			w := fmt.Sprintf("%s-%d", id, f)
			n := id + ".log"
			if files > 1 {
				n = fmt.Sprintf("%s/f%d.log", id, f)
			}
			plan[i].streams = append(plan[i].streams, fakeStreamSpec{name: n, writer: w})
		}
	}
	return plan
}

// fakeStreamSpec is one file a fake collector streams: its name on the
// wire (and in the target dir) and the linecheck writer id of its lines.
type fakeStreamSpec struct{ name, writer string }

// fakeSpec is one connection of a fake collector to processor proc (an
// index into the scenario's processors), with the streams it carries and
// the bytes each may have unacknowledged (0: fakeWindow).
type fakeSpec struct {
	proc      int
	collector string
	streams   []fakeStreamSpec
	window    int64
	rate      int64 // bytes per second the connection sends at most; 0: as fast as it can
}

// fakeRun is what runFakes measured.
type fakeRun struct {
	conns    int
	streams  []int         // streams per processor
	setup    time.Duration // connect + handshake + open, all connections
	setupCPU []float64     // per processor, CPU seconds during setup
	sent     int64         // bytes sent, all acknowledged
	// reconnects: connections made again after a link broke
	reconnects int64
	took       time.Duration // first Data frame → last Ack
	cpu        []float64     // per processor, CPU seconds over took
	selfCPU    float64       // this process (the load generator), CPU seconds over took
	peakKiB    []int64       // per processor, VmHWM
	// baseKiB and idleKiB are each processor's VmRSS before the fakes
	// connect and once all of them opened their streams, before any Data:
	// what idle connections cost (perConnKiB).
	baseKiB, idleKiB []int64
	commits          []commitStats // per processor, its group commits over the whole run
	quiet            bool
	busy             float64
}

func (r fakeRun) mibps() float64        { return mibps(r.sent, r.took) }
func (r fakeRun) linesPerSec() float64  { return float64(r.sent/lineBytes) / r.took.Seconds() }
func (r fakeRun) cores(i int) float64   { return r.cpu[i] / r.took.Seconds() }
func (r fakeRun) selfCores() float64    { return r.selfCPU / r.took.Seconds() }
func (r fakeRun) peakMiB(i int) float64 { return float64(r.peakKiB[i]) / 1024 }
func (r fakeRun) totalCores() float64   { return sumOf(r.cpu) / r.took.Seconds() }

// perConnKiB is processor i's resident set per connection of it, idle
// (after setup) and busy (at its peak, so with what it buffers for all
// of them: the target's write-behind, at most 128 MiB, and the frames
// being copied), each above its resident set before they connected.
func (r fakeRun) perConnKiB(i int) (idle, busy float64) {
	n := float64(r.conns) // all on processor 0 in the fleet scenarios
	return float64(r.idleKiB[i]-r.baseKiB[i]) / n, float64(r.peakKiB[i]-r.baseKiB[i]) / n
}

func sumOf(xs []float64) (s float64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// joinf formats each element of xs with f and joins them with sep.
func joinf[T any](xs []T, sep string, f func(T) string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = f(x)
	}
	return strings.Join(s, sep)
}

// fakeOutput says where the processors of runFakesTo write and how their
// output is checked once they stopped.
type fakeOutput struct {
	args   func(i int) []string // output flags of processor i
	verify func(expect []linecheck.Expect) error
}

// runFakes starts nprocs processors, each with its own target dir on
// 127.0.0.1:0, connects the fake collectors plan returns for their
// addresses (fakeDialers handshakes at once), lets every connection send
// Data frames for b.liveFor or until each stream sent streamMax bytes,
// waits (bounded) for the last Acks, stops the processors and checks the
// union of the target dirs with linecheck: every line exactly once.
func (b *bench) runFakes(name string, nprocs int, streamMax int64, plan func(addrs []string) []fakeSpec) (fakeRun, error) {
	return b.runFakesWith(name, nprocs, streamMax, plan, fakeOpts{})
}

// fakeOpts changes what runFakesWith does.
type fakeOpts struct {
	out *fakeOutput // the processors' output; nil: a target dir each, checked with linecheck.VerifyAll
	// during runs while the fakes send, which goes on at least until it
	// returned.
	during func(procs daemons, conns fakeConns) error
}

// runFakesWith is runFakes changed by o.
func (b *bench) runFakesWith(name string, nprocs int, streamMax int64, plan func(addrs []string) []fakeSpec, o fakeOpts) (r fakeRun, err error) {
	out := o.out
	r = fakeRun{streams: make([]int, nprocs), setupCPU: make([]float64, nprocs), cpu: make([]float64, nprocs), peakKiB: make([]int64, nprocs),
		baseKiB: make([]int64, nprocs), idleKiB: make([]int64, nprocs), commits: make([]commitStats, nprocs)}
	dir, err := b.scratch(name)
	if err != nil {
		return r, err
	}
	defer func() {
		if err != nil {
			b.keepFailed(dir)
		} else {
			b.drop(dir)
		}
	}()
	if out == nil {
		if out, err = targetOutput(dir, nprocs); err != nil {
			return r, err
		}
	}
	procs, addrs, err := b.startFakeProcessors(dir, nprocs, out)
	defer procs.kill()
	if err != nil {
		return r, err
	}
	specs := plan(addrs)
	r.conns = len(specs)
	for _, s := range specs {
		r.streams[s.proc] += len(s.streams)
	}
	r.quiet, r.busy = b.quiet()
	conns, err := b.connectFakes(&r, procs, addrs, specs)
	defer conns.close()
	if err != nil {
		return r, err
	}
	if err := b.streamFakes(&r, procs, conns, streamMax, o.during); err != nil {
		return r, err
	}
	if err := conns.finish(); err != nil {
		return r, err
	}
	for i, p := range procs {
		if addr, err := p.adminAddr(); err == nil {
			r.commits[i], _ = scrapeCommits(addr) // none with the Kafka output
		}
		u, err := p.stop()
		if err != nil {
			return r, err
		}
		r.peakKiB[i] = u.peakKiB
	}
	return r, out.verify(conns.expect())
}

// targetOutput is the default fakeOutput: processor i writes to dir/dst<i>,
// and the union of the target dirs must hold every line exactly once.
func targetOutput(dir string, nprocs int) (*fakeOutput, error) {
	dsts := make([]string, nprocs)
	for i := range dsts {
		dsts[i] = filepath.Join(dir, fmt.Sprintf("dst%d", i))
		if err := os.Mkdir(dsts[i], 0o755); err != nil {
			return nil, err
		}
	}
	return &fakeOutput{
		args: func(i int) []string { return []string{"--target-dir=" + dsts[i]} },
		verify: func(expect []linecheck.Expect) error {
			rep, err := linecheck.VerifyAll(dsts, expect, linecheck.Options{})
			if err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("target check: %v %v", rep, rep.Problems)
			}
			return nil
		},
	}, nil
}

// daemons are the processors of one fake run.
type daemons []*daemon

// startFakeProcessors starts nprocs processors on 127.0.0.1:0 with their
// output flags from out, and returns their addresses once all listen. The
// daemons are returned even with an error, to be killed.
func (b *bench) startFakeProcessors(dir string, nprocs int, out *fakeOutput) (daemons, []string, error) {
	procs := make(daemons, 0, nprocs)
	for i := range nprocs {
		args := append([]string{"logs-processor", "--listen-address=127.0.0.1:0", "--admin-address=127.0.0.1:0", fmt.Sprintf("--name=bench-processor-%d", i)}, out.args(i)...)
		args = append(args, b.procFlags...)
		p, err := startDaemon(fmt.Sprintf("processor-%d", i), b.bin, dir, args...)
		if err != nil {
			return procs, nil, err
		}
		procs = append(procs, p)
	}
	addrs := make([]string, nprocs)
	for i, p := range procs {
		var err error
		if addrs[i], err = p.listenAddr(); err != nil {
			return procs, nil, err
		}
	}
	return procs, addrs, nil
}

// cpu returns the CPU seconds each daemon used so far.
func (ds daemons) cpu() ([]float64, error) {
	v := make([]float64, len(ds))
	for i, p := range ds {
		var err error
		if v[i], err = cpuSeconds(p.pid()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// cpuAndSelf is cpu with the CPU seconds of this process (the load
// generator) last.
func (ds daemons) cpuAndSelf() ([]float64, error) {
	v, err := ds.cpu()
	if err != nil {
		return nil, err
	}
	self, err := cpuSeconds(os.Getpid())
	return append(v, self), err
}

// kill kills the daemons that still run.
// rss reads each daemon's VmRSS into kib.
func (ds daemons) rss(kib []int64) error {
	for i, d := range ds {
		v, err := statusKiB(d.pid(), "VmRSS")
		if err != nil {
			return err
		}
		kib[i] = v
	}
	return nil
}

func (ds daemons) kill() {
	for _, p := range ds {
		p.kill()
	}
}

// connectFakes connects every fake collector of specs (fakeDialers
// handshakes at once) and records the setup time and the processors' CPU
// during it in r. The connections are returned even with an error, to be
// closed.
func (b *bench) connectFakes(r *fakeRun, procs daemons, addrs []string, specs []fakeSpec) (fakeConns, error) {
	p0, err := procs.cpu()
	if err != nil {
		return nil, err
	}
	if err := procs.rss(r.baseKiB); err != nil {
		return nil, err
	}
	conns := make(fakeConns, len(specs))
	start := time.Now()
	sem := make(chan struct{}, fakeDialers)
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, s := range specs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = dialFake(addrs[s.proc], s)
		})
	}
	wg.Wait()
	r.setup = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return conns, fmt.Errorf("connect: %w", err)
	}
	p1, err := procs.cpu()
	if err != nil {
		return conns, err
	}
	for i := range p1 {
		r.setupCPU[i] = p1[i] - p0[i]
	}
	return conns, procs.rss(r.idleKiB)
}

// streamFakes has every connection send Data frames for b.liveFor, or
// until all its streams reached streamMax, waits (bounded) for the last
// Acks, and records the bytes, the time and the CPU of the processors and
// of this process in r.
func (b *bench) streamFakes(r *fakeRun, procs daemons, conns fakeConns, streamMax int64, during func(daemons, fakeConns) error) error {
	c0, err := procs.cpuAndSelf()
	if err != nil {
		return err
	}
	t0 := time.Now()
	hold := make(chan struct{})
	var duringErr error
	go func() {
		defer close(hold)
		if during != nil {
			duringErr = during(procs, conns)
		}
	}()
	b.sendFakes(conns, streamMax, hold)
	<-hold // during is bounded in time
	if duringErr != nil {
		return duringErr
	}
	r.sent = conns.sent()
	r.reconnects = conns.reconnects()
	if err := harness.Poll(b.ctx, time.Minute, func() error {
		if acked := conns.acked(); acked < r.sent {
			return fmt.Errorf("%d of %d bytes acknowledged since the senders stopped", acked, r.sent)
		}
		return nil
	}); err != nil {
		return err
	}
	r.took = time.Since(t0)
	c1, err := procs.cpuAndSelf()
	if err != nil {
		return err
	}
	for i := range procs {
		r.cpu[i] = c1[i] - c0[i]
	}
	r.selfCPU = c1[len(procs)] - c0[len(procs)]
	return nil
}

// sendFakes runs the senders of conns until b.liveFor has passed and hold
// is closed, or every stream sent streamMax bytes, then until what they
// sent is acknowledged (they reconnect and resend meanwhile if a link
// breaks), a minute at most.
func (b *bench) sendFakes(conns fakeConns, streamMax int64, hold <-chan struct{}) {
	stop, quit := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.send(stop, quit, streamMax) })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	timer := time.NewTimer(b.liveFor)
	defer timer.Stop()
	select {
	case <-timer.C:
		select {
		case <-hold:
		case <-finished:
		case <-b.ctx.Done():
		}
	case <-finished:
	case <-b.ctx.Done():
	}
	close(stop)
	timer.Reset(time.Minute)
	select {
	case <-timer.C:
	case <-finished:
	case <-b.ctx.Done():
	}
	close(quit)
	<-finished
}

// thousands formats n with a comma between thousands: 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
