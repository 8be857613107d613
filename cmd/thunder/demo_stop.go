package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"thunder/internal/collector"
	"thunder/internal/processor"
)

// Bounds on the demo's waits.
const (
	demoBackTimeout = 30 * time.Second       // a daemon reconnected, a file seen on another processor
	demoPollEvery   = 50 * time.Millisecond  // conditions polled
	demoStatusWait  = 2 * time.Second        // one /status answer
	demoRunOn       = 500 * time.Millisecond // between stops, the pipeline delivering again
)

// demoStop is one stop of a daemon in the plan.
type demoStop struct {
	at     time.Duration // after the writers started
	daemon int           // index in all(): the processors, then the collector
}

// plan returns the stops: a processor, the collector, a processor, the
// collector, spread over the writers' time. With several processors the
// second processor stopped is another one.
func (d *demo) plan() []demoStop {
	span := time.Duration(d.seconds) * time.Second
	first := d.firstChoice(d.names[0]) // the processor of the busiest file
	second := first
	for _, name := range d.names[1:] {
		if p := d.firstChoice(name); p != first {
			second = p
			break
		}
	}
	col := len(d.procs)
	return []demoStop{{span / 5, first}, {2 * span / 5, col}, {3 * span / 5, second}, {4 * span / 5, col}}
}

// stops stops and restarts the daemons as planned; a stop waits until the
// pipeline is back from the one before.
func (d *demo) stops(ctx context.Context) error {
	for _, s := range d.plan() {
		if err := d.sleepUntil(ctx, d.start.Add(s.at)); err != nil {
			return err
		}
		var err error
		if s.daemon == len(d.procs) {
			err = d.stopCollector(ctx)
		} else {
			err = d.stopProcessor(ctx, s.daemon)
		}
		if err != nil {
			return err
		}
		if err := d.sleepUntil(ctx, time.Now().Add(demoRunOn)); err != nil {
			return err
		}
	}
	return nil
}

// stopDaemon stops dm with the demo's signal and says so.
func (d *demo) stopDaemon(dm *demoDaemon, what string) error {
	kind := "collector"
	if dm.processor {
		kind = "processor"
	}
	d.stopped[kind]++
	fmt.Fprintf(d.out, "%s %s %s (pid %d): %s stop %d of %d%s\n", d.stamp(), d.sigText(), dm.name, dm.pid(), kind, d.stopped[kind], demoStops, what)
	d.down[dm] = true
	return dm.signal(d.sig)
}

// restart starts dm again and prints how long it was away.
func (d *demo) restart(ctx context.Context, dm *demoDaemon, since time.Time) error {
	if err := dm.startRetry(ctx); err != nil {
		return err
	}
	delete(d.down, dm)
	fmt.Fprintf(d.out, "%s %s back (pid %d) %s after the stop", d.stamp(), dm.name, dm.pid(), time.Since(since).Round(time.Millisecond))
	return nil
}

// stopProcessor stops processor i and starts it again; with several
// processors only once its files are seen on another, then waits for
// them to come back.
func (d *demo) stopProcessor(ctx context.Context, i int) error {
	p := d.procs[i]
	var mine []string
	for _, name := range d.names {
		if d.firstChoice(name) == i {
			mine = append(mine, name)
		}
	}
	what := ""
	if len(d.procs) > 1 {
		what = fmt.Sprintf(", first choice of %s", strings.Join(mine, ", "))
	}
	before, since := d.log.counts(), time.Now()
	if err := d.stopDaemon(p, what); err != nil {
		return err
	}
	if len(d.procs) > 1 {
		// Down for a second at least, so that a progress line shows it.
		if err := errors.Join(d.awaitFiles(ctx, mine, i, false), d.sleepUntil(ctx, since.Add(time.Second))); err != nil {
			return err
		}
	}
	if err := d.restart(ctx, p, since); err != nil {
		return err
	}
	cut := d.log.counts()
	switch n := cut.cutFiles - before.cutFiles; {
	case n > 0:
		fmt.Fprintf(d.out, ": cut back %d target files by %s received but not committed when it died; the collector resends from the committed offsets\n",
			n, fmtBytes(uint64(cut.cutBytes-before.cutBytes)))
	case d.sig == syscall.SIGKILL:
		fmt.Fprintf(d.out, ": nothing to cut back (it died between commits)\n")
	default:
		fmt.Fprintf(d.out, ": it had committed and acknowledged all it received\n")
	}
	if len(d.procs) > 1 {
		return d.awaitFiles(ctx, mine, i, true)
	}
	return d.awaitLinks(ctx, []*demoDaemon{p}, since)
}

// stopCollector stops the collector and starts it again at once.
func (d *demo) stopCollector(ctx context.Context) error {
	since := time.Now()
	if err := d.stopDaemon(d.col, "; the writers keep writing"); err != nil {
		return err
	}
	if err := d.restart(ctx, d.col, since); err != nil {
		return err
	}
	fmt.Fprintf(d.out, ": resumes every file from its offsets db\n")
	return d.awaitLinks(ctx, d.procs, since)
}

// awaitLinks waits until the collector is connected again, since, to
// each of the processors procs (their /status lists its connection), and
// prints what.
func (d *demo) awaitLinks(ctx context.Context, procs []*demoDaemon, since time.Time) error {
	err := d.poll(ctx, "the collector to connect again", func() (bool, error) {
		for _, p := range procs {
			if !d.connectedSince(ctx, p, since) {
				return false, nil
			}
		}
		return true, nil
	})
	if err == nil {
		fmt.Fprintf(d.out, "%s the collector is connected again (%s after the stop)\n", d.stamp(), time.Since(since).Round(time.Millisecond))
	}
	return err
}

// connectedSince reports whether processor p lists a connection of the
// collector made after since.
func (d *demo) connectedSince(ctx context.Context, p *demoDaemon, since time.Time) bool {
	var st processor.Status
	if _, addr := p.addrs(); !getStatus(ctx, addr, &st) {
		return false
	}
	for _, c := range st.Collectors {
		if c.Since.After(since) {
			return true
		}
	}
	return false
}

// awaitFiles waits until each of names grows in a target dir other than
// processor i's (back: in processor i's), and prints where.
func (d *demo) awaitFiles(ctx context.Context, names []string, i int, back bool) error {
	base := d.fileSizes(names)
	left := slices.Clone(names)
	return d.poll(ctx, "the files of "+d.procs[i].name+" to move", func() (bool, error) {
		now := d.fileSizes(names)
		left = slices.DeleteFunc(left, func(name string) bool {
			for j := range d.procs {
				if (j == i) != back || now[name][j] <= base[name][j] {
					continue
				}
				if back {
					fmt.Fprintf(d.out, "%s   %s is back on %s, its first choice\n", d.stamp(), name, d.procs[j].name)
				} else {
					fmt.Fprintf(d.out, "%s   %s continues on %s, next in its ranking, while %s is down\n", d.stamp(), name, d.procs[j].name, d.procs[i].name)
				}
				return true
			}
			return false
		})
		return len(left) == 0, nil
	})
}

// fileSizes returns the size of each of names in each target dir.
func (d *demo) fileSizes(names []string) map[string][]int64 {
	sizes := make(map[string][]int64, len(names))
	for _, name := range names {
		for _, dir := range d.dsts {
			var n int64
			if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); err == nil {
				n = fi.Size()
			}
			sizes[name] = append(sizes[name], n)
		}
	}
	return sizes
}

// poll waits up to demoBackTimeout for cond, printing progress meanwhile.
func (d *demo) poll(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(demoBackTimeout)
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: waited %v for %s", demoBackTimeout, what)
		}
		if err := d.pause(ctx); err != nil {
			return err
		}
	}
}

// sleepUntil waits until t, printing progress meanwhile.
func (d *demo) sleepUntil(ctx context.Context, t time.Time) error {
	for time.Now().Before(t) {
		if err := d.pause(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pause waits a moment, printing the progress line when it is due, and
// fails when a daemon exited that the demo did not stop.
func (d *demo) pause(ctx context.Context) error {
	select {
	case <-d.tick.C:
		d.printProgress(ctx)
	case <-time.After(demoPollEvery):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, dm := range d.all() {
		if !d.down[dm] && !dm.running() {
			return fmt.Errorf("demo: %s exited on its own: %w", dm.name, dm.exitErr())
		}
	}
	return nil
}

// colStatus returns the collector's /status; false while it is down or
// does not answer.
func (d *demo) colStatus(ctx context.Context) (collector.Status, bool) {
	var st collector.Status
	_, addr := d.col.addrs()
	return st, !d.down[d.col] && getStatus(ctx, addr, &st)
}

// getStatus reads the /status of the admin endpoint at addr into st and
// reports whether it could.
func getStatus(ctx context.Context, addr string, st any) bool {
	if addr == "" {
		return false
	}
	raw, err := newAdminClient(addr, demoStatusWait).get(ctx, "/status")
	return err == nil && json.Unmarshal(raw, st) == nil
}
