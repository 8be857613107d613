//go:build unix

package main

import (
	"fmt"
	"strings"
	"time"

	"thunder/internal/harness"
)

// stormBound is how soon every collector must be back and streaming
// after the processor restarted (issue 16).
const stormBound = 30 * time.Second

// stormRate is what each fake collector of a storm sends per second: 10,000
// of them send 20 MiB/s, and the bytes of a fleet run last 200 s: no
// stream has sent all it has (and so has nothing to be acknowledged) before
// it is back.
const stormRate = 2 << 10

// stormResult is what one reconnect storm measured.
type stormResult struct {
	steady  time.Duration // streaming → every stream acknowledged once (the kill)
	back    time.Duration // restart → every connection acknowledged again
	peakKiB int64         // the restarted processor's VmHWM once all were back
}

// runStorm streams from 1,000 fake collectors, kills the processor with
// SIGKILL, restarts it on the same address, state and target dir, and
// measures how long until every collector reconnected and has an Ack on
// its new connection; then the run ends as fleet does, exactly once.
func (b *bench) runStorm() error { return b.storm("storm", fleetSize, 1) }

// runStorm10k is runStorm with 10,000 collectors × 3 files.
func (b *bench) runStorm10k() error { return b.storm("storm10k", 10_000, 3) }

func (b *bench) storm(name string, collectors, files int) error {
	// Paced so that the fleet still streams when the kill comes, however
	// long creating its files took: a steady fleet, not a bulk load.
	plan := fleetPlan(collectors, files)
	for i := range plan {
		plan[i].rate = stormRate
	}
	var sr stormResult
	o := fakeOpts{during: func(procs daemons, conns fakeConns) error {
		var err error
		sr, err = b.killAndWait(procs[0], conns)
		return err
	}}
	streamMax := fleetStreamMax * fleetSize / int64(collectors*files)
	r, err := b.runFakesWith(name, 1, streamMax, func([]string) []fakeSpec { return plan }, o)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("reconnect storm: %s collectors × %d file(s)", thousands(collectors), files)
	peak := float64(sr.peakKiB) / 1024
	b.rep.result(name, kv{"collectors", collectors}, kv{"files_per_collector", files}, kv{"back_s", sr.back}, kv{"steady_s", sr.steady},
		kv{"reconnects", r.reconnects}, kv{"rss_restarted_processor_MiB", peak}, kv{"bytes", r.sent},
		kv{"verified", "linecheck"}, kv{"quiet", r.quiet})
	b.rep.add(title, "kill -9 of the processor → every collector acknowledged again", fmt.Sprintf("%.2f s", sr.back.Seconds()),
		fmt.Sprintf("%.2f× of %v", sr.back.Seconds()/stormBound.Seconds(), stormBound),
		fmt.Sprintf("killed %.0f s in, every stream acknowledged once; %s reconnects; restarted processor peak RSS %.0f MiB; exactly once (linecheck) %s",
			sr.steady.Seconds(), thousands(int(r.reconnects)), peak, quietNote(r.quiet, r.busy)))
	return nil
}

// killAndWait lets the fakes stream until the fleet is in its steady
// state, kills p with SIGKILL, restarts it on the address it had, and
// waits until every connection of conns is a new one that has had an Ack.
//
// The steady state is every stream acknowledged once, so every target
// file exists: killed before, the restart would also create the files the
// first run had not reached yet, which is the fleet's setup, not its
// storm (and where creating a file is slow, as on ext4 without a journal
// after many deletes, it would be most of what was measured).
func (b *bench) killAndWait(p *daemon, conns fakeConns) (stormResult, error) {
	var sr stormResult
	t0 := time.Now()
	select {
	case <-time.After(b.liveFor / 3):
	case <-b.ctx.Done():
		return sr, b.ctx.Err()
	}
	if err := harness.Poll(b.ctx, 3*time.Minute, func() error {
		if n, all := conns.streamsAcked(); n < all {
			return fmt.Errorf("%d of %d streams acknowledged once before the kill", n, all)
		}
		return nil
	}, p.Process); err != nil {
		return sr, err
	}
	sr.steady = time.Since(t0)
	addr, err := p.listenAddr()
	if err != nil {
		return sr, err
	}
	dials := make([]int64, len(conns))
	for i, c := range conns {
		dials[i] = c.dials.Load()
	}
	if err := p.Kill(daemonTimeout); err != nil {
		return sr, err
	}
	for i, a := range p.Args {
		if strings.HasPrefix(a, "--listen-address=") {
			p.Args[i] = "--listen-address=" + addr
		}
	}
	restarted := time.Now()
	if err := p.Start(); err != nil {
		return sr, err
	}
	err = harness.Poll(b.ctx, 2*stormBound, func() error {
		back := 0
		for i, c := range conns {
			if c.dials.Load() > dials[i] && c.lastAck.Load() > c.since.Load() {
				back++
			}
		}
		if back < len(conns) {
			return fmt.Errorf("%d of %d collectors back and acknowledged %v after the restart", back, len(conns), time.Since(restarted).Round(time.Millisecond))
		}
		return nil
	}, p.Process)
	if err != nil {
		return sr, err
	}
	sr.back = time.Since(restarted)
	sr.peakKiB, err = statusKiB(p.pid(), "VmHWM")
	return sr, err
}
