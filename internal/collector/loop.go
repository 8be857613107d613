package collector

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"thunder/internal/offsets"
	"thunder/internal/shard"
	"thunder/internal/tail"
	"thunder/internal/watch"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// maxOpening bounds Open frames awaiting their answer.
const maxOpening = 256

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
		case m := <-c.inbox:
			c.onLink(m)
		case b := <-pool:
			c.spare, c.wantBuf = b, false
		case <-tick.C:
			c.onTick()
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
		if s := c.byPath[c.rel(ev.Path)]; s != nil && s.f != nil && !s.gone && time.Since(s.checked) < identityCheck {
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
	if !c.inflight() {
		return
	}
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	for c.inflight() {
		select {
		case m := <-c.inbox:
			c.onLink(m)
		case <-t.C:
			return
		}
	}
}

// inflight reports whether any link has data awaiting acknowledgement.
func (c *Collector) inflight() bool {
	for _, l := range c.links {
		if l != nil && l.inflight > 0 {
			return true
		}
	}
	return false
}

func (c *Collector) onLink(m linkMsg) {
	if m.kind == msgUnreachable {
		if !c.tried[m.idx] {
			// Streams waiting for their first choice may now use the next.
			c.tried[m.idx] = true
			c.wakeAll()
		}
		return
	}
	l := m.l
	if m.kind == msgUp {
		if old := c.links[l.idx]; old != nil {
			c.dropLink(old)
		}
		c.links[l.idx] = l
		c.tried[l.idx] = true
		if l.compress == wire.CompressionZstd {
			enc, err := wire.NewEncoder()
			if err != nil {
				c.log.Error("cannot compress; sending uncompressed", "err", err)
			} else {
				l.zstd = enc
			}
		}
		// Streams without a link open on this one; streams that rank it
		// above their current link move back to it (pump).
		c.wakeAll()
		c.setConnected(true)
		return
	}
	if c.links[l.idx] != l {
		return // a message from a link already dropped
	}
	switch m.kind {
	case msgOpened:
		s := l.handles[m.handle]
		if s == nil {
			return
		}
		if !c.possible(l, s, "opened offset", m.offset) || !c.possible(l, s, "opened committed", m.committed) {
			return
		}
		l.opening--
		s.opened = true
		if m.committed > s.rec.Acked {
			c.acked(s, m.committed)
			if c.byID[s.rec.ID] != s {
				return // that finished it
			}
		}
		s.sent = max(m.offset, s.rec.Acked)
		l.inflight += int64(s.sent - s.rec.Acked)
		c.wake(s)
	case msgAck:
		c.onAck(l, m.acks)
	case msgDown:
		var re *wire.RemoteError
		if errors.As(m.err, &re) && re.Code == wire.CodeName && re.Handle != 0 {
			// The processor does not take this file's name now; keep it
			// from holding up the others, and retry it later (refuse.go).
			if s := l.handles[re.Handle]; s != nil {
				c.refuse(l, s, re.Message)
				c.log.Debug("connection to processor closed after a refused name", "addr", l.addr)
				c.dropLink(l)
				return
			}
		}
		if !isClosed(m.err) {
			c.log.Log(context.Background(), refusalLevel(m.err), "connection to processor lost", "addr", m.l.addr, "err", m.err)
			msg := m.err.Error()
			c.statsAdd(func(st *Stats) { st.LastError = msg })
		} else {
			c.log.Info("connection to processor closed", "addr", m.l.addr)
		}
		c.dropLink(l)
	}
}

// onAck records the offsets of an Ack. Acks for handles not open (a late
// Ack) or not yet answered are ignored (PROTOCOL.md §6); an Ack beyond what
// was sent is a protocol error, and then none of its offsets is taken.
func (c *Collector) onAck(l *link, acks []*wirepb.StreamAck) {
	for _, a := range acks {
		if s := l.handles[a.Handle]; s != nil && s.opened && !c.possible(l, s, "ack", a.Offset) {
			return
		}
	}
	for _, a := range acks {
		if s := l.handles[a.Handle]; s != nil && s.opened {
			prev := s.rec.Acked
			c.acked(s, a.Offset)
			if len(c.refused) > 0 && s.rec.Acked > prev {
				c.accepted(l, s)
			}
			l.inflight -= int64(s.rec.Acked - prev)
			if s.moving && s.sent == s.rec.Acked {
				c.wake(s) // nothing in flight: it can move now
			}
		}
	}
}

// dropLink forgets a link. Its streams resend from their acknowledged
// offsets on the next link in their ranking (at once, if one is up).
func (c *Collector) dropLink(l *link) {
	close(l.out)
	_ = l.conn.Close() // the reader exits and reports down, ignored then
	c.links[l.idx] = nil
	for _, s := range l.handles {
		s.on, s.handle, s.opened, s.moving = nil, 0, false, false
		s.sent = s.rec.Acked
		if !s.gone || s.f != nil {
			c.wake(s)
		}
	}
	c.setConnected(false)
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
		if !s.gone || s.f != nil {
			c.wake(s)
		}
	}
}

// acked records an acknowledged offset; the record is saved on the next tick.
func (c *Collector) acked(s *source, off uint64) {
	if off <= s.rec.Acked {
		return
	}
	c.statsAdd(func(st *Stats) { st.AckedBytes += off - s.rec.Acked })
	s.rec.Acked = off
	if !s.dirty {
		s.dirty = true
		c.ackDirty = append(c.ackDirty, s)
	}
	if s.gone && s.eof && s.rec.Acked == s.sent {
		c.maybeFinish(s)
	}
}

// onTick saves acknowledged offsets, sends heartbeats, and flushes the
// unterminated last lines of files that will not grow any more.
func (c *Collector) onTick() {
	now := time.Now()
	c.saveAcked()
	for _, s := range c.byID {
		if (s.gone || s.rec.Rotated) && s.eof && !s.flush && now.Sub(s.grown) >= c.cfg.FlushIdle {
			s.flush = true
			c.wake(s)
		}
		if s.gone && s.eof {
			c.maybeFinish(s)
		}
		c.maybeDelete(s, now)
		if c.cfg.RotateAge > 0 && s.f != nil && !s.rec.Rotated && !s.gone && now.Sub(s.rec.Created) >= c.cfg.RotateAge {
			if fi, err := s.f.Stat(); err == nil {
				c.maybeRotate(s, fi.Size())
			}
		}
	}
	c.closeIdle()
	c.refusedTick(now)
	for name, s := range c.lastByName {
		if c.byID[s.rec.ID] != s {
			delete(c.lastByName, name)
		}
	}
	for _, l := range c.links {
		if l != nil && now.Sub(l.last) >= c.cfg.PingInterval {
			if b, err := wire.AppendControl(nil, wire.TypePing, nil); err == nil {
				l.send(frame{b: b})
			}
		}
	}
	c.updateStats()
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

// maybeFinish forgets a file that left the source dir once all of it is
// acknowledged.
func (c *Collector) maybeFinish(s *source) {
	if s.f == nil || !s.gone {
		return
	}
	fi, err := s.f.Stat()
	if err != nil || uint64(fi.Size()) != s.rec.Acked || s.sent != s.rec.Acked {
		return
	}
	if fi.Sys().(*syscall.Stat_t).Nlink > 0 && !s.outside {
		return // renamed, perhaps within the source dir: the next scan tells
	}
	c.log.Info("stream finished", "name", s.rec.Name, "stream", s.rec.ID, "offset", s.rec.Acked)
	c.drop(s)
}

// pump sends as much as the windows, the buffers and the links allow,
// round-robin over the ready sources.
func (c *Collector) pump() {
	var up, blocked uint64 // links up; links that take nothing more for now
	for _, l := range c.links {
		if l != nil {
			up |= 1 << l.idx
		}
	}
	stalled := 0 // sources in a row that could not send
	for up != 0 && blocked != up && len(c.ready) > 0 && stalled <= len(c.ready) {
		s := c.ready[0]
		if !s.queued || c.byID[s.rec.ID] != s || !s.saved || c.held(s) {
			c.popReady(false)
			continue
		}
		l := c.route(s)
		if l == nil {
			// Its first choice is still being dialled (and s is on no
			// link, or its link would be the route): woken by msgUp or
			// msgUnreachable.
			c.popReady(false)
			continue
		}
		if s.on != nil && s.on != l {
			// A processor ranked above s's current one is back. Move once
			// nothing is in flight, so no byte is on two processors at once
			// (woken by the ack that empties it).
			if !s.opened || s.sent != s.rec.Acked {
				s.moving = true
				c.popReady(false)
				continue
			}
			c.sendClose(s, false)
		}
		if blocked&(1<<l.idx) != 0 {
			c.popReady(true)
			stalled++
			continue
		}
		if s.on == nil {
			if l.opening >= maxOpening || !c.sendOpen(s, l) {
				blocked |= 1 << l.idx // woken again by Opened or acks
				c.popReady(true)
				stalled++
				continue
			}
			c.popReady(false) // woken again by Opened
			continue
		}
		if !s.opened {
			c.popReady(false)
			continue
		}
		if l.inflight >= c.cfg.WindowBytes {
			blocked |= 1 << l.idx // woken by acks
			c.popReady(true)
			stalled++
			continue
		}
		if !c.predDrained(s) {
			c.popReady(true)
			stalled++
			continue
		}
		if c.spare == nil {
			select {
			case c.spare = <-c.pool:
			default:
				c.wantBuf = true
				return
			}
		}
		sentBefore := s.sent
		more, ok := c.readAndSend(s)
		if !ok {
			blocked |= 1 << l.idx
			c.popReady(true)
			stalled++
			continue
		}
		if s.sent != sentBefore {
			stalled = 0
		} else if more {
			stalled++
		}
		c.popReady(more)
	}
}

// popReady removes the head of the ready queue, re-queueing it at the end
// when it has more to send.
func (c *Collector) popReady(requeue bool) {
	s := c.ready[0]
	c.ready[0] = nil
	c.ready = c.ready[1:]
	if requeue {
		c.ready = append(c.ready, s)
		return
	}
	s.queued = false
	if len(c.ready) == 0 {
		c.ready = c.ready[:0:0] // let the backing array go
	}
}

// sendOpen opens s on l; false if l's queue is full.
func (c *Collector) sendOpen(s *source, l *link) bool {
	l.nextHandle++
	h := l.nextHandle
	b, err := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{
		Handle: h, StreamId: s.rec.ID[:], Name: s.rec.Name, Acked: s.rec.Acked,
	})
	if err != nil {
		c.log.Error("cannot encode open", "name", s.rec.Name, "err", err)
		return true
	}
	if !l.send(frame{b: b}) {
		l.nextHandle--
		return false
	}
	s.on, s.handle, s.moving = l, h, false
	l.handles[h] = s
	l.opening++
	return true
}

// sendClose detaches s from its link; done tells the processor the stream
// is over. If the link's queue is full the frame is dropped: the processor
// then keeps the stream attached to this connection until it ends, which
// costs it only memory (a later Open on any connection takes it over).
func (c *Collector) sendClose(s *source, done bool) {
	l := s.on
	if b, err := wire.AppendControl(nil, wire.TypeClose, &wirepb.Close{Handle: s.handle, Done: done}); err == nil {
		l.send(frame{b: b})
	}
	if !s.opened {
		l.opening-- // its Opened will find no stream
	}
	l.inflight -= int64(s.sent - min(s.sent, s.rec.Acked))
	delete(l.handles, s.handle)
	s.on, s.handle, s.opened = nil, 0, false
	s.sent = s.rec.Acked
}

// readAndSend sends the next chunk of s. more: s may have more to send now;
// ok: false when the link queue is full.
func (c *Collector) readAndSend(s *source) (more, ok bool) {
	if s.f == nil {
		return false, true
	}
	buf := *c.spare
	payload, next, res, more, err := tail.Read(s.f, int64(s.sent), buf[wire.DataPrefixBytes:], c.cfg.MaxLineBytes, s.flush)
	if err != nil {
		c.log.Warn("cannot read source file", "path", s.rec.Path, "err", err)
		return false, true
	}
	if res == tail.Nothing {
		s.eof = true
		if fi, err := s.f.Stat(); err == nil && fi.Size() != s.lastSize {
			s.lastSize, s.grown = fi.Size(), time.Now()
			if uint64(fi.Size()) < s.sent && !s.gone {
				c.onPath(filepath.Join(c.dir, filepath.FromSlash(s.rec.Path))) // truncated
				return false, true
			}
		}
		if s.gone && s.rec.Acked == s.sent {
			c.maybeFinish(s)
		}
		return false, true
	}
	if !c.predDrained(s) {
		return true, true // read again once the predecessor is drained
	}
	if !s.gone && !c.leadingBytesSame(s) {
		// Rewritten in place (truncated, then written past the old size)
		// since its identity was last checked: what was read is new
		// content at old offsets. Checked after the read, so a rewrite
		// that comes later cannot have changed what was read.
		c.onPath(filepath.Join(c.dir, filepath.FromSlash(s.rec.Path)))
		return false, true
	}
	lines := uint64(bytes.Count(payload, []byte{'\n'}))
	typ := wire.TypeData
	l := s.on
	if l.zstd != nil {
		// Compressed in a scratch buffer, kept only when smaller, then
		// copied over the payload so the frame stays in one pooled buffer.
		c.zscratch = l.zstd.Append(c.zscratch[:0], payload)
		if len(c.zscratch) < len(payload) {
			payload = buf[wire.DataPrefixBytes : wire.DataPrefixBytes+copy(buf[wire.DataPrefixBytes:], c.zscratch)]
			typ = wire.TypeDataZstd
		}
	}
	wire.PutDataHeader(buf, typ, s.handle, s.sent, uint64(next), len(payload))
	f := frame{b: buf[:wire.DataPrefixBytes+len(payload)], buf: c.spare}
	if !l.send(f) {
		return false, false
	}
	c.spare = nil
	c.statsAdd(func(st *Stats) {
		st.WireBytes += uint64(len(f.b))
		st.SentBytes += uint64(next) - s.sent
		st.SentLines += lines
		switch res {
		case tail.Split:
			st.LinesSplit++
		case tail.Flushed:
			st.LinesFlushed++
		}
	})
	l.inflight += next - int64(s.sent)
	s.sent = uint64(next)
	s.hwm = max(s.hwm, s.sent)
	s.active = time.Now()
	s.eof = !more // a short read reached the end of the file
	s.lastSize, s.grown = max(s.lastSize, next), time.Now()
	switch res {
	case tail.Flushed:
		s.flush = false
	case tail.Split:
		if !s.splitLogged {
			s.splitLogged = true
			c.log.Warn("line longer than --max-line-bytes split into pieces, each given a newline", "path", s.rec.Path, "max_line_bytes", c.cfg.MaxLineBytes)
		}
	}
	if len(s.rec.Fingerprint) < offsets.FingerprintBytes {
		c.extendFingerprint(s)
	}
	c.maybeRotate(s, next)
	return more, true
}

// closeIdle closes the files idle longest, once more than MaxOpenFiles are
// open, down to 90% of it. Only files whose content is all acknowledged and
// that are still at their path are closed: an event or a rescan that finds
// them grown reopens them by inode.
func (c *Collector) closeIdle() {
	if c.openFiles <= c.cfg.MaxOpenFiles {
		return
	}
	var idle []*source
	for _, s := range c.byID {
		if s.f != nil && !s.gone && !s.rec.Rotated && s.sent == s.rec.Acked {
			idle = append(idle, s)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].active.Before(idle[j].active) })
	target := c.cfg.MaxOpenFiles * 9 / 10
	closed := 0
	for _, s := range idle {
		if c.openFiles <= target {
			break
		}
		if fi, err := s.f.Stat(); err != nil || uint64(fi.Size()) != s.rec.Acked {
			continue
		}
		c.closeFile(s)
		s.idleClosed = true
		closed++
	}
	if !c.fdLogged {
		c.fdLogged = true
		c.log.Info("open file limit reached; closing idle delivered files, reopened when they change", "max_open_files", c.cfg.MaxOpenFiles, "closed", closed)
	}
}
