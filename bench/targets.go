//go:build unix

package main

import (
	"fmt"
	"time"

	"thunder/internal/linecheck"
)

// pacePause is the longest the collector's watcher waits before reading
// new bytes of a slowly growing file: a quarter of the default --linger.
const pacePause = time.Millisecond

// targets checks the figures of this run against the targets of issues 4 and 16.
func (b *bench) targets() {
	r := b.rep
	if th, ok := b.bulk["plain"]; ok {
		rt := th.durable / b.ceil.pipe
		r.target("bulk durable ≥ 90% of the same-run ceiling (median)", fmt.Sprintf("%.0f%% (%.0f of %.0f MiB/s)", 100*rt, th.durable, b.ceil.pipe), rt >= 0.9)
		best := 0.0
		name := ""
		for _, p := range b.peers {
			if p.mibps > best {
				best, name = p.mibps, p.name
			}
		}
		if best > 0 {
			r.target("bulk ≥ 3× the best peer", fmt.Sprintf("%.2f× %s (%.0f MiB/s)", th.durable/best, name, best), th.durable >= 3*best)
		}
		coll, proc := 0.0, 0.0
		for _, x := range b.bulk {
			coll, proc = max(coll, x.collMiB), max(proc, x.procMiB)
		}
		r.target(fmt.Sprintf("collector peak RSS ≤ 64 MiB (%d MiB backlog)", b.corpusBytes/mib), fmt.Sprintf("%.0f MiB", coll), coll <= 64)
		r.target(fmt.Sprintf("processor peak RSS ≤ 128 MiB (%d MiB backlog)", b.corpusBytes/mib), fmt.Sprintf("%.0f MiB", proc), proc <= 128)
	}
	for _, c := range []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend} {
		if x, ok := b.live[fmt.Sprintf("%v %s", c, rateName(0))]; ok {
			keeps := x.drain <= time.Second
			r.target(fmt.Sprintf("keeps up with a write(2)-per-line writer flat out (%v), collector ≤ 0.2 core", c),
				fmt.Sprintf("%.0f lines/s, drained %.2f s after stop, collector %.2f core", x.achieved, x.drain.Seconds(), x.collCores),
				keeps && x.collCores <= 0.2)
		}
	}
	for _, t := range []struct {
		rate           int
		visible, acked time.Duration
	}{{10000, 2 * time.Millisecond, 10 * time.Millisecond}, {100000, 0, 50 * time.Millisecond}} {
		var vis, ack time.Duration
		seen := false
		for _, c := range []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend} {
			if x, ok := b.live[fmt.Sprintf("%v %s", c, rateName(t.rate))]; ok {
				vis, ack, seen = max(vis, x.p99), max(ack, x.ackP99), true
			}
		}
		if !seen {
			continue
		}
		if t.visible > 0 {
			r.target(fmt.Sprintf("p99 write→visible ≤ %v at %s", t.visible, rateName(t.rate)),
				fmt.Sprintf("%.1f ms (worse contract)", ms(vis)), vis <= t.visible)
		}
		// The collector times a frame from its read; before the read a
		// line waits at most the watcher's pause (a quarter of --linger).
		bound := ack + pacePause
		r.target(fmt.Sprintf("p99 write→acknowledged ≤ %v at %s", t.acked, rateName(t.rate)),
			fmt.Sprintf("≤ %.1f ms (read→ack p99 %.1f ms + %v pause before the read)", ms(bound), ms(ack), pacePause), bound <= t.acked)
	}
	if b.idle.deliver > 0 {
		r.target("idle with 10,000 files < 1% of a core", fmt.Sprintf("%.2f%%", 100*b.idle.collCores), b.idle.collCores < 0.01)
	}
}
