package collector

import (
	"runtime"
	"time"
)

// With two or more Ps, every hand-off between the watcher, the loop and a
// link's writer wakes an idle P that spins looking for work: a writer
// doing one write(2) per line cost the collector twice the CPU with
// GOMAXPROCS=2 as with 1 (849 vs 399 ns per line at 180k lines/s on a
// 2-core VM), and a bulk backlog went as fast on one P (the processor or
// the disk is the limit). So, when Config.AdaptProcs is set, the collector
// runs on one P and takes every P the process may use only while that one
// is busy (compression, a backlog on a fast link), and goes back to one
// once it is not.
const (
	procsUpBusy   = 0.8 // of a core, over a second: one P is saturated
	procsDownBusy = 0.5 // of a core, over procsDownWait
	procsDownWait = 3 * time.Second
)

// procs adapts GOMAXPROCS to the process's CPU use; the zero value does
// nothing.
type procs struct {
	max, cur  int // max 0: off
	lastCPU   time.Duration
	lastAt    time.Time
	idleSince time.Time // when use last fell below procsDownBusy
}

func newProcs(on bool) procs {
	if !on {
		return procs{}
	}
	cpu, ok := cpuTime()
	if !ok {
		return procs{}
	}
	p := procs{max: runtime.GOMAXPROCS(0), cur: 1, lastCPU: cpu, lastAt: time.Now()}
	if p.max > 1 {
		runtime.GOMAXPROCS(1)
	}
	return p
}

// adapt sets GOMAXPROCS from the CPU used since it last ran, and returns
// the new setting if it changed, else 0. Called about once a second.
func (p *procs) adapt(now time.Time) int {
	if p.max <= 1 {
		return 0
	}
	cpu, _ := cpuTime()
	busy := float64(cpu-p.lastCPU) / float64(now.Sub(p.lastAt))
	p.lastCPU, p.lastAt = cpu, now
	return p.decide(busy, now)
}

// decide is adapt's rule, given the cores used lately.
func (p *procs) decide(busy float64, now time.Time) int {
	want := p.cur
	switch {
	case busy >= procsUpBusy:
		want, p.idleSince = p.max, time.Time{}
	case busy >= procsDownBusy:
		p.idleSince = time.Time{}
	case p.idleSince.IsZero():
		p.idleSince = now
	case now.Sub(p.idleSince) >= procsDownWait:
		want = 1
	}
	if want == p.cur {
		return 0
	}
	p.cur = want
	runtime.GOMAXPROCS(want)
	return want
}

// restore gives the process back every P it had.
func (p *procs) restore() {
	if p.max > 1 && p.cur != p.max {
		runtime.GOMAXPROCS(p.max)
	}
}
