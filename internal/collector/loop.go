package collector

import (
	"context"
	"sort"
	"time"

	"thunder/internal/shard"
	"thunder/internal/watch"
	"thunder/internal/wire"
)

// drainTimeout bounds how long a stopping collector waits for the
// acknowledgement of what it already sent.
const drainTimeout = 3 * time.Second

// loop is the Run loop: it owns every source and the current link.
func (c *Collector) loop(ctx context.Context) error {
	if err := c.load(); err != nil {
		return err
	}
	c.rescan()
	c.save()
	c.procs = newProcs(c.cfg.AdaptProcs)
	defer c.procs.restore()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	events := c.watch.Events()
	for {
		c.pump()
		var pool chan *[]byte
		if c.wantBuf {
			pool = c.pool
		}
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil // the watcher stopped: ctx is done
				continue
			}
			c.onEvent(ev)
			c.pump()
			c.adaptPace()
		case m := <-c.inbox:
			c.onLink(m)
		case b := <-pool:
			c.spare, c.wantBuf = b, false
		case now := <-tick.C:
			c.onTick()
			if n := c.procs.adapt(now); n > 0 {
				c.log.Debug("GOMAXPROCS follows the collector's CPU use", "gomaxprocs", n)
			}
		case <-ctx.Done():
			c.drain()
			c.saveAcked()
			c.save()
			return nil
		}
		c.save()
	}
}

func (c *Collector) onEvent(ev watch.Event) {
	if ev.Op == watch.Rescan || ev.Path == "" {
		c.rescan()
		return
	}
	if ev.Op == watch.Write {
		// The hot path: a followed file grew. Its identity (inode,
		// leading bytes, truncation) is checked at most every
		// identityCheck; creations, renames and removals, and every
		// rescan, check it at once.
		if s := c.byPath[c.rel(ev.Path)]; s != nil && s.f != nil && !s.state.offPath() && time.Since(s.seen.checked) < identityCheck {
			c.wake(s)
			return
		}
	}
	c.onPath(ev.Path)
}

// identityCheck is how often a file written continuously has its identity
// checked again (Lstat and fingerprint) on a write event.
const identityCheck = time.Second

// drain waits up to drainTimeout for acknowledgements of data in flight.
func (c *Collector) drain() {
	if !c.anyInFlight() {
		return
	}
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	for c.anyInFlight() {
		select {
		case m := <-c.inbox:
			c.onLink(m)
		case <-t.C:
			return
		}
	}
}

// anyInFlight reports whether any link has data awaiting acknowledgement.
func (c *Collector) anyInFlight() bool {
	for _, l := range c.links {
		if l != nil && l.inflight > 0 {
			return true
		}
	}
	return false
}

// route returns the link s should use: the first one up in its ranking,
// or nil. A processor not tried since the start counts as up: at start,
// the links come up one by one, and a stream must not go to whichever
// answers first, or a restart would move streams for nothing and resend,
// from offsets saved up to a second late, data the first choice holds.
func (c *Collector) route(s *source) *link {
	if len(c.links) == 1 {
		return c.links[0]
	}
	if s.rank == nil {
		s.rank = shard.Rank(s.rec.Name, c.cfg.Targets)
	}
	for _, i := range s.rank {
		if l := c.links[i]; l != nil || !c.tried[i] {
			return l
		}
	}
	return nil
}

func (c *Collector) wakeAll() {
	for _, s := range c.byID {
		if s.readable() {
			c.wake(s)
		}
	}
}

// onTick saves acknowledged offsets, sends heartbeats, and moves on the
// files whose life goes on with time: unterminated last lines of files that
// will not grow any more are flushed, files that left the source dir
// finished, rotated files deleted, old files rotated.
func (c *Collector) onTick() {
	now := time.Now()
	c.saveAcked()
	for _, s := range c.byID {
		c.tickSource(s, now)
	}
	c.closeIdle()
	c.refusedTick(now)
	for name, s := range c.lastByName {
		if s.state == stateForgotten {
			delete(c.lastByName, name)
		}
	}
	for _, l := range c.links {
		if l != nil && now.Sub(l.last) >= c.cfg.PingInterval {
			if b, err := wire.AppendControl(nil, wire.TypePing, nil); err == nil {
				l.send(frame{b: seal(b, l.sealed)})
			}
		}
	}
	c.updateStats()
}

func (c *Collector) tickSource(s *source, now time.Time) {
	if s.state.finishing() && s.eof && !s.flush && now.Sub(s.seen.grown) >= c.cfg.FlushIdle {
		s.flush = true
		c.wake(s)
	}
	c.maybeFinish(s)
	c.maybeDelete(s, now)
	c.checkHeld(s, now)
	if c.cfg.RotateAge > 0 && s.state == stateLive && now.Sub(s.rec.Created) >= c.cfg.RotateAge {
		if fi, err := s.f.Stat(); err == nil {
			c.maybeRotate(s, fi.Size())
		}
	}
}

// saveAcked queues the records whose acknowledged offset changed for the
// next save.
func (c *Collector) saveAcked() {
	for _, s := range c.ackDirty {
		s.dirty = false
		c.unsaved = append(c.unsaved, s)
	}
	clear(c.ackDirty)
	c.ackDirty = c.ackDirty[:0]
}

// maybeFinish forgets a file that left its path once it is read to its end
// and fully delivered, and it is either deleted or not in the source dir.
func (c *Collector) maybeFinish(s *source) {
	if !s.state.offPath() || !s.eof || s.inFlight() > 0 {
		return
	}
	fi, ok := s.deliveredNow()
	if !ok {
		return
	}
	if linkCount(fi) > 0 && s.state != stateOutside {
		return // renamed, perhaps within the source dir: the next scan tells
	}
	c.log.Info("stream finished", "name", s.rec.Name, "stream", s.rec.ID, "offset", s.rec.Acked)
	c.end(s, "finished")
}

// openFileTarget is the share of MaxOpenFiles that closeIdle closes down
// to, in tenths: some headroom, so that it does not run at every tick.
const openFileTarget = 9

// closeIdle closes the files idle longest, once more than MaxOpenFiles are
// open, down to openFileTarget tenths of it. Only live files fully
// delivered are closed: an event or a rescan that finds them grown reopens
// them by inode.
func (c *Collector) closeIdle() {
	if c.openFiles <= c.cfg.MaxOpenFiles {
		return
	}
	var idle []*source
	for _, s := range c.byID {
		if s.state == stateLive && s.inFlight() == 0 {
			idle = append(idle, s)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].active.Before(idle[j].active) })
	target := c.cfg.MaxOpenFiles * openFileTarget / 10
	closed := 0
	for _, s := range idle {
		if c.openFiles <= target {
			break
		}
		if _, ok := s.deliveredNow(); !ok {
			continue
		}
		c.closeFile(s)
		c.moveTo(s, stateIdle, "open file limit")
		closed++
	}
	if !c.fdLogged {
		c.fdLogged = true
		c.log.Info("open file limit reached; closing idle delivered files, reopened when they change", "max_open_files", c.cfg.MaxOpenFiles, "closed", closed)
	}
}
