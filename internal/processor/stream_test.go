package processor_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"thunder/internal/harness"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

func TestOpenDataAck(t *testing.T) {
	srv := mustServe(t, "", nil)
	id := newID(t)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	o := c.open(1, id, "app/a.log", 0)
	if o.Offset != 0 || o.Committed != 0 {
		t.Fatalf("Opened = (offset %d, committed %d), want (0, 0) for a new stream", o.Offset, o.Committed)
	}
	end := c.data(1, 0, "one\ntwo\n")
	end = c.data(1, end, "three\n")
	c.waitAck(1, end)
	if got, want := readFile(t, srv.dir, "app/a.log"), "one\ntwo\nthree\n"; got != want {
		t.Fatalf("target = %q, want %q", got, want)
	}

	// A new connection resumes the stream where it ends.
	_ = c.conn.Close()
	c2 := mustDial(t, srv.addr)
	c2.handshake("host-a")
	o = c2.open(7, id, "app/a.log", 0)
	if o.Offset != end || o.Committed != end {
		t.Fatalf("Opened on reconnect = (offset %d, committed %d), want (%d, %d)", o.Offset, o.Committed, end, end)
	}
	end2 := c2.data(7, end, "four\n")
	c2.waitAck(7, end2)
	if got, want := readFile(t, srv.dir, "app/a.log"), "one\ntwo\nthree\nfour\n"; got != want {
		t.Fatalf("target = %q, want %q", got, want)
	}

	// The same stream id from another collector is another stream.
	c3 := mustDial(t, srv.addr)
	c3.handshake("host-b")
	if o := c3.open(1, id, "app/a.log", 0); o.Offset != 0 {
		t.Errorf("Opened.offset for host-b = %d, want 0", o.Offset)
	}
}

func TestOpenAckedBeyond(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	// The processor knows nothing of the stream but the collector saw 100
	// bytes acknowledged (elsewhere, or before this processor lost its state).
	o := c.open(1, newID(t), "a.log", 100)
	if o.Offset != 100 {
		t.Fatalf("Opened.offset = %d, want 100", o.Offset)
	}
	end := c.data(1, 100, "x\n")
	c.waitAck(1, end)
	if got := readFile(t, srv.dir, "a.log"); got != "x\n" {
		t.Fatalf("target = %q, want %q", got, "x\n")
	}
}

func TestOpenResumeKnowsLess(t *testing.T) {
	srv := mustServe(t, "", nil)
	id := newID(t)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.open(1, id, "a.log", 0)
	end := c.data(1, 0, "a\nb\n")
	c.waitAck(1, end)
	_ = c.conn.Close()

	c2 := mustDial(t, srv.addr)
	c2.handshake("host-a")
	if o := c2.open(1, id, "a.log", 2); o.Offset != end {
		t.Fatalf("Opened.offset = %d, want %d (the processor's)", o.Offset, end)
	}
}

func TestDataRefused(t *testing.T) {
	srv := mustServe(t, "", nil)
	tests := []struct {
		name  string
		frame func(handle uint32) []byte
		want  wire.Code
	}{
		{"offset beyond", func(h uint32) []byte { return dataFrame(wire.TypeData, h, 5, 7, []byte("x\n")) }, wire.CodeOffset},
		{"unknown handle", func(h uint32) []byte { return dataFrame(wire.TypeData, h+1, 0, 2, []byte("x\n")) }, wire.CodeProtocol},
		{"no newline", func(h uint32) []byte { return dataFrame(wire.TypeData, h, 0, 2, []byte("xy")) }, wire.CodeProtocol},
		{"empty payload", func(h uint32) []byte { return dataFrame(wire.TypeData, h, 0, 2, nil) }, wire.CodeProtocol},
		{"end not after offset", func(h uint32) []byte { return dataFrame(wire.TypeData, h, 0, 0, []byte("x\n")) }, wire.CodeProtocol},
		{"range too large", func(h uint32) []byte {
			return dataFrame(wire.TypeData, h, 0, wire.MaxPayloadBytes+1, []byte("x\n"))
		}, wire.CodeProtocol},
		{"short body", func(h uint32) []byte {
			b := make([]byte, wire.HeaderBytes+10)
			wire.PutHeader(b, wire.TypeData, 10)
			return b
		}, wire.CodeProtocol},
		{"zstd not negotiated", func(h uint32) []byte {
			enc, err := wire.NewEncoder()
			if err != nil {
				t.Fatal(err)
			}
			z := enc.Append(nil, []byte("x\n"))
			return dataFrame(wire.TypeDataZstd, h, 0, 2, z)
		}, wire.CodeProtocol},
		{"pong from collector", func(uint32) []byte {
			b, _ := wire.AppendControl(nil, wire.TypePong, nil)
			return b
		}, wire.CodeProtocol},
		{"hello again", func(uint32) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "x"})
			return b
		}, wire.CodeProtocol},
		{"unknown frame type", func(uint32) []byte { return []byte{0, 0, 0, 1, 13} }, wire.CodeProtocol},
		{"proof after the handshake", func(uint32) []byte {
			b, _ := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{Signature: make([]byte, 64)})
			return b
		}, wire.CodeProtocol},
		{"empty frame", func(uint32) []byte { return []byte{0, 0, 0, 0, 1} }, wire.CodeProtocol},
		{"oversized control frame", func(uint32) []byte {
			b := make([]byte, wire.HeaderBytes)
			wire.PutHeader(b, wire.TypeOpen, wire.MaxControlBytes+1)
			return b
		}, wire.CodeProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, srv.addr)
			c.handshake("host-a")
			c.open(3, newID(t), "refused/"+strings.ReplaceAll(tt.name, " ", "-"), 0)
			c.write(tt.frame(3))
			c.expectError(tt.want)
		})
	}
}

func TestDataAfterOffsetError(t *testing.T) {
	srv := mustServe(t, "", nil)
	id := newID(t)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.open(1, id, "a.log", 0)
	end := c.data(1, 0, "a\n")
	c.data(1, end+1, "b\n") // a gap
	e := c.expectError(wire.CodeOffset)
	if e.Handle != 1 {
		t.Errorf("Error.handle = %d, want 1", e.Handle)
	}
	// What was appended before the error is kept and resumed from.
	c2 := mustDial(t, srv.addr)
	c2.handshake("host-a")
	if o := c2.open(1, id, "a.log", 0); o.Offset != end {
		t.Fatalf("Opened.offset = %d, want %d", o.Offset, end)
	}
}

func TestOpenRefused(t *testing.T) {
	srv := mustServe(t, "", nil)
	tests := []struct {
		name string
		open *wirepb.Open
		want wire.Code
	}{
		{"dot dot", &wirepb.Open{Handle: 1, Name: "../x"}, wire.CodeName},
		{"dot dot inside", &wirepb.Open{Handle: 1, Name: "a/../../x"}, wire.CodeName},
		{"absolute", &wirepb.Open{Handle: 1, Name: "/abs"}, wire.CodeName},
		{"state dir", &wirepb.Open{Handle: 1, Name: ".thunder/x"}, wire.CodeName},
		{"state dir itself", &wirepb.Open{Handle: 1, Name: ".thunder"}, wire.CodeName},
		{"state dir after cleaning", &wirepb.Open{Handle: 1, Name: "./.thunder/state.db"}, wire.CodeName},
		{"empty name", &wirepb.Open{Handle: 1, Name: ""}, wire.CodeName},
		{"NUL", &wirepb.Open{Handle: 1, Name: "a\x00b"}, wire.CodeName},
		{"handle 0", &wirepb.Open{Handle: 0, Name: "a.log"}, wire.CodeProtocol},
		{"short stream id", &wirepb.Open{Handle: 1, Name: "a.log", StreamId: []byte{1, 2, 3}}, wire.CodeProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, srv.addr)
			c.handshake("host-a")
			if tt.open.StreamId == nil {
				tt.open.StreamId = newID(t)
			}
			c.control(wire.TypeOpen, tt.open)
			c.expectError(tt.want)
		})
	}
	t.Run("duplicate handle", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.handshake("host-a")
		c.open(1, newID(t), "dup-a.log", 0)
		c.control(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: "dup-b.log"})
		c.expectError(wire.CodeProtocol)
	})
}

func TestZstdData(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	if w := c.handshake("host-a", wire.CompressionZstd); w.Compression != wire.CompressionZstd {
		t.Fatalf("Welcome.compression = %q, want zstd", w.Compression)
	}
	enc, err := wire.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	c.open(1, newID(t), "z.log", 0)
	var want bytes.Buffer
	var off uint64
	for i := range 3 {
		var chunk bytes.Buffer
		for j := range 500 {
			fmt.Fprintf(&chunk, "chunk %d line %d %s\n", i, j, strings.Repeat("z", j%50))
		}
		want.Write(chunk.Bytes())
		z := enc.Append(nil, chunk.Bytes())
		end := off + uint64(chunk.Len())
		c.write(dataFrame(wire.TypeDataZstd, 1, off, end, z))
		off = end
	}
	// Plain data frames may follow compressed ones.
	want.WriteString("plain\n")
	off = c.data(1, off, "plain\n")
	c.waitAck(1, off)
	if got := readFile(t, srv.dir, "z.log"); got != want.String() {
		t.Fatalf("target holds %d bytes, want the %d decompressed", len(got), want.Len())
	}
	harness.WaitFor(t, waitTimeout, func() error { // counted just after the append
		if got := srv.p.Status().Totals.Bytes; got != uint64(want.Len()) {
			return fmt.Errorf("Status().Totals.Bytes = %d, want %d (decompressed)", got, want.Len())
		}
		return nil
	})
}

func TestZstdRefused(t *testing.T) {
	srv := mustServe(t, "", nil)
	enc, err := wire.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("garbage", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.handshake("host-a", wire.CompressionZstd)
		c.open(1, newID(t), "g.log", 0)
		c.write(dataFrame(wire.TypeDataZstd, 1, 0, 10, []byte("not zstd at all\n")))
		c.expectError(wire.CodeProtocol)
	})
	t.Run("no newline", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.handshake("host-a", wire.CompressionZstd)
		c.open(1, newID(t), "n.log", 0)
		c.write(dataFrame(wire.TypeDataZstd, 1, 0, 3, enc.Append(nil, []byte("abc"))))
		c.expectError(wire.CodeProtocol)
	})
	t.Run("bomb", func(t *testing.T) {
		// 4 MiB of newlines compress to a few hundred bytes; 64 such
		// frames in one payload decompress to 256 MiB.
		frame := enc.Append(nil, bytes.Repeat([]byte{'\n'}, wire.MaxPayloadBytes))
		bomb := bytes.Repeat(frame, 64)
		if len(bomb) > wire.MaxPayloadBytes {
			t.Fatalf("bomb of %d bytes does not fit a frame", len(bomb))
		}
		c := mustDial(t, srv.addr)
		c.handshake("host-a", wire.CompressionZstd)
		c.open(1, newID(t), "bomb.log", 0)
		// Let the first compressed frame's buffer be allocated now, so it
		// does not count below.
		c.write(dataFrame(wire.TypeDataZstd, 1, 0, 2, enc.Append(nil, []byte("a\n"))))
		c.waitAck(1, 2)

		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c.write(dataFrame(wire.TypeDataZstd, 1, 2, wire.MaxPayloadBytes, bomb))
		c.expectError(wire.CodeProtocol)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
			t.Errorf("refusing a 256 MiB bomb allocated %d MiB", got>>20)
		}
		if got := readFile(t, srv.dir, "bomb.log"); got != "a\n" {
			t.Errorf("target holds %d bytes, want only %q", len(got), "a\n")
		}
	})
}

func TestTakeover(t *testing.T) {
	srv := mustServe(t, "", nil)
	id := newID(t)
	a := mustDial(t, srv.addr)
	a.handshake("host-a")
	a.open(1, id, "t.log", 0)
	end := a.data(1, 0, "from a\n")
	a.waitAck(1, end)

	b := mustDial(t, srv.addr)
	b.handshake("host-a")
	if o := b.open(2, id, "t.log", 0); o.Offset != end {
		t.Fatalf("Opened.offset on takeover = %d, want %d", o.Offset, end)
	}
	a.data(1, end, "late a\n")
	a.expectError(wire.CodeBusy)

	end = b.data(2, end, "from b\n")
	b.waitAck(2, end)
	if got, want := readFile(t, srv.dir, "t.log"), "from a\nfrom b\n"; got != want {
		t.Fatalf("target = %q, want %q", got, want)
	}
}

func TestMaxStreamsPerConn(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) { c.MaxStreamsPerConn = 2 })
	c := mustDial(t, srv.addr)
	if w := c.handshake("host-a"); w.MaxStreams != 2 {
		t.Errorf("Welcome.max_streams = %d, want 2", w.MaxStreams)
	}
	c.open(1, newID(t), "1.log", 0)
	c.open(2, newID(t), "2.log", 0)
	c.control(wire.TypeOpen, &wirepb.Open{Handle: 3, StreamId: newID(t), Name: "3.log"})
	if e := c.expectError(wire.CodeLimit); e.Handle != 3 {
		t.Errorf("Error.handle = %d, want 3", e.Handle)
	}

	// Closed streams do not count.
	c2 := mustDial(t, srv.addr)
	c2.handshake("host-a")
	c2.open(1, newID(t), "1.log", 0)
	c2.control(wire.TypeClose, &wirepb.Close{Handle: 1})
	c2.open(2, newID(t), "2.log", 0)
	c2.open(3, newID(t), "3.log", 0)
}

func TestCloseDoneForgetsStream(t *testing.T) {
	srv := mustServe(t, "", nil)
	id, other := newID(t), newID(t)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.open(1, id, "done.log", 0)
	c.open(2, other, "other.log", 0)
	end := c.data(1, 0, "last\n")
	c.waitAck(1, end)
	c.control(wire.TypeClose, &wirepb.Close{Handle: 1, Done: true})
	// Close does not start a commit by itself: the record is deleted by the
	// next one, which data on another stream starts.
	oend := c.data(2, 0, "o\n")
	c.waitAck(2, oend)

	c2 := mustDial(t, srv.addr)
	c2.handshake("host-a")
	if o := c2.open(1, id, "done.log", 0); o.Offset != 0 || o.Committed != 0 {
		t.Fatalf("Opened after Close(done) = (offset %d, committed %d), want (0, 0): the record is forgotten", o.Offset, o.Committed)
	}
	// Not done: the record stays.
	c2.control(wire.TypeClose, &wirepb.Close{Handle: 1, Done: false})
	c3 := mustDial(t, srv.addr)
	c3.handshake("host-a")
	if o := c3.open(1, other, "other.log", 0); o.Offset != oend {
		t.Fatalf("Opened for a stream closed without done = %d, want %d", o.Offset, oend)
	}
}

func TestPingPong(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.control(wire.TypePing, nil)
	c.mustNext(wire.TypePong, nil)
}

func TestCollectorError(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.control(wire.TypeError, &wirepb.Error{Code: uint32(wire.CodeProtocol), Message: "bye"})
	c.expectClosed() // the processor logs it and ends the session, no answer
}
