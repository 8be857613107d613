package wire_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// decoded is a frame copied out of a Reader.
type decoded struct {
	t    wire.Type
	body []byte
}

// decodeAll reads frames from r until an error and checks the limits on
// every body (PROTOCOL.md §2, §6).
func decodeAll(t *testing.T, r io.Reader) ([]decoded, error) {
	t.Helper()
	return decodeLimited(t, r, 0)
}

// decodeLimited is decodeAll with the Reader limited to maxBody (SetLimit;
// 0: the protocol's limits).
func decodeLimited(t *testing.T, r io.Reader, maxBody int) ([]decoded, error) {
	t.Helper()
	rd := wire.NewReader(r)
	defer rd.Close()
	rd.SetLimit(maxBody)
	var out []decoded
	for {
		f, err := rd.Next()
		if err != nil {
			if f.Type != 0 || f.Body != nil {
				t.Fatalf("Next() = %v %q, %v: a frame with an error", f.Type, f.Body, err)
			}
			return out, err
		}
		limit := wire.MaxControlBytes
		if f.Type.IsData() {
			limit = wire.MaxFrameBytes
		}
		if maxBody > 0 && (f.Type.IsData() || len(f.Body) > maxBody) {
			t.Fatalf("limited Next() = %v frame of %d bytes, limit %d", f.Type, len(f.Body), maxBody)
		}
		if len(f.Body) > limit || len(f.Body) > wire.MaxFrameBytes {
			t.Fatalf("Next() = %v frame of %d bytes, limit %d", f.Type, len(f.Body), limit)
		}
		out = append(out, decoded{f.Type, bytes.Clone(f.Body)})
	}
}

// messageFor returns an empty message for a control type, nil for Ping and
// Pong, whose bodies carry nothing.
func messageFor(t wire.Type) proto.Message {
	switch t {
	case wire.TypeHello:
		return &wirepb.Hello{}
	case wire.TypeWelcome:
		return &wirepb.Welcome{}
	case wire.TypeOpen:
		return &wirepb.Open{}
	case wire.TypeOpened:
		return &wirepb.Opened{}
	case wire.TypeAck:
		return &wirepb.Ack{}
	case wire.TypeClose:
		return &wirepb.Close{}
	case wire.TypeError:
		return &wirepb.Error{}
	case wire.TypeProof:
		return &wirepb.Proof{}
	}
	return nil
}

// readOne decodes the single frame in b.
func readOne(t *testing.T, b []byte) wire.Frame {
	t.Helper()
	rd := wire.NewReader(bytes.NewReader(b))
	t.Cleanup(rd.Close)
	f, err := rd.Next()
	if err != nil {
		t.Fatalf("Next(%q) = %v, re-encoded frame does not decode", b, err)
	}
	if f2, err := rd.Next(); err != io.EOF {
		t.Fatalf("Next(%q) after one frame = %v, %v, want io.EOF", b, f2.Type, err)
	}
	return f
}

// checkFrame decodes one frame's body and checks the round trip: what
// decodes re-encodes to something that decodes to the same value.
func checkFrame(t *testing.T, d decoded) {
	t.Helper()
	f := wire.Frame{Type: d.t, Body: d.body}
	if d.t.IsData() {
		data, err := wire.ParseData(f.Body)
		if err != nil {
			if !errors.Is(err, wire.ErrBadData) {
				t.Fatalf("ParseData(%q) = %v, want ErrBadData", f.Body, err)
			}
			return
		}
		if data.End <= data.Offset || data.End-data.Offset > wire.MaxPayloadBytes {
			t.Fatalf("ParseData(%q) = offset %d end %d, outside the invariants", f.Body, data.Offset, data.End)
		}
		if err := wire.CheckLines(data.Payload); err != nil && !errors.Is(err, wire.ErrBadData) {
			t.Fatalf("CheckLines(%q) = %v, want nil or ErrBadData", data.Payload, err)
		}
		buf := make([]byte, wire.DataPrefixBytes+len(data.Payload))
		copy(buf[wire.DataPrefixBytes:], data.Payload)
		wire.PutDataHeader(buf, d.t, data.Handle, data.Offset, data.End, len(data.Payload), false)
		g := readOne(t, buf)
		again, err := wire.ParseData(g.Body)
		if err != nil || g.Type != d.t || again.Handle != data.Handle || again.Offset != data.Offset ||
			again.End != data.End || !bytes.Equal(again.Payload, data.Payload) {
			t.Fatalf("ParseData(PutDataHeader(%+v)) = %v %+v, %v, want the same", data, g.Type, again, err)
		}
		return
	}
	m := messageFor(d.t)
	if m == nil { // Ping, Pong: the body is ignored
		b, err := wire.AppendControl(nil, d.t, nil)
		if err != nil {
			t.Fatalf("AppendControl(%v, nil) = %v", d.t, err)
		}
		if g := readOne(t, b); g.Type != d.t || len(g.Body) != 0 {
			t.Fatalf("Next(AppendControl(%v, nil)) = %v %q, want %v with an empty body", d.t, g.Type, g.Body, d.t)
		}
		return
	}
	if err := wire.Decode(f, m); err != nil {
		if !errors.Is(err, wire.ErrBadMessage) {
			t.Fatalf("Decode(%v %q) = %v, want ErrBadMessage", d.t, f.Body, err)
		}
		return
	}
	b, err := wire.AppendControl(nil, d.t, m)
	if err != nil {
		t.Fatalf("AppendControl(Decode(%v %q)) = %v", d.t, f.Body, err)
	}
	g := readOne(t, b)
	m2 := messageFor(d.t)
	if err := wire.Decode(g, m2); err != nil || g.Type != d.t {
		t.Fatalf("Decode(AppendControl(%v)) = %v, %v; re-encoded %q", m, g.Type, err, b)
	}
	if !proto.Equal(m, m2) {
		t.Fatalf("Decode(AppendControl(%v)) = %v, want equal", m, m2)
	}
}

// splitReader returns b[:at] in one read, then the rest one byte per read.
func splitReader(b []byte, at uint) io.Reader {
	k := int(at % uint(len(b)+1))
	return io.MultiReader(bytes.NewReader(b[:k]), iotest.OneByteReader(bytes.NewReader(b[k:])))
}

// fuzzSeeds are streams of frames: valid ones of every type and hostile
// ones. testdata/fuzz/FuzzDecode holds more, and every crasher found.
func fuzzSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	var all []byte
	for _, c := range controlMessages() {
		b, err := wire.AppendControl(nil, c.t, c.m)
		if err != nil {
			tb.Fatalf("AppendControl(%v) = %v", c.t, err)
		}
		seeds = append(seeds, b)
		all = append(all, b...)
	}
	for _, ty := range []wire.Type{wire.TypeData, wire.TypeDataZstd} {
		payload := "2026-01-02 web-1 seq=1\n2026-01-02 web-1 seq=2\n"
		b := make([]byte, wire.DataPrefixBytes+len(payload))
		copy(b[wire.DataPrefixBytes:], payload)
		wire.PutDataHeader(b, ty, 1, 4096, 4096+uint64(len(payload)), len(payload), false)
		seeds = append(seeds, b)
		all = append(all, b...)
	}
	seeds = append(seeds,
		all,
		nil,
		rawHeader(0, wire.TypeHello),
		rawHeader(math.MaxUint32, wire.TypeData),
		rawHeader(math.MaxUint32, wire.TypeHello),
		rawHeader(wire.MaxFrameBytes+1, wire.TypeData),
		rawFrame(0, nil),
		rawFrame(13, []byte("x")),
		rawFrame(wire.TypeProof, []byte{0x0a, 0x40}),
		append(rawFrame(wire.TypeHello, make([]byte, wire.MaxHandshakeBytes+1)), rawFrame(wire.TypePing, nil)...),
		append(rawFrame(wire.TypePing, nil), rawHeader(wire.MaxFrameBytes, wire.TypeData)...),
		rawFrame(wire.TypeData, rawData(1, 5, 5, "a\n")),
		rawFrame(wire.TypeData, rawData(1, 0, math.MaxUint64, "a\n")),
		rawFrame(wire.TypeData, []byte("short")),
		rawFrame(wire.TypeHello, []byte{0x1a, 0x01, 0xff}),
		rawFrame(wire.TypeAck, []byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x10}),
		append(rawFrame(wire.TypePing, []byte("junk")), rawFrame(wire.TypePong, nil)...),
		all[:len(all)-3],
	)
	return seeds
}

func FuzzDecode(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add(s, uint(i*7))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint) {
		frames, err := decodeAll(t, bytes.NewReader(in))
		if err == nil {
			t.Fatal("decodeAll ended without an error")
		}
		if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, wire.ErrEmptyFrame) &&
			!errors.Is(err, wire.ErrUnknownType) && !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("Next(%q) = %v, not a documented error", in, err)
		}
		// Where reads end must not change what is decoded.
		split2, err2 := decodeAll(t, splitReader(in, split))
		if err2 == nil || err2.Error() != err.Error() || len(split2) != len(frames) {
			t.Fatalf("split at %d: %d frames, %v; want %d frames, %v", split, len(split2), err2, len(frames), err)
		}
		for i := range frames {
			if frames[i].t != split2[i].t || !bytes.Equal(frames[i].body, split2[i].body) {
				t.Fatalf("split at %d: frame %d = %v %q, want %v %q", split, i, split2[i].t, split2[i].body, frames[i].t, frames[i].body)
			}
		}
		checkLimited(t, in, split, frames, err)
		for _, d := range frames {
			checkFrame(t, d)
		}
	})
}

// checkLimited decodes in with the handshake limit (SetLimit): it must
// return the same frames as without it, up to the first data frame or body
// over MaxHandshakeBytes, and refuse that one with ErrDataRefused or
// ErrFrameTooLarge.
func checkLimited(t *testing.T, in []byte, split uint, frames []decoded, err error) {
	t.Helper()
	got, gerr := decodeLimited(t, splitReader(in, split), wire.MaxHandshakeBytes)
	if len(got) > len(frames) {
		t.Fatalf("limited: %d frames, more than the %d without a limit", len(got), len(frames))
	}
	for i := range got {
		if got[i].t != frames[i].t || !bytes.Equal(got[i].body, frames[i].body) {
			t.Fatalf("limited: frame %d = %v %q, want %v %q", i, got[i].t, got[i].body, frames[i].t, frames[i].body)
		}
	}
	refused := errors.Is(gerr, wire.ErrDataRefused) || errors.Is(gerr, wire.ErrFrameTooLarge)
	switch {
	case len(got) < len(frames):
		next := frames[len(got)]
		if !refused || !next.t.IsData() && len(next.body) <= wire.MaxHandshakeBytes {
			t.Fatalf("limited: stopped at %v frame of %d bytes with %v", next.t, len(next.body), gerr)
		}
	case !refused && gerr.Error() != err.Error():
		t.Fatalf("limited: ended with %v, want %v or a refusal", gerr, err)
	}
}

// FuzzHandshake feeds what a processor reads first, with its handshake
// limit (SetLimit, PROTOCOL.md §2): the preface and a Hello.
func FuzzHandshake(f *testing.F) {
	hello, err := wire.AppendControl([]byte(wire.Preface), wire.TypeHello, &wirepb.Hello{
		MinVersion: 1, MaxVersion: 1, Collector: "web-1", Token: "t", Software: "thunder",
		IdentityKey: bytes.Repeat([]byte{0x5a}, 32),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hello)
	f.Add(hello[:len(hello)-1])
	f.Add([]byte(wire.Preface))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add(append([]byte(wire.Preface), rawHeader(math.MaxUint32, wire.TypeHello)...))
	f.Add(append([]byte(wire.Preface), rawFrame(wire.TypeData, rawData(1, 0, 2, "a\n"))...))
	f.Add(append([]byte(wire.Preface), rawFrame(wire.TypeHello, []byte{0x08, 0xff})...))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, rd := range readers {
			r := wire.NewReader(rd.wrap(bytes.NewReader(in)))
			r.SetLimit(wire.MaxHandshakeBytes)
			err := r.ReadPreface()
			if (err == nil) != bytes.HasPrefix(in, []byte(wire.Preface)) {
				t.Fatalf("ReadPreface(%q) = %v", in, err)
			}
			if err != nil {
				r.Close()
				continue
			}
			fr, err := r.Next()
			if err == nil && (fr.Type.IsData() || len(fr.Body) > wire.MaxHandshakeBytes) {
				t.Fatalf("limited Next(%q) = %v frame of %d bytes", in, fr.Type, len(fr.Body))
			}
			if err == nil && fr.Type == wire.TypeHello {
				var h wirepb.Hello
				if err := wire.Decode(fr, &h); err == nil {
					checkFrame(t, decoded{fr.Type, bytes.Clone(fr.Body)})
				}
			}
			r.Close()
		}
	})
}
