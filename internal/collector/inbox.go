package collector

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// onLink handles a message of a link goroutine.
func (c *Collector) onLink(m linkMsg) {
	switch {
	case m.kind == msgUnreachable:
		if !c.tried[m.idx] {
			// Streams waiting for their first choice may now use the next.
			c.tried[m.idx] = true
			c.wakeAll()
		}
	case m.kind == msgUp:
		c.onUp(m.l)
	case c.links[m.l.idx] != m.l:
		// a message from a link already dropped
	case m.kind == msgOpened:
		c.onOpened(m.l, m)
	case m.kind == msgAck:
		c.onAck(m.l, m.acks)
	case m.kind == msgDown:
		c.onDown(m.l, m.err)
	}
}

// onUp takes a new link to Targets[l.idx], replacing any older one.
func (c *Collector) onUp(l *link) {
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
	if !l.sealed {
		c.log.Warn("processor does not checksum frames (PROTOCOL.md §13): data is protected by TCP/TLS only and acknowledgements carry no digest; upgrade it", "addr", l.addr)
	}
	// Streams without a link open on this one; streams that rank it
	// above their current link move back to it (pump).
	c.wakeAll()
	c.setConnected(true)
}

// onOpened takes the processor's answer to an Open: the stream resumes at
// the offset it names, and what it committed is acknowledged.
func (c *Collector) onOpened(l *link, m linkMsg) {
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
		c.acked(l, s, m.committed, m.committedDigest, "opened committed")
		if s.state == stateForgotten {
			return // that finished it
		}
	} else if m.committed == s.rec.Acked {
		c.checkDigest(l, s, "opened committed", m.committed, m.committedDigest)
	}
	s.told = told(l, m.digest)
	if m.offset >= s.rec.Acked {
		c.resumeDigest(l, s, m.offset, m.digest)
	}
	s.setOffsets(max(m.offset, s.rec.Acked), s.rec.Acked)
	c.wake(s)
}

// onDown drops a link that failed or was closed.
func (c *Collector) onDown(l *link, err error) {
	var re *wire.RemoteError
	if errors.As(err, &re) && re.Code == wire.CodeName && re.Handle != 0 {
		// The processor does not take this file's name now; keep it
		// from holding up the others, and retry it later (refuse.go).
		if s := l.handles[re.Handle]; s != nil {
			c.refuse(l, s, re.Message)
			c.log.Debug("connection to processor closed after a refused name", "addr", l.addr)
			c.dropLink(l)
			return
		}
	}
	if errors.Is(err, wire.ErrChecksum) {
		c.statsAdd(func(st *Stats) { st.ChecksumErrors++ })
		c.log.Warn("frame from processor failed its checksum: damaged on the way; reconnecting", "addr", l.addr, "err", err)
	}
	if !isClosed(err) {
		level := slog.LevelWarn
		if r := c.permanent(l.addr, err); r != nil {
			err, level = r, slog.LevelError // only an operator can fix it
		}
		c.log.Log(context.Background(), level, "connection to processor lost", "addr", l.addr, "err", err)
		msg := err.Error()
		c.statsAdd(func(st *Stats) { st.LastError = msg })
	} else {
		c.log.Info("connection to processor closed", "addr", l.addr)
	}
	c.dropLink(l)
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
			c.acked(l, s, a.Offset, a.Digest, "ack")
			if len(c.refused) > 0 && s.rec.Acked > prev {
				c.accepted(l, s)
			}
			if s.moving && s.inFlight() == 0 {
				c.wake(s) // nothing in flight: it can move now
			}
		}
	}
}

// acked records an acknowledged offset, whose digest l's processor says is
// theirs (what: where it said so); the record is saved on the next tick.
func (c *Collector) acked(l *link, s *source, off uint64, theirs *uint32, what string) {
	if off <= s.rec.Acked {
		return
	}
	c.ackDigest(l, s, off, theirs, what)
	c.framesAcked(s, off, time.Now())
	// An advance past what this process sent (hwm) was sent by an earlier
	// one, and Opened tells it after a restart: it counts as sent too, so
	// that AckedBytes never exceeds SentBytes.
	earlier := off - min(off, max(s.hwm, s.rec.Acked))
	c.statsAdd(func(st *Stats) {
		st.AckedBytes += off - s.rec.Acked
		st.SentBytes += earlier
	})
	s.setOffsets(s.sent, off)
	c.markDirty(s)
	c.maybeFinish(s)
}

// dropLink forgets a link. Its streams resend from their acknowledged
// offsets on the next link in their ranking (at once, if one is up).
func (c *Collector) dropLink(l *link) {
	close(l.out)
	_ = l.conn.Close() // the reader exits and reports down, ignored then
	for f := range l.out {
		c.recycle(f) // not written: the writer is gone or about to go
	}
	c.links[l.idx] = nil
	for _, s := range l.handles {
		s.detach()
		if s.readable() {
			c.wake(s)
		}
	}
	c.setConnected(false)
}
