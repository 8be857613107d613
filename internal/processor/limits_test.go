package processor_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"thunder/internal/harness"
	"thunder/internal/identity"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// TestHandshakeSlotsNotStarvedByOnePeer: one peer holding every handshake
// slot with silent sockets must not lock out another peer's collector
// (issue 11). The new handshake takes the place of the hostile peer's
// oldest, which is closed; the hostile peer's own new connections are still
// refused.
func TestHandshakeSlotsNotStarvedByOnePeer(t *testing.T) {
	reg := prometheus.NewRegistry()
	const slots = 8
	srv := mustServe(t, "", func(c *processor.Config) {
		c.MaxHandshakes = slots
		c.HandshakeTimeout = time.Hour // the silent sockets never time out here
		c.Registerer = reg
	})
	hostile := make([]*client, slots)
	for i := range hostile {
		hostile[i] = mustDialFrom(t, srv.addr, "127.0.0.2")
	}
	// Accepted in order: once one more from the same peer is refused, all
	// slots are held.
	mustDialFrom(t, srv.addr, "127.0.0.2").expectClosed()

	honest := mustDialFrom(t, srv.addr, "127.0.0.1")
	honest.handshake("host-a")
	hostile[0].expectClosed() // the oldest gave its slot
	harness.WaitFor(t, waitTimeout, func() error {
		if got := metricValue(t, reg, "thunder_processor_handshakes_evicted_total"); got != 1 {
			return fmt.Errorf("handshakes_evicted_total = %v, want 1", got)
		}
		return nil
	})
	// The honest handshake is done: the hostile peer may take the free
	// slot, then holds the most again and its next connection is refused.
	// The others it holds stay.
	harness.WaitFor(t, waitTimeout, func() error { // released just after Welcome is queued
		if n := processor.Handshaking(srv.p); n != slots-1 {
			return fmt.Errorf("%d handshakes, want %d", n, slots-1)
		}
		return nil
	})
	hostile[0] = mustDialFrom(t, srv.addr, "127.0.0.2")
	mustDialFrom(t, srv.addr, "127.0.0.2").expectClosed()
	for _, c := range hostile {
		c.handshake("hostile")
	}
}

// TestHandshakeRefusesLargeFrames: before the token is checked nothing
// larger than a handshake frame is read (issue 11: a 4 MiB data frame as
// the first frame was read and held). The header alone gets the refusal.
func TestHandshakeRefusesLargeFrames(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) {
		c.Token = "s3cret"
		c.HandshakeTimeout = time.Hour // a refusal, not a timeout, must end it
	})
	tests := []struct {
		name string
		hdr  []byte
	}{
		{"4 MiB data", rawHeader(wire.MaxFrameBytes, wire.TypeData)},
		{"small data", rawHeader(100, wire.TypeData)},
		{"zstd data", rawHeader(100, wire.TypeDataZstd)},
		{"64 KiB hello", rawHeader(wire.MaxControlBytes, wire.TypeHello)},
		{"hello over the handshake limit", rawHeader(wire.MaxHandshakeBytes+2, wire.TypeHello)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, srv.addr)
			c.write(append([]byte(wire.Preface), tt.hdr...))
			c.expectError(wire.CodeProtocol)
		})
	}
	t.Run("hello at the limit", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		h := &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-a", Token: "s3cret",
			IdentityKey: identity.Public(c.keyFor("host-a"))}
		h.Software = strings.Repeat("x", wire.MaxHandshakeBytes-proto.Size(h)-3)
		if n := proto.Size(h); n != wire.MaxHandshakeBytes {
			t.Fatalf("hello of %d bytes, want %d", n, wire.MaxHandshakeBytes)
		}
		c.hello(h)
		var w wirepb.Welcome
		c.mustNext(wire.TypeWelcome, &w)
		c.prove(&w, "host-a")
		// After the handshake data frames are read again.
		c.open(1, newID(t), "a.log", 0)
		c.waitAck(1, c.data(1, 0, "line\n"))
	})
}

// rawHeader is a frame header announcing a body of body bytes.
func rawHeader(body uint32, t wire.Type) []byte {
	b := make([]byte, wire.HeaderBytes)
	wire.PutHeader(b, t, int(body))
	return b
}

// TestPingsWithoutReadingQueueOnePong: a collector that pings and never
// reads must not make the processor queue a Pong per Ping (issue 11: 48 MB
// in 3 s); Pongs coalesce and the connection stays usable.
func TestPingsWithoutReadingQueueOnePong(t *testing.T) {
	srv := mustServeOn(t, "", nil, withSmallSendBuffers)
	c := mustDial(t, srv.addr)
	_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	c.handshake("host-a")
	ping, err := wire.AppendControl(nil, wire.TypePing, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Far more Pongs than the socket buffers hold, sent in one write.
	c.write(bytes.Repeat(ping, pingFlood))
	c.control(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: "a.log"})
	// Frames are read in order: once the Open is, every Ping was.
	harness.WaitFor(t, waitTimeout, func() error {
		if st := srv.p.Status(); len(st.Collectors) != 1 || st.Collectors[0].Streams != 1 {
			return fmt.Errorf("status %+v, want the stream open", st.Collectors)
		}
		return nil
	})
	if n := processor.QueuedBytes(srv.p); n > processor.MaxQueuedBytes {
		t.Fatalf("%d bytes queued after %d Pings, want at most %d", n, pingFlood, processor.MaxQueuedBytes)
	}
	for {
		f, err := c.next()
		if err != nil {
			t.Fatalf("reading Pongs, then Opened: %v", err)
		}
		if f.Type == wire.TypeOpened {
			break
		}
		if f.Type != wire.TypePong {
			t.Fatalf("got %s, want Pong or Opened", f.Type)
		}
	}
}

// pingFlood is how many Pings TestPingsWithoutReadingQueueOnePong sends:
// 250 KB, several times what the small socket buffers take (about 50 KB)
// and the queue bound.
const pingFlood = 50_000

// TestOpensWithoutReadingRefused: a collector that sends Opens (and
// Closes) and never reads the Opened answers is refused with limit once
// MaxQueuedBytes of them are queued, however much the kernel's socket
// buffers took before.
func TestOpensWithoutReadingRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServeOn(t, "", func(c *processor.Config) { c.Registerer = reg }, withSmallSendBuffers)
	// The client's receive buffer stays at the kernel's default (it never
	// reads, so it is not tuned up). A 4 KiB one stalled the flood on a
	// loaded box: with a full receive queue the client's kernel dropped
	// the processor's ACKs of the flood, so its writes blocked and the
	// processor timed out on a half-sent frame before the queue filled.
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		id := newID(t)
		var b []byte
		for h := uint32(1); ; h++ {
			b, _ = wire.AppendControl(b, wire.TypeOpen, &wirepb.Open{Handle: h, StreamId: id, Name: "a.log", Acked: 1 << 60})
			b, _ = wire.AppendControl(b, wire.TypeClose, &wirepb.Close{Handle: h})
			if len(b) < 64<<10 {
				continue
			}
			// Blocks once the processor stops reading, until it lingers.
			_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
			if _, err := c.conn.Write(b); err != nil {
				return
			}
			b = b[:0]
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	defer func() { close(stop); <-flooded }()
	harness.WaitFor(t, waitTimeout, func() error {
		// The limit Error frame goes past the bound.
		if n := processor.QueuedBytes(srv.p); n > processor.MaxQueuedBytes+1<<10 {
			t.Fatalf("%d bytes queued, want at most %d and an Error", n, processor.MaxQueuedBytes)
		}
		if got := metricValue(t, reg, "thunder_processor_refusals_total", "reason", "limit"); got != 1 {
			return fmt.Errorf("refusals_total{reason=limit} = %v, want 1; %d bytes queued", got, processor.QueuedBytes(srv.p))
		}
		return nil
	})
	// The processor gives its last writes to a refused collector 2 s: one
	// that does not read (this test, on a loaded machine) may miss the
	// Error frame, but the connection is closed either way.
	for {
		f, err := c.next()
		if errors.Is(err, io.EOF) || isReset(err) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		if err != nil {
			t.Fatalf("reading Opened frames, then a limit Error: %v", err)
		}
		if f.Type == wire.TypeOpened {
			continue
		}
		var e wirepb.Error
		if f.Type != wire.TypeError || wire.Decode(f, &e) != nil || wire.Code(e.Code) != wire.CodeLimit {
			t.Fatalf("got %s frame %+v, want Opened or a limit Error", f.Type, &e)
		}
		break
	}
	c.expectClosed()
}

// dribble writes b one byte per tick until it is all written or a write
// fails (the processor closed the connection), as a slow peer does.
func dribble(c *client, b []byte, tick time.Duration) {
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for i := range b {
		<-tk.C
		_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
		if _, err := c.conn.Write(b[i : i+1]); err != nil {
			return
		}
	}
}

// TestSlowFramesClosed: once a frame's first byte arrived, the whole frame
// must arrive within FrameTimeout plus its size at MinFrameRate (issue 11:
// the idle deadline, per frame, let a peer trickling bytes keep its
// connection and the frame's buffer for the idle timeout). The idle
// timeout is an hour here: only the frame bound can close these.
func TestSlowFramesClosed(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) {
		c.IdleTimeout = time.Hour
		c.FrameTimeout = 100 * time.Millisecond
	})
	open, err := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: make([]byte, 16), Name: strings.Repeat("n", 4000)})
	if err != nil {
		t.Fatal(err)
	}
	ping, err := wire.AppendControl(nil, wire.TypePing, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		send func(c *client)
	}{
		{"first header byte, then silence", func(c *client) { c.write(open[:1]) }},
		{"header, then silence", func(c *client) { c.write(open[:wire.HeaderBytes]) }},
		// The pings are read whole from the buffer, without a deadline
		// of their own: the part of the open after them still has one.
		{"whole frames with the first byte of the next, then silence", func(c *client) {
			c.write(slices.Concat(ping, ping, open[:1]))
			// Pongs, then the close: a timeout sends no Error frame.
			if e, err := c.pc.ReadToClose(); err != nil || e != nil {
				c.t.Fatalf("ReadToClose() = %v, %v; want closed without an Error frame", e, err)
			}
		}},
		// 4 KiB at 1 byte per 10 ms takes 40 s; the bound is 160 ms.
		{"a 4 KiB open trickled", func(c *client) { go dribble(c, open, 10*time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, srv.addr)
			c.handshake("host-a")
			tt.send(c)
			c.expectClosed() // a timeout: no Error frame
		})
	}
	t.Run("frames in time", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.handshake("host-a")
		c.open(1, newID(t), "a.log", 0)
		c.waitAck(1, c.data(1, 0, strings.Repeat("line\n", 100_000)))
	})
}

// TestSlowHandshakeClosed: a handshake trickled byte by byte is bounded
// by the handshake timeout from accept, not per frame (this held before
// issue 11 too).
func TestSlowHandshakeClosed(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.FrameTimeout = time.Hour
	})
	hello, err := wire.AppendControl([]byte(wire.Preface), wire.TypeHello, &wirepb.Hello{
		MinVersion: 1, MaxVersion: 1, Collector: "host-a", Software: strings.Repeat("s", 4000)})
	if err != nil {
		t.Fatal(err)
	}
	c := mustDial(t, srv.addr)
	go dribble(c, hello, 10*time.Millisecond)
	c.expectClosed()
}
