package processor

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"thunder/internal/digest"
	"thunder/internal/relpath"
	"thunder/internal/stream"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// binding is an open handle: its stream in each output (a slot each).
// The collector is acknowledged the least of what they committed: only
// what every output holds is delivered. The fields after handle are
// guarded by the session's mu.
type binding struct {
	s      *session
	handle uint32
	slots  []*slot // one per output, in the processor's order

	sent   uint64 // last offset acknowledged to the collector
	opened bool   // Opened is queued: acks may follow it
	closed bool   // the handle was closed: acks are dropped
}

// slot is a binding's stream in one output, and the stream.Owner that
// output sees: an output acknowledges exactly the handle that appended.
type slot struct {
	b         *binding
	st        outStream
	committed stream.Mark // guarded by the session's mu
}

// Committed is how an output acknowledges the slot's stream.
func (sl *slot) Committed(m stream.Mark) { sl.b.s.committed(sl, m) }

// committed is what every output has committed: the least mark, and its
// digest. s.mu is held.
func (b *binding) committed() stream.Mark {
	return least(b.slots, func(sl *slot) stream.Mark { return sl.committed })
}

// least returns the mark of the least offset among xs'.
func least[X any](xs []X, mark func(X) stream.Mark) stream.Mark {
	m := mark(xs[0])
	for _, x := range xs[1:] {
		if o := mark(x); o.Offset < m.Offset {
			m = o
		}
	}
	return m
}

// attach attaches the stream in every output and returns where the
// collector must resume: where the output that is behind needs it. On
// error, what was attached is let go.
func (s *session) attach(b *binding, key stream.Key, name relpath.Name, acked stream.Mark) (stream.Mark, error) {
	ats := make([]stream.Mark, 0, len(s.p.outs))
	for _, out := range s.p.outs {
		sl := &slot{b: b}
		st, at, err := out.Attach(key, name, acked, sl)
		if err != nil {
			s.release(b, false)
			return at, err
		}
		sl.st = st
		ats = append(ats, at)
		b.slots = append(b.slots, sl)
	}
	at := least(ats, func(m stream.Mark) stream.Mark { return m })
	for _, a := range ats {
		// An output that does not know its digest (state older than
		// digests) may be the least one at a later Ack: Opened gives a
		// digest only when every output knows it, so Acks that follow a
		// known one are never without (the collector takes that as a
		// processor withholding it).
		at.Unknown = at.Unknown || a.Unknown
	}
	return at, nil
}

// release detaches the binding's streams from their outputs; done forgets
// them (the collector deleted the file).
func (s *session) release(b *binding, done bool) {
	for _, sl := range b.slots {
		if done {
			sl.st.Forget(sl)
		} else {
			sl.st.Detach(sl)
		}
	}
}

func (s *session) open(f wire.Frame) error {
	var m wirepb.Open
	if err := wire.Decode(f, &m); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	if m.Handle == 0 {
		return s.refuse(wire.CodeProtocol, 0, "stream handle 0 is reserved")
	}
	if _, dup := s.handles[m.Handle]; dup {
		return s.refuse(wire.CodeProtocol, m.Handle, "stream handle %d already open", m.Handle)
	}
	if len(s.handles) >= s.p.cfg.MaxStreamsPerConn {
		return s.refuse(wire.CodeLimit, m.Handle, "more than %d streams on one connection", s.p.cfg.MaxStreamsPerConn)
	}
	id, err := stream.ParseID(m.StreamId)
	if err != nil {
		return s.refuse(wire.CodeProtocol, m.Handle, "%v", err)
	}
	name, err := relpath.Clean(m.Name)
	if err != nil {
		return s.refuse(wire.CodeName, m.Handle, "%v", err)
	}
	key := stream.Key{Collector: s.collector, ID: id}
	b := &binding{s: s, handle: m.Handle}
	at, err := s.attach(b, key, name, stream.Mark{Offset: m.Acked, Digest: m.GetAckedDigest(), Unknown: m.AckedDigest == nil || !s.sums})
	if err != nil {
		return s.refuse(codeOf(err), m.Handle, "%v", err)
	}
	s.handles[m.Handle] = b
	s.streams.Store(int64(len(s.handles)))
	// Read the committed offsets and queue Opened under one lock: an ack
	// from a commit that ends meanwhile either is in Opened.committed or
	// is queued after Opened.
	s.mu.Lock()
	for _, sl := range b.slots {
		if c := sl.st.Committed(); c.Offset > sl.committed.Offset {
			sl.committed = c
		}
	}
	c := b.committed()
	b.sent, b.opened = c.Offset, true
	err = s.queueLocked(wire.TypeOpened, &wirepb.Opened{Handle: m.Handle, Offset: at.Offset, Digest: at.DigestPtr(), Committed: c.Offset, CommittedDigest: c.DigestPtr()})
	s.mu.Unlock()
	if err != nil {
		return s.refuse(wire.CodeLimit, m.Handle, "%v", err)
	}
	s.notify()
	s.log.Debug("stream opened", "stream", key, "name", name, "offset", at.Offset)
	return nil
}

func (s *session) data(f wire.Frame) error {
	var zbuf *[]byte
	defer func() { s.p.zbufs.Put(zbuf) }()
	payload, sum, err := s.content(f, &zbuf)
	if err != nil {
		return err
	}
	d, err := wire.ParseData(f.Body)
	if err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	d.Payload = payload
	b := s.handles[d.Handle]
	if b == nil {
		return s.refuse(wire.CodeProtocol, d.Handle, "data for unknown stream handle %d", d.Handle)
	}
	if err := wire.CheckLines(d.Payload); err != nil {
		return s.refuse(wire.CodeProtocol, d.Handle, "%v", err)
	}
	c := stream.Chunk{Offset: d.Offset, End: d.End, Payload: d.Payload, Sum: sum, Lines: bytes.Count(d.Payload, newline)}
	if err := s.append(b, c); err != nil {
		return s.refuse(codeOf(err), d.Handle, "%v", err)
	}
	s.bytes.Add(uint64(len(d.Payload)))
	s.lines.Add(uint64(c.Lines))
	s.p.total.bytes.Add(uint64(len(d.Payload)))
	s.p.total.lines.Add(uint64(c.Lines))
	s.p.m.wrote(len(d.Payload), c.Lines)
	return nil
}

// content returns a data frame's payload as it is to be appended
// (decompressed) and its CRC-32C, once the frame's checksum matched: a
// frame changed on the way is refused as damaged before any other rule
// looks at what it says (§13). DataZstd is decompressed into a buffer from
// Processor.zbufs sized to what it decompresses to, left in *zbuf.
func (s *session) content(f wire.Frame, zbuf **[]byte) ([]byte, uint32, error) {
	refuse := func(format string, args ...any) error {
		if f.Checksummed {
			return s.damaged(fmt.Errorf("%w: "+format, append([]any{wire.ErrChecksum}, args...)...))
		}
		return s.refuse(wire.CodeProtocol, 0, format, args...)
	}
	if len(f.Body) < wire.DataHeaderBytes {
		return nil, 0, refuse("data frame body of %d bytes", len(f.Body))
	}
	payload := f.Body[wire.DataHeaderBytes:]
	if f.Type == wire.TypeDataZstd {
		if !s.zstd {
			return nil, 0, s.refuse(wire.CodeProtocol, 0, "compressed data without negotiated compression")
		}
		var err error
		*zbuf = s.p.zbufs.Get(s.p.zstd.DecodedBytes(payload))
		if payload, err = s.p.zstd.Decode(**zbuf, payload); err != nil {
			return nil, 0, refuse("%v", err)
		}
	}
	sum := digest.Checksum(payload)
	if err := wire.CheckData(f, wire.Data{Header: f.Body[:wire.DataHeaderBytes], Payload: payload}, sum); err != nil {
		return nil, 0, s.damaged(err)
	}
	return payload, sum, nil
}

// codeOf is the wire code for an output's error (PROTOCOL §7).
func codeOf(err error) wire.Code {
	switch {
	case errors.Is(err, stream.ErrNotOwner):
		return wire.CodeBusy
	case errors.Is(err, stream.ErrOffset):
		return wire.CodeOffset
	case errors.Is(err, stream.ErrName):
		return wire.CodeName
	}
	return wire.CodeStorage
}

// append appends the data to each output. Data must start at the least of
// the outputs' offsets (where Opened resumed); an output that is ahead
// takes only what it lacks. Other data goes to each output as it is, which
// refuses it (busy before offset).
func (s *session) append(b *binding, c stream.Chunk) error {
	if len(b.slots) == 1 {
		return b.slots[0].st.Append(b.slots[0], c)
	}
	// What each output holds, taken before any of them moves.
	var buf [2]uint64
	have := buf[:0]
	for _, sl := range b.slots {
		have = append(have, sl.st.Offset())
	}
	lo := slices.Min(have)
	for i, sl := range b.slots {
		if part, ok := skip(have[i], lo, c); ok {
			if err := sl.st.Append(sl, part); err != nil {
				return err
			}
		}
	}
	return nil
}

// skip returns what of d an output at have still needs, and its offset,
// when d starts at lo, the least offset of the outputs: after a fault one
// output may already hold the start of a frame, or all of it. Payload bytes
// are source bytes from d.Offset on (PROTOCOL §5) and outputs stop at frame
// ends, which are line ends, so the cut is a line boundary in practice; if
// not (an over-long line split differently when resent) the rest is written
// anyway and becomes a split line. A payload too short for the cut (only a
// broken collector sends one) is skipped, and its next frame refused.
func skip(have, lo uint64, c stream.Chunk) (stream.Chunk, bool) {
	switch {
	case c.Offset != lo || have <= c.Offset:
		return c, true
	case have >= c.End, have-c.Offset > uint64(len(c.Payload)):
		return stream.Chunk{}, false
	}
	p := c.Payload[have-c.Offset:]
	return stream.Chunk{Offset: have, End: c.End, Payload: p, Sum: digest.Checksum(p), Lines: bytes.Count(p, newline)}, true
}

func (s *session) closeStream(f wire.Frame) error {
	var m wirepb.Close
	if err := wire.Decode(f, &m); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	b := s.handles[m.Handle]
	if b == nil {
		return nil
	}
	delete(s.handles, m.Handle)
	s.streams.Store(int64(len(s.handles)))
	s.mu.Lock()
	b.closed = true
	delete(s.acks, m.Handle)
	s.mu.Unlock()
	s.release(b, m.Done)
	return nil
}

var newline = []byte{'\n'}
