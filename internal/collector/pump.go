package collector

import (
	"bytes"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"thunder/internal/digest"
	"thunder/internal/offsets"
	"thunder/internal/tail"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// maxOpening bounds Open frames awaiting their answer.
const maxOpening = 256

// step is what became of the source at the head of the ready queue.
type step int

const (
	stepDone     step = iota // nothing to do until it is woken: it leaves the queue
	stepWait                 // not now: to the back of the queue, stalled
	stepBlock                // its link takes nothing more for now: stepWait, and the link is skipped
	stepNoBuffer             // no buffer is free: pump stops until one comes back
	stepSent                 // a chunk went out and more may follow: to the back of the queue
	stepSentAll              // a chunk went out, the last for now: it leaves the queue
)

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
		l, st := c.next(c.ready[0], blocked)
		switch st {
		case stepDone:
			c.popReady(false)
		case stepBlock:
			blocked |= 1 << l.idx
			fallthrough
		case stepWait:
			c.popReady(true)
			stalled++
		case stepNoBuffer:
			c.wantBuf = true
			return
		case stepSent, stepSentAll:
			stalled = 0
			c.popReady(st == stepSent)
		}
	}
}

// next moves s on by one step: it opens s on the link it should use, moves
// it to a better one, or sends its next chunk. It returns the link.
func (c *Collector) next(s *source, blocked uint64) (*link, step) {
	if !s.queued || s.state == stateForgotten || !s.durable || c.held(s) {
		return nil, stepDone
	}
	l := c.route(s)
	if l == nil {
		// Its first choice is still being dialled (and s is on no link, or
		// its link would be the route): woken by msgUp or msgUnreachable.
		return nil, stepDone
	}
	if s.on != nil && s.on != l {
		// A processor ranked above s's current one is back. Move once
		// nothing is in flight, so no byte is on two processors at once
		// (woken by the ack that empties it).
		if !s.opened || s.inFlight() > 0 {
			s.moving = true
			return l, stepDone
		}
		c.sendClose(s, false)
	}
	switch {
	case blocked&(1<<l.idx) != 0:
		return l, stepWait
	case s.on == nil:
		if l.opening >= maxOpening || !c.sendOpen(s, l) {
			return l, stepBlock // woken again by Opened or acks
		}
		return l, stepDone // woken again by Opened
	case !s.opened:
		return l, stepDone
	case l.inflight >= c.cfg.WindowBytes:
		return l, stepBlock // woken by acks
	case !c.predDrained(s):
		return l, stepWait
	}
	if c.spare == nil {
		select {
		case c.spare = <-c.pool:
		default:
			return l, stepNoBuffer
		}
	}
	return l, c.readAndSend(s)
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

// ackedDigest is Open's acked_digest for rec: absent when the collector
// does not know it (§13), so that no processor takes a guess for its own.
func ackedDigest(rec *offsets.Record) *uint32 {
	if !rec.HasDigest {
		return nil
	}
	return proto.Uint32(rec.Digest)
}

// sendOpen opens s on l; false if l's queue is full.
func (c *Collector) sendOpen(s *source, l *link) bool {
	if !s.rec.HasDigest {
		c.knowAckedDigest(s) // Open carries it: a processor new to the stream takes it as its own
	}
	l.nextHandle++
	h := l.nextHandle
	b, err := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{
		Handle: h, StreamId: s.rec.ID[:], Name: s.rec.Name, Acked: s.rec.Acked, AckedDigest: ackedDigest(&s.rec),
	})
	if err != nil {
		c.log.Error("cannot encode open", "name", s.rec.Name, "err", err)
		return true
	}
	if !l.send(frame{b: seal(b, l.sealed)}) {
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
		l.send(frame{b: seal(b, l.sealed)})
	}
	if !s.opened {
		l.opening-- // its Opened will find no stream
	}
	delete(l.handles, s.handle)
	s.detach()
}

// detach takes s off its link: what it sent there and is not acknowledged
// is sent again, from rec.Acked, wherever it goes next.
func (s *source) detach() {
	s.setOffsets(s.rec.Acked, s.rec.Acked)
	s.on, s.handle, s.opened, s.moving, s.told = nil, 0, false, false, false
}

// readAndSend sends the next chunk of s.
func (c *Collector) readAndSend(s *source) step {
	if s.f == nil {
		return stepDone
	}
	buf := *c.spare
	room := buf[wire.DataPrefixBytes : len(buf)-wire.ChecksumBytes] // the trailer goes after the payload
	payload, next, res, more, err := tail.Read(s.f, int64(s.sent), room, c.cfg.MaxLineBytes, s.flush)
	if err != nil {
		c.log.Warn("cannot read source file", "path", s.rec.Path, "err", err)
		return stepDone
	}
	if res == tail.Nothing {
		c.atEOF(s)
		return stepDone
	}
	if !c.predDrained(s) {
		return stepWait // read again once the predecessor is drained
	}
	if !s.state.offPath() && !c.leadingBytesSame(s) {
		// Rewritten in place (truncated, then written past the old size)
		// since its identity was last checked: what was read is new
		// content at old offsets. Checked after the read, so a rewrite
		// that comes later cannot have changed what was read.
		c.onPath(c.abs(s.rec.Path))
		return stepDone
	}
	if !c.sendData(s, buf, payload, uint64(next), res) {
		return stepBlock
	}
	c.advance(s, next, res, more)
	if more {
		return stepSent
	}
	return stepSentAll
}

// atEOF handles a read of s that found no complete line: a file that
// shrank is looked at again, one that left its path may be finished.
func (c *Collector) atEOF(s *source) {
	s.eof = true
	if fi, err := s.f.Stat(); err == nil && fi.Size() != s.seen.read {
		s.seen.read, s.seen.grown = fi.Size(), time.Now()
		if uint64(fi.Size()) < s.sent && !s.state.offPath() {
			c.onPath(c.abs(s.rec.Path)) // truncated
			return
		}
	}
	c.maybeFinish(s)
}

// sendData queues payload, read from s at s.sent up to next, in the
// pooled buffer buf, as a data frame on s's link; false if the link's
// queue is full. The payload's CRC-32C extends the stream's digest and, on
// a sealed link, makes the frame's trailer (§13), so it is read once.
func (c *Collector) sendData(s *source, buf, payload []byte, next uint64, res tail.Result) bool {
	lines := uint64(bytes.Count(payload, []byte{'\n'}))
	l := s.on
	sum := digest.Checksum(payload)
	typ, wireLen := c.compress(l, payload)
	wire.PutDataHeader(buf, typ, s.handle, s.sent, next, wireLen, l.sealed)
	// The trailer and the digest are of the payload as appended: computed
	// before a compressed payload overwrites it.
	var trailer uint32
	if l.sealed {
		trailer = wire.DataSum(typ, buf[wire.HeaderBytes:wire.DataPrefixBytes], payload, sum)
	}
	d, known := s.dig.at(s.sent)
	if known {
		d = digest.Extend(d, sum, payload)
	}
	if typ == wire.TypeDataZstd {
		copy(buf[wire.DataPrefixBytes:], c.zscratch)
	}
	b := buf[:wire.DataPrefixBytes+wireLen]
	if l.sealed {
		b = wire.AppendDataSum(b, trailer) // within buf: room was left
	}
	f := frame{b: b, buf: c.spare}
	if !l.send(f) {
		return false
	}
	c.spare = nil
	c.roundBytes += next - s.sent
	s.frameSent(next, time.Now())
	if known {
		s.dig.sent(s.sent, next, d)
	} else {
		s.dig.unknownFrom(s.sent)
	}
	c.statsAdd(func(st *Stats) {
		st.WireBytes += uint64(len(f.b))
		st.SentBytes += next - s.sent
		st.SentLines += lines
		switch res {
		case tail.Split:
			st.LinesSplit++
		case tail.Flushed:
			st.LinesFlushed++
		}
	})
	return true
}

// compress compresses payload into c.zscratch when l compresses and that
// makes it smaller, and returns the frame's type and its payload's length
// on the wire.
func (c *Collector) compress(l *link, payload []byte) (wire.Type, int) {
	if l.zstd == nil {
		return wire.TypeData, len(payload)
	}
	c.zscratch = l.zstd.Append(c.zscratch[:0], payload)
	if len(c.zscratch) < len(payload) {
		return wire.TypeDataZstd, len(c.zscratch)
	}
	return wire.TypeData, len(payload)
}

// advance records that s sent up to next; more: the read did not reach the
// end of the file.
func (c *Collector) advance(s *source, next int64, res tail.Result, more bool) {
	if n := len(s.rec.Flushes); n > 0 && s.rec.Flushes[n-1] > s.sent {
		// Sent again from s.sent: a flush above it did not reach the
		// processor, which resumed here (the line may be whole now).
		s.rec.Flushes = slices.DeleteFunc(s.rec.Flushes, func(fl uint64) bool { return fl > s.sent })
		c.unsaved = append(c.unsaved, s)
	}
	if s.rec.MaxLine != c.cfg.MaxLineBytes {
		// Sent with this limit from here: a replay of it after a restart
		// with another --max-line-bytes must still split as it did.
		s.rec.MaxLine = c.cfg.MaxLineBytes
		c.unsaved = append(c.unsaved, s)
	}
	s.setOffsets(uint64(next), s.rec.Acked)
	s.hwm = max(s.hwm, s.sent)
	s.active = time.Now()
	s.eof = !more // a short read reached the end of the file
	s.seen.read, s.seen.grown = max(s.seen.read, next), time.Now()
	switch res {
	case tail.Flushed:
		s.flush = false
		if len(s.rec.Flushes) < offsets.MaxFlushes {
			// A frame ends inside a line here: a replay of the file must
			// add the newline again (digest.go).
			s.rec.Flushes = append(s.rec.Flushes, uint64(next))
		} else {
			// A replay would miss this newline and read as a mismatch:
			// there is none to replay by from now on.
			s.rec.FlushesLost = true
		}
		c.unsaved = append(c.unsaved, s)
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
}
