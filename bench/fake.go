//go:build unix

package main

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"thunder/internal/backoff"
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
	id    []byte // stream id, the same on every connection
	sent  int64  // bytes sent on this connection, source offsets; owned by send
	high  int64  // the most ever sent; owned by send
	max   int64  // stop there; owned by send
	acked atomic.Int64
}

// fakeConn is one fake collector's link to a processor, carrying one or
// more streams, as the real collector does to each processor it needs.
// Like the real one it reconnects when the link breaks and resumes each
// stream where the processor's Opened says.
type fakeConn struct {
	addr    string
	id      string // collector name
	pc      *peer.Conn
	streams []*fakeStream
	wake    chan struct{}
	window  int64 // bytes unacknowledged per stream at most
	rate    int64 // bytes per second at most; 0: no limit
	sendErr error // owned by send, read after it returned
	done    chan struct{}
	// dials counts connections made (1 + reconnects); since is when the
	// last one's streams were opened again (unix ns).
	dials atomic.Int64
	since atomic.Int64
	// lastAck is when the last Ack came (unix ns).
	lastAck atomic.Int64
}

// dialFake connects to addr as collector spec.collector and opens its
// streams, handles 1, 2, ….
func dialFake(addr string, spec fakeSpec) (*fakeConn, error) {
	c := &fakeConn{addr: addr, id: spec.collector, wake: make(chan struct{}, 1), window: spec.window, rate: spec.rate}
	if c.window <= 0 {
		c.window = fakeWindow
	}
	for _, st := range spec.streams {
		c.streams = append(c.streams, &fakeStream{fakeStreamSpec: st, id: peer.StreamID()})
	}
	if err := c.connect(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.id, err)
	}
	return c, nil
}

// connect dials c.addr, shakes hands and opens every stream at the offset
// the processor has, then starts reading acknowledgements.
func (c *fakeConn) connect() error {
	pc, err := peer.Dial(c.addr, "", fakeTimeout)
	if err != nil {
		return err
	}
	if err := c.handshake(pc); err != nil {
		pc.Close()
		return err
	}
	// No read deadline in the data phase: it is bounded by the caller.
	pc.ReadTimeout = 0
	_ = pc.SetReadDeadline(time.Time{})
	c.pc, c.done = pc, make(chan struct{})
	c.dials.Add(1)
	c.since.Store(time.Now().UnixNano())
	go c.readAcks(pc, c.done)
	return nil
}

// handshake sends the preface and Hello, reads Welcome and proves the
// name, then opens each stream and reads its Opened (PROTOCOL.md §3, §4):
// sending resumes at the offset it gives, which must lie between what was
// acknowledged and what was sent; what it says committed is acknowledged.
func (c *fakeConn) handshake(pc *peer.Conn) error {
	if _, err := pc.Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: c.id, Software: "thunder-bench"}); err != nil {
		return err
	}
	for i, s := range c.streams {
		acked := s.acked.Load()
		op, err := pc.Open(uint32(i+1), s.id, s.name, uint64(acked))
		if err != nil {
			return err
		}
		off, committed := int64(op.Offset), int64(op.Committed)
		if off < acked || off > s.high || committed > off {
			return fmt.Errorf("%s opened at %d, committed %d, acknowledged %d, sent %d: bytes lost", s.name, off, committed, acked, s.high)
		}
		// Resend from the offset, but only what is committed is
		// acknowledged: the rest may still be cut by a crash, and sent
		// as Open.acked then it would move the stream past the cut.
		s.sent = off
		s.acked.Store(max(acked, committed))
	}
	return nil
}

// readAcks records each stream's acknowledged offset until pc closes or
// sends anything but an Ack (an Error before closing), then closes done.
func (c *fakeConn) readAcks(pc *peer.Conn, done chan struct{}) {
	defer close(done)
	defer pc.R.Close()
	defer c.poke()
	for {
		f, err := pc.R.Next()
		if err != nil || f.Type != wire.TypeAck {
			return // the link broke or was refused: send reconnects
		}
		var a wirepb.Ack
		if err := wire.Decode(f, &a); err != nil {
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
		c.lastAck.Store(time.Now().UnixNano())
		c.poke()
	}
}

func (c *fakeConn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// reconnect closes the broken link and connects again, backing off, until
// it succeeds or quit is closed.
func (c *fakeConn) reconnect(quit <-chan struct{}) bool {
	c.pc.Close() // broken
	<-c.done
	for try := 1; ; try++ {
		err := c.connect()
		if err == nil {
			return true
		}
		select {
		case <-quit:
			c.sendErr = fmt.Errorf("%s: reconnect: %w", c.id, err)
			return false
		case <-time.After(fakeBackoff.Delay(try)):
		}
	}
}

// fakeBackoff spaces a fake collector's reconnects, as the real one's.
var fakeBackoff = backoff.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// send writes Data frames of fakeFrameLines lines, one write(2) each, in
// turn for each stream that has fewer than c.window bytes
// unacknowledged, until every stream sent limit bytes or stop is closed,
// and then until all it sent is acknowledged (resending what a broken
// link lost) or quit is closed.
func (c *fakeConn) send(stop, quit <-chan struct{}, limit int64) {
	for _, s := range c.streams {
		s.max = limit
	}
	frame := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+fakeFrameLines*lineBytes)
	start, total := time.Now(), int64(0)
	for {
		select {
		case <-stop:
			for _, s := range c.streams {
				s.max = min(s.max, s.high)
			}
			stop = nil
		default:
		}
		n, waiting, err := c.sendRound(&frame)
		total += n
		switch {
		case err != nil:
			if !c.reconnect(quit) {
				return
			}
			continue
		case !waiting:
			return // all sent and acknowledged
		case n > 0 && c.rate > 0:
			// Paced: wait until the bytes sent are due.
			if wait := time.Until(start.Add(time.Duration(total * int64(time.Second) / c.rate))); wait > 0 {
				select {
				case <-time.After(wait):
				case <-stop:
				case <-quit:
					return
				}
			}
			continue
		case n > 0:
			continue
		}
		select {
		case <-c.wake:
		case <-stop:
		case <-quit:
			return
		case <-c.done:
			if !c.reconnect(quit) {
				return
			}
		}
	}
}

// sendRound sends one frame of each stream that may send one, and says
// how many bytes it sent, whether any stream still waits to send or for an
// Ack, and the write error that broke the link.
func (c *fakeConn) sendRound(frame *[]byte) (sent int64, waiting bool, err error) {
	for h, s := range c.streams {
		acked := s.acked.Load()
		if s.sent >= s.max {
			waiting = waiting || acked < s.max
			continue
		}
		waiting = true
		if s.sent-acked >= c.window {
			continue
		}
		*frame = appendFakeFrame((*frame)[:wire.DataPrefixBytes], uint32(h+1), s)
		if _, err := c.pc.Write(*frame); err != nil {
			return sent, true, err
		}
		n := int64(len(*frame) - wire.DataPrefixBytes)
		s.sent += n
		s.high = max(s.high, s.sent)
		sent += n
	}
	return sent, waiting, nil
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
			n += s.high
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

// streamsAcked counts the streams acknowledged at all, of all.
func (cs fakeConns) streamsAcked() (n, all int) {
	for _, c := range cs {
		for _, s := range c.streams {
			if s.acked.Load() > 0 {
				n++
			}
			all++
		}
	}
	return n, all
}

// finish closes every connection (the processor detaches the streams),
// waits for its ack reader, and returns what went wrong while sending.
func (cs fakeConns) finish() error {
	var errs []error
	for _, c := range cs {
		c.pc.Close() // done
		<-c.done
		errs = append(errs, c.sendErr)
	}
	return errors.Join(errs...)
}

// reconnects is how many connections were made again after a link broke.
func (cs fakeConns) reconnects() (n int64) {
	for _, c := range cs {
		n += c.dials.Load() - 1
	}
	return n
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
			expect = append(expect, linecheck.Expect{Writer: s.writer, Name: s.name, Lines: uint64(s.high / lineBytes)})
		}
	}
	return expect
}
