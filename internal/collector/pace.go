package collector

import "time"

// A writer doing one write(2) per line makes an inotify event per line.
// The watcher pauses after each one (watch.Config.Pace) so that the kernel
// merges the events meanwhile and one wake-up reads many lines. How long
// follows how fast the files grow, by the bytes sent per second: below
// fastRate the pause is --linger/slowPace, so a line waits at most half a
// millisecond (a quarter of --linger left p99 write → visible at 2.0–2.2 ms
// at 10k lines/s, docs/BENCHMARKS.md); above it, all of --linger, so that
// wake-ups stay few where their cost would add up (a flat-out writer).
const (
	fastRate = 2 << 20 // bytes per second: 20k lines/s of 100 bytes
	slowPace = 8
)

// adaptPace sets the watcher's pause, once per --linger at most, from the
// bytes sent since it last did.
func (c *Collector) adaptPace() {
	now := time.Now()
	elapsed := now.Sub(c.paceFrom)
	if elapsed < c.cfg.Linger || c.cfg.Linger <= 0 {
		return
	}
	rate := float64(c.roundBytes) / elapsed.Seconds()
	c.roundBytes, c.paceFrom = 0, now
	pace := c.cfg.Linger / slowPace
	if rate >= fastRate {
		pace = c.cfg.Linger
	}
	if pace != c.pace {
		c.pace = pace
		c.watch.SetPace(pace)
	}
}
