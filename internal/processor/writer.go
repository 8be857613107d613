package processor

import (
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	"thunder/internal/stream"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// MaxQueuedBytes bounds the control frames (Welcome, Opened) queued for
// one collector and not yet taken by the writer: a collector that sends
// Opens and does not read its answers is refused with limit past it
// (PROTOCOL.md §6). A well-behaved collector, with at most 256 Opens
// awaiting Opened, queues a few KiB. Error frames, the last of a session,
// go past it; Pongs coalesce into one (pong), Acks into one per stream.
const MaxQueuedBytes = 64 << 10

// errQueueFull is the reason a session is refused past MaxQueuedBytes.
var errQueueFull = fmt.Errorf("more than %d bytes of frames queued for a collector that does not read them", MaxQueuedBytes)

// queue appends a control frame for the writer; see queueLocked.
func (s *session) queue(t wire.Type, m proto.Message) error {
	s.mu.Lock()
	err := s.queueLocked(t, m)
	s.mu.Unlock()
	s.notify()
	return err
}

// queueLocked appends a control frame for the writer, or returns
// errQueueFull and queues nothing when MaxQueuedBytes would be passed.
func (s *session) queueLocked(t wire.Type, m proto.Message) error {
	if s.closing {
		return nil
	}
	n := len(s.out)
	var err error
	if s.out, err = s.appendFrame(s.out, t, m); err != nil {
		s.log.Error("cannot encode frame", "err", err)
		return nil
	}
	if t != wire.TypeError && len(s.out) > MaxQueuedBytes {
		s.out = s.out[:n]
		return errQueueFull
	}
	return nil
}

// queuePong answers a Ping; Pongs not yet written coalesce into one, so a
// collector that pings and never reads queues nothing more.
func (s *session) queuePong() {
	s.mu.Lock()
	s.pong = !s.closing
	s.mu.Unlock()
	s.notify()
}

// appendFrame appends a control frame, sealed with its checksum once the
// handshake chose them (§13). s.mu is held.
func (s *session) appendFrame(dst []byte, t wire.Type, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst, err := wire.AppendControl(dst, t, m)
	if err != nil || !s.sums {
		return dst, err
	}
	return wire.Seal(dst, start), nil
}

func (s *session) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// committed records what an output committed of a slot's stream, and
// queues an ack when what every output committed grew.
func (s *session) committed(sl *slot, m stream.Mark) {
	s.mu.Lock()
	if m.Offset > sl.committed.Offset {
		sl.committed = m
	}
	b := sl.b
	if !b.opened || b.closed {
		s.mu.Unlock() // Opened reads the committed offsets itself
		return
	}
	s.ackLocked(b)
}

// ackLocked queues an ack for the writer when what every output committed
// grew, and unlocks s.mu.
func (s *session) ackLocked(b *binding) {
	c := b.committed()
	send := !s.closing && c.Offset > b.sent
	if send {
		b.sent = c.Offset
		s.acks[b.handle] = c
	}
	s.mu.Unlock()
	if send {
		s.notify()
	}
}

// finish lets the writer send what is queued and exit.
func (s *session) finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.notify()
}

// writeLoop sends queued frames; acks of one commit go out in one frame.
func (s *session) writeLoop() {
	defer close(s.done)
	var buf []byte
	for range s.wake {
		s.mu.Lock()
		buf = append(buf[:0], s.out...)
		s.out = keep(s.out)
		if s.pong {
			buf, _ = s.appendFrame(buf, wire.TypePong, nil) // an empty body cannot fail
			s.pong = false
		}
		buf = s.appendAcksLocked(buf)
		closing := s.closing
		s.mu.Unlock()
		if len(buf) > 0 {
			timeout := s.p.cfg.WriteTimeout
			if closing {
				timeout = min(timeout, closingWriteTimeout)
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := s.conn.Write(buf); err != nil {
				_ = s.conn.Close() // the reader notices and ends the session
				s.drain()
				return
			}
		}
		if closing {
			return
		}
		buf = keep(buf)
	}
}

// maxKeptBytes is the most a session's writer keeps of a buffer between
// writes: a burst of Opened or Acks (a collector opening thousands of
// streams) must not stay pinned by an idle connection.
const maxKeptBytes = 4 << 10

// keep returns b emptied, or nil when it grew past maxKeptBytes.
func keep(b []byte) []byte {
	if cap(b) > maxKeptBytes {
		return nil
	}
	return b[:0]
}

// maxAcksPerFrame keeps an Ack frame well under wire.MaxControlBytes (a
// StreamAck takes at most 23 bytes with its digest).
const maxAcksPerFrame = 2048

// closingWriteTimeout bounds the last writes of a stopping processor.
const closingWriteTimeout = 2 * time.Second

// lingeringClose closes the connection once the writer has sent its last
// frames, without losing them: a socket closed with unread input sends a
// reset, and a collector that gets it may never read the last Acks or the
// Error before it (its kernel drops them, or its failed write closes the
// connection first). It would then resend what was committed here; with
// several processors, to another one, where it would be written twice. So
// it half-closes, discards what the collector still sends until it closes
// too (it does on EOF) or Config.LingerTimeout passes, and only then closes.
func (s *session) lingeringClose() {
	defer s.conn.Close()
	if s.collector == "" {
		// Refused in its handshake (set by the reader, this goroutine): no
		// acks are owed, the peer has sent nothing we did not read, and a
		// lingering socket would keep its connection slot for nothing.
		return
	}
	type closeWriter interface{ CloseWrite() error }
	cw, ok := s.conn.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.LingerTimeout))
	_, _ = io.Copy(io.Discard, s.conn) // until EOF, an error or the deadline
}

// appendAcksLocked encodes the pending acks, in as many frames as needed.
func (s *session) appendAcksLocked(buf []byte) []byte {
	m := &wirepb.Ack{}
	flush := func() {
		var err error
		if buf, err = s.appendFrame(buf, wire.TypeAck, m); err != nil {
			panic(err) // maxAcksPerFrame keeps the frame small: a broken invariant
		}
		m.Streams = m.Streams[:0]
	}
	for h, c := range s.acks {
		m.Streams = append(m.Streams, &wirepb.StreamAck{Handle: h, Offset: c.Offset, Digest: c.DigestPtr()})
		if len(m.Streams) == maxAcksPerFrame {
			flush()
		}
	}
	if len(m.Streams) > 0 {
		flush()
	}
	clear(s.acks)
	return buf
}

// drain discards frames queued after a write failure until finish.
func (s *session) drain() {
	for range s.wake {
		s.mu.Lock()
		s.out, s.pong = s.out[:0], false
		clear(s.acks)
		closing := s.closing
		s.mu.Unlock()
		if closing {
			return
		}
	}
}
