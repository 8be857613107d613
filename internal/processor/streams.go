package processor

import (
	"bytes"
	"errors"
	"slices"

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
	committed uint64 // guarded by the session's mu
}

// Committed is how an output acknowledges the slot's stream.
func (sl *slot) Committed(offset uint64) { sl.b.s.committed(sl, offset) }

// committed is the offset every output has committed. s.mu is held.
func (b *binding) committed() uint64 {
	least := b.slots[0].committed
	for _, sl := range b.slots[1:] {
		least = min(least, sl.committed)
	}
	return least
}

// attach attaches the stream in every output and returns where the
// collector must resume: where the output that is behind needs it. On
// error, what was attached is let go.
func (s *session) attach(b *binding, key stream.Key, name relpath.Name, acked uint64) (uint64, error) {
	var offset uint64
	for i, out := range s.p.outs {
		sl := &slot{b: b}
		st, off, err := out.Attach(key, name, acked, sl)
		if err != nil {
			s.release(b, false)
			return 0, err
		}
		sl.st = st
		if i == 0 || off < offset {
			offset = off
		}
		b.slots = append(b.slots, sl)
	}
	return offset, nil
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
	offset, err := s.attach(b, key, name, m.Acked)
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
		sl.committed = max(sl.committed, sl.st.Committed())
	}
	b.sent, b.opened = b.committed(), true
	err = s.queueLocked(wire.TypeOpened, &wirepb.Opened{Handle: m.Handle, Offset: offset, Committed: b.sent})
	s.mu.Unlock()
	if err != nil {
		return s.refuse(wire.CodeLimit, m.Handle, "%v", err)
	}
	s.notify()
	s.log.Debug("stream opened", "stream", key, "name", name, "offset", offset)
	return nil
}

func (s *session) data(f wire.Frame) error {
	d, err := wire.ParseData(f.Body)
	if err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	b := s.handles[d.Handle]
	if b == nil {
		return s.refuse(wire.CodeProtocol, d.Handle, "data for unknown stream handle %d", d.Handle)
	}
	if f.Type == wire.TypeDataZstd {
		if !s.zstd {
			return s.refuse(wire.CodeProtocol, d.Handle, "compressed data without negotiated compression")
		}
		buf := s.p.zbufs.Get().(*[]byte)
		defer s.p.zbufs.Put(buf)
		if d.Payload, err = s.p.zstd.Decode(*buf, d.Payload); err != nil {
			return s.refuse(wire.CodeProtocol, d.Handle, "%v", err)
		}
	}
	if err := wire.CheckLines(d.Payload); err != nil {
		return s.refuse(wire.CodeProtocol, d.Handle, "%v", err)
	}
	if err := s.append(b, d); err != nil {
		return s.refuse(codeOf(err), d.Handle, "%v", err)
	}
	lines := bytes.Count(d.Payload, newline)
	s.bytes.Add(uint64(len(d.Payload)))
	s.lines.Add(uint64(lines))
	s.p.total.bytes.Add(uint64(len(d.Payload)))
	s.p.total.lines.Add(uint64(lines))
	s.p.m.wrote(len(d.Payload), lines)
	return nil
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
func (s *session) append(b *binding, d wire.Data) error {
	if len(b.slots) == 1 {
		return b.slots[0].st.Append(b.slots[0], d.Offset, d.End, d.Payload)
	}
	// What each output holds, taken before any of them moves.
	var buf [2]uint64
	have := buf[:0]
	for _, sl := range b.slots {
		have = append(have, sl.st.Offset())
	}
	lo := slices.Min(have)
	for i, sl := range b.slots {
		if from, p, ok := skip(have[i], lo, d); ok {
			if err := sl.st.Append(sl, from, d.End, p); err != nil {
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
func skip(have, lo uint64, d wire.Data) (uint64, []byte, bool) {
	switch {
	case d.Offset != lo || have <= d.Offset:
		return d.Offset, d.Payload, true
	case have >= d.End, have-d.Offset > uint64(len(d.Payload)):
		return 0, nil, false
	}
	return have, d.Payload[have-d.Offset:], true
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
