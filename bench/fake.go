package main

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"thunder/internal/harness/peer"
	"thunder/internal/linecheck"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// fakeTimeout bounds a fake collector's handshake and each of its writes.
const fakeTimeout = 30 * time.Second

// fakeStream is one stream of a fake connection, handle = its index + 1.
type fakeStream struct {
	fakeStreamSpec
	sent  int64 // bytes sent, source offsets; owned by send
	acked atomic.Int64
}

// fakeConn is one connection of a fake collector, carrying one or more
// streams, as the real collector does to each processor it needs.
type fakeConn struct {
	id      string // collector name
	pc      *peer.Conn
	streams []*fakeStream
	wake    chan struct{}
	window  int64 // bytes unacknowledged per stream at most
	sendErr error // owned by send
	ackErr  error // owned by readAcks, read after done
	done    chan struct{}
}

// dialFake connects to addr as collector spec.collector and opens its
// streams, handles 1, 2, ….
func dialFake(addr string, spec fakeSpec) (*fakeConn, error) {
	pc, err := peer.Dial(addr, "", fakeTimeout)
	if err != nil {
		return nil, err
	}
	c := &fakeConn{id: spec.collector, pc: pc, wake: make(chan struct{}, 1), window: spec.window, done: make(chan struct{})}
	if c.window <= 0 {
		c.window = fakeWindow
	}
	if err := c.handshake(spec.streams); err != nil {
		pc.Close()
		return nil, fmt.Errorf("%s: %w", c.id, err)
	}
	// No read deadline in the data phase: it is bounded by the caller.
	pc.ReadTimeout = 0
	_ = pc.SetReadDeadline(time.Time{})
	go c.readAcks()
	return c, nil
}

// handshake sends the preface and Hello, reads Welcome and proves the
// name, then opens each stream and reads its Opened (PROTOCOL.md §3, §4).
func (c *fakeConn) handshake(streams []fakeStreamSpec) error {
	if _, err := c.pc.Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: c.id, Software: "thunder-bench"}); err != nil {
		return err
	}
	for i, s := range streams {
		h := uint32(i + 1)
		op, err := c.pc.Open(h, peer.StreamID(), s.name, 0)
		if err != nil {
			return err
		}
		if op.Offset != 0 {
			return fmt.Errorf("stream opened at %d (handle %d), want 0", op.Offset, op.Handle)
		}
		c.streams = append(c.streams, &fakeStream{fakeStreamSpec: s})
	}
	return nil
}

// readAcks records each stream's acknowledged offset until the connection
// closes.
func (c *fakeConn) readAcks() {
	defer close(c.done)
	defer c.pc.R.Close()
	for {
		f, err := c.pc.R.Next()
		if err != nil {
			return // closed at the end of the run
		}
		if f.Type != wire.TypeAck {
			c.ackErr = fmt.Errorf("%s: unexpected %s", c.id, f.Type)
			return
		}
		var a wirepb.Ack
		if err := wire.Decode(f, &a); err != nil {
			c.ackErr = err
			return
		}
		for _, s := range a.Streams {
			if s.Handle < 1 || int(s.Handle) > len(c.streams) {
				continue // not ours: ignored, as the protocol says
			}
			st := c.streams[s.Handle-1]
			if int64(s.Offset) > st.acked.Load() {
				st.acked.Store(int64(s.Offset))
			}
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// send writes Data frames of fakeFrameLines lines, one write(2) each, in
// turn for each stream that has fewer than c.window bytes
// unacknowledged, until stop is closed or every stream sent limit bytes.
func (c *fakeConn) send(stop <-chan struct{}, limit int64) {
	frame := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+fakeFrameLines*lineBytes)
	for {
		select {
		case <-stop:
			return
		default:
		}
		sending, sent := false, false
		for h, s := range c.streams {
			if s.sent >= limit {
				continue
			}
			sending = true
			if s.sent-s.acked.Load() >= c.window {
				continue
			}
			frame = appendFakeFrame(frame[:wire.DataPrefixBytes], uint32(h+1), s)
			if _, err := c.pc.Write(frame); err != nil {
				c.sendErr = fmt.Errorf("%s: %w", c.id, err)
				return
			}
			s.sent += int64(len(frame) - wire.DataPrefixBytes)
			sent = true
		}
		if !sending {
			return
		}
		if !sent {
			select {
			case <-c.wake:
			case <-stop:
				return
			case <-c.done:
				return
			}
		}
	}
}

// appendFakeFrame appends the next fakeFrameLines linecheck lines of s to
// frame, which holds room for the Data prefix, and fills in the prefix.
func appendFakeFrame(frame []byte, handle uint32, s *fakeStream) []byte {
	seq := uint64(s.sent / lineBytes)
	for i := range uint64(fakeFrameLines) {
		frame, _ = linecheck.AppendLine(frame, s.writer, seq+i, lineBytes) // valid id and length
	}
	n := len(frame) - wire.DataPrefixBytes
	wire.PutDataHeader(frame, wire.TypeData, handle, uint64(s.sent), uint64(s.sent)+uint64(n), n, false)
	return frame
}

// fakeConns are the connections of one fake run; an entry is nil where
// the dial failed.
type fakeConns []*fakeConn

// sent and acked sum the bytes sent and acknowledged over every stream.
func (cs fakeConns) sent() (n int64) {
	for _, c := range cs {
		for _, s := range c.streams {
			n += s.sent
		}
	}
	return n
}

func (cs fakeConns) acked() (n int64) {
	for _, c := range cs {
		for _, s := range c.streams {
			n += s.acked.Load()
		}
	}
	return n
}

// finish closes every connection (the processor detaches the streams),
// waits for its ack reader, and returns what went wrong while sending.
func (cs fakeConns) finish() error {
	var errs []error
	for _, c := range cs {
		c.pc.Close() // done
		<-c.done
		errs = append(errs, c.sendErr, c.ackErr)
	}
	return errors.Join(errs...)
}

// close closes the connections still open (cleanup after an error).
func (cs fakeConns) close() {
	for _, c := range cs {
		if c != nil {
			c.pc.Close() // benchmark over
		}
	}
}

// expect is what the fake collectors sent, for linecheck.
func (cs fakeConns) expect() []linecheck.Expect {
	var expect []linecheck.Expect
	for _, c := range cs {
		for _, s := range c.streams {
			expect = append(expect, linecheck.Expect{Writer: s.writer, Name: s.name, Lines: uint64(s.sent / lineBytes)})
		}
	}
	return expect
}
