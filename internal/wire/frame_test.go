package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// rawFrame builds a frame by hand (PROTOCOL.md §2), independently of the
// package's encoders.
func rawFrame(t wire.Type, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)+1))
	b = append(b, byte(t))
	return append(b, body...)
}

// rawHeader builds a frame header announcing n bytes (type byte included).
func rawHeader(n uint32, t wire.Type) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), byte(t))
}

// readers are the ways a test feeds bytes to a Reader: whole, one byte per
// read, half of each read, and with io.EOF returned together with the last
// bytes.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data err", iotest.DataErrReader},
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("proto.Marshal(%v) = %v", m, err)
	}
	return b
}

func TestReaderNext(t *testing.T) {
	hello := mustMarshal(t, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "web-1"})
	ack := mustMarshal(t, &wirepb.Ack{Streams: []*wirepb.StreamAck{{Handle: 1, Offset: 100}}})
	dataBody := append(make([]byte, wire.DataHeaderBytes), "line\n"...)
	tests := []struct {
		name     string
		in       []byte
		wantType wire.Type
		wantBody []byte
		wantErr  error // matched with errors.Is; nil: a frame
	}{
		{"hello", rawFrame(wire.TypeHello, hello), wire.TypeHello, hello, nil},
		{"welcome", rawFrame(wire.TypeWelcome, []byte{8, 1}), wire.TypeWelcome, []byte{8, 1}, nil},
		{"open", rawFrame(wire.TypeOpen, []byte{8, 7}), wire.TypeOpen, []byte{8, 7}, nil},
		{"opened", rawFrame(wire.TypeOpened, []byte{8, 7}), wire.TypeOpened, []byte{8, 7}, nil},
		{"data", rawFrame(wire.TypeData, dataBody), wire.TypeData, dataBody, nil},
		{"ack", rawFrame(wire.TypeAck, ack), wire.TypeAck, ack, nil},
		{"close", rawFrame(wire.TypeClose, []byte{8, 7, 16, 1}), wire.TypeClose, []byte{8, 7, 16, 1}, nil},
		{"error", rawFrame(wire.TypeError, []byte{8, 1}), wire.TypeError, []byte{8, 1}, nil},
		{"ping", rawFrame(wire.TypePing, nil), wire.TypePing, []byte{}, nil},
		{"pong", rawFrame(wire.TypePong, nil), wire.TypePong, []byte{}, nil},
		{"data zstd", rawFrame(wire.TypeDataZstd, dataBody), wire.TypeDataZstd, dataBody, nil},
		{"proof", rawFrame(wire.TypeProof, []byte{10, 1, 7}), wire.TypeProof, []byte{10, 1, 7}, nil},
		{"proof over limit", rawFrame(wire.TypeProof, make([]byte, wire.MaxControlBytes+1)), 0, nil, wire.ErrFrameTooLarge},
		{"data without body", rawFrame(wire.TypeData, nil), wire.TypeData, []byte{}, nil},
		{"control at limit", rawFrame(wire.TypeError, make([]byte, wire.MaxControlBytes)), wire.TypeError, make([]byte, wire.MaxControlBytes), nil},
		{"data at limit", rawFrame(wire.TypeData, make([]byte, wire.MaxFrameBytes)), wire.TypeData, make([]byte, wire.MaxFrameBytes), nil},
		{"trailing bytes are the next frame", append(rawFrame(wire.TypePing, nil), 0, 0), wire.TypePing, []byte{}, nil},

		{"end of stream", nil, 0, nil, io.EOF},
		{"empty frame", rawHeader(0, wire.TypeHello), 0, nil, wire.ErrEmptyFrame},
		{"empty frame without type", []byte{0, 0, 0, 0}, 0, nil, io.ErrUnexpectedEOF},
		{"type 0", rawFrame(0, []byte{1}), 0, nil, wire.ErrUnknownType},
		{"type 13", rawFrame(13, []byte{1}), 0, nil, wire.ErrUnknownType},
		{"type 255", rawFrame(255, nil), 0, nil, wire.ErrUnknownType},
		{"unknown type announcing 4 GiB", rawHeader(math.MaxUint32, 200), 0, nil, wire.ErrUnknownType},
		{"control over limit", rawFrame(wire.TypeHello, make([]byte, wire.MaxControlBytes+1)), 0, nil, wire.ErrFrameTooLarge},
		{"data over limit", rawFrame(wire.TypeData, make([]byte, wire.MaxFrameBytes+1)), 0, nil, wire.ErrFrameTooLarge},
		{"control over limit, header only", rawHeader(wire.MaxControlBytes+2, wire.TypeOpen), 0, nil, wire.ErrFrameTooLarge},
		{"data over limit, header only", rawHeader(wire.MaxFrameBytes+2, wire.TypeData), 0, nil, wire.ErrFrameTooLarge},
		{"control announcing 4 GiB", rawHeader(math.MaxUint32, wire.TypeHello), 0, nil, wire.ErrFrameTooLarge},
		{"data announcing 4 GiB", rawHeader(math.MaxUint32, wire.TypeData), 0, nil, wire.ErrFrameTooLarge},
		{"data zstd announcing 4 GiB", rawHeader(math.MaxUint32, wire.TypeDataZstd), 0, nil, wire.ErrFrameTooLarge},
		{"truncated length", []byte{0, 0}, 0, nil, io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0, 0, 1}, 0, nil, io.ErrUnexpectedEOF},
		{"truncated control body", rawFrame(wire.TypeHello, hello)[:wire.HeaderBytes+2], 0, nil, io.ErrUnexpectedEOF},
		{"missing control body", rawHeader(10, wire.TypeAck), 0, nil, io.ErrUnexpectedEOF},
		{"truncated data body", rawFrame(wire.TypeData, dataBody)[:wire.HeaderBytes+wire.DataHeaderBytes], 0, nil, io.ErrUnexpectedEOF},
		{"missing data body at limit", rawHeader(wire.MaxFrameBytes+1, wire.TypeData), 0, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := wire.NewReader(rd.wrap(bytes.NewReader(tt.in)))
				defer r.Close()
				f, err := r.Next()
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Next(%.40q) = %v, %v, want error %v", tt.in, f.Type, err, tt.wantErr)
					}
					if tt.wantErr == io.ErrUnexpectedEOF && errors.Is(err, io.EOF) {
						t.Errorf("Next(%.40q) = %v: a truncated frame must not look like a clean end", tt.in, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Next(%.40q) = %v, want a %v frame", tt.in, err, tt.wantType)
				}
				if f.Type != tt.wantType || !bytes.Equal(f.Body, tt.wantBody) {
					t.Errorf("Next(%.40q) = %v %.40q, want %v %.40q", tt.in, f.Type, f.Body, tt.wantType, tt.wantBody)
				}
			})
		}
	}
}

func TestReaderNextSequence(t *testing.T) {
	payload := []byte(strings.Repeat("x", 99) + "\n")
	var in []byte
	var want []wire.Type
	for _, ty := range []wire.Type{wire.TypeOpen, wire.TypeData, wire.TypePing, wire.TypeData, wire.TypeClose} {
		body := []byte{8, 1}
		if ty.IsData() {
			body = append(make([]byte, wire.DataHeaderBytes), payload...)
		}
		in = append(in, rawFrame(ty, body)...)
		want = append(want, ty)
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			r := wire.NewReader(rd.wrap(bytes.NewReader(in)))
			defer r.Close()
			for i, ty := range want {
				f, err := r.Next()
				if err != nil || f.Type != ty {
					t.Fatalf("Next() #%d = %v, %v, want %v, nil", i, f.Type, err, ty)
				}
				if ty.IsData() && !bytes.Equal(f.Body[wire.DataHeaderBytes:], payload) {
					t.Fatalf("Next() #%d body = %q, want payload %q", i, f.Body, payload)
				}
			}
			if f, err := r.Next(); err != io.EOF {
				t.Errorf("Next() after the last frame = %v, %v, want io.EOF", f.Type, err)
			}
		})
	}
}

// repeatReader returns b over and over.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

// A header announcing a huge body fails at once: the body is neither read
// nor allocated.
func TestReaderNextTooLargeDoesNotAllocate(t *testing.T) {
	for _, ty := range []wire.Type{wire.TypeHello, wire.TypeAck, wire.TypeData, wire.TypeDataZstd} {
		t.Run(ty.String(), func(t *testing.T) {
			r := wire.NewReader(&repeatReader{b: rawHeader(math.MaxUint32, ty)})
			defer r.Close()
			const runs = 100
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				if _, err := r.Next(); !errors.Is(err, wire.ErrFrameTooLarge) {
					t.Fatalf("Next(4 GiB %v header) = %v, want ErrFrameTooLarge", ty, err)
				}
			}
			runtime.ReadMemStats(&after)
			if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1024 {
				t.Errorf("Next(4 GiB %v header) allocated %d bytes per call, want under 1 KiB", ty, perRun)
			}
		})
	}
}

func TestReadPreface(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"good", wire.Preface, nil},
		{"good then hello", wire.Preface + "\x00\x00\x00\x01\x01", nil},
		{"http", "GET / HTTP/1.1\r\n", wire.ErrBadPreface},
		{"older version", "THUNDER0", wire.ErrBadPreface},
		{"lower case", "thunder1", wire.ErrBadPreface},
		{"short", "THUND", io.ErrUnexpectedEOF},
		{"empty", "", io.EOF},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := wire.NewReader(rd.wrap(strings.NewReader(tt.in)))
				defer r.Close()
				if err := r.ReadPreface(); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Errorf("ReadPreface(%q) = %v, want %v", tt.in, err, tt.wantErr)
				}
			})
		}
	}
}

// controlMessages holds one populated message of every control type.
func controlMessages() []struct {
	t wire.Type
	m proto.Message
} {
	return []struct {
		t wire.Type
		m proto.Message
	}{
		{wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 3, Collector: "web-1", Token: "s3cret", Compression: []string{"zstd"}, Software: "thunder/1.0", IdentityKey: bytes.Repeat([]byte{0x11}, 32)}},
		{wire.TypeWelcome, &wirepb.Welcome{Version: 1, Compression: "zstd", MaxFrameBytes: wire.MaxFrameBytes, MaxStreams: 100000, Processor: "central", Challenge: bytes.Repeat([]byte{0x22}, 32)}},
		{wire.TypeProof, &wirepb.Proof{Signature: bytes.Repeat([]byte{0x33}, 64)}},
		{wire.TypeOpen, &wirepb.Open{Handle: 7, StreamId: bytes.Repeat([]byte{0xab}, 16), Name: "nginx/access.log", Acked: 1 << 40}},
		{wire.TypeOpened, &wirepb.Opened{Handle: 7, Offset: 1 << 40, Committed: 1 << 39}},
		{wire.TypeAck, &wirepb.Ack{Streams: []*wirepb.StreamAck{{Handle: 1, Offset: 10}, {Handle: 2, Offset: math.MaxUint64}}}},
		{wire.TypeClose, &wirepb.Close{Handle: 7, Done: true}},
		{wire.TypeError, &wirepb.Error{Code: uint32(wire.CodeOffset), Message: "data does not start at 10", Handle: 7}},
		{wire.TypePing, nil},
		{wire.TypePong, nil},
	}
}

// newMessage returns an empty message of m's kind, nil for nil.
func newMessage(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	return m.ProtoReflect().New().Interface()
}

func TestAppendControlDecode(t *testing.T) {
	for _, tt := range controlMessages() {
		for _, rd := range readers {
			t.Run(tt.t.String()+"/"+rd.name, func(t *testing.T) {
				prefix := []byte("prefix")
				b, err := wire.AppendControl(bytes.Clone(prefix), tt.t, tt.m)
				if err != nil {
					t.Fatalf("AppendControl(%v, %v) = %v", tt.t, tt.m, err)
				}
				if !bytes.HasPrefix(b, prefix) {
					t.Fatalf("AppendControl(%q, ...) = %q, lost the prefix", prefix, b)
				}
				b = b[len(prefix):]
				if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4 || wire.Type(b[4]) != tt.t {
					t.Fatalf("AppendControl(%v) header = %d, %d; want %d, %d", tt.t, n, b[4], len(b)-4, tt.t)
				}
				r := wire.NewReader(rd.wrap(bytes.NewReader(b)))
				defer r.Close()
				f, err := r.Next()
				if err != nil || f.Type != tt.t {
					t.Fatalf("Next(AppendControl(%v)) = %v, %v, want %v, nil", tt.t, f.Type, err, tt.t)
				}
				if tt.m == nil {
					if len(f.Body) != 0 {
						t.Errorf("Next(AppendControl(%v, nil)) body = %q, want empty", tt.t, f.Body)
					}
					return
				}
				got := newMessage(tt.m)
				if err := wire.Decode(f, got); err != nil {
					t.Fatalf("Decode(%v) = %v", tt.t, err)
				}
				if !proto.Equal(got, tt.m) {
					t.Errorf("Decode(AppendControl(%v)) = %v, want %v", tt.t, got, tt.m)
				}
			})
		}
	}
}

func TestAppendControlTooLarge(t *testing.T) {
	tests := []struct {
		name string
		t    wire.Type
		m    proto.Message
	}{
		{"long error message", wire.TypeError, &wirepb.Error{Code: 1, Message: strings.Repeat("x", wire.MaxControlBytes)}},
		{"ack of many streams", wire.TypeAck, manyAcks(wire.MaxControlBytes / 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := wire.AppendControl(dst, tt.t, tt.m)
			if !errors.Is(err, wire.ErrFrameTooLarge) {
				t.Fatalf("AppendControl(%s) = %v, want ErrFrameTooLarge", tt.name, err)
			}
			if string(got) != "keep" {
				t.Errorf("AppendControl(%s) left %q, want dst unchanged", tt.name, got)
			}
		})
	}
}

// manyAcks returns an Ack of n streams with the largest handles and offsets
// a processor can send (handles up to n, offsets near 2^63).
func manyAcks(n int) *wirepb.Ack {
	m := &wirepb.Ack{}
	for h := range n {
		m.Streams = append(m.Streams, &wirepb.StreamAck{Handle: uint32(h + 1), Offset: math.MaxInt64})
	}
	return m
}

// TestAckCapacity reports how many worst-case StreamAcks one Ack frame holds:
// a processor that acknowledges more streams in one commit must split them
// over several frames.
func TestAckCapacity(t *testing.T) {
	lo, hi := 1, wire.MaxControlBytes
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if _, err := wire.AppendControl(nil, wire.TypeAck, manyAcks(mid)); err == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	t.Logf("one Ack frame holds %d StreamAcks with 63-bit offsets", lo)
	if lo < 1000 {
		t.Errorf("Ack capacity = %d streams, want at least 1000", lo)
	}
}

func TestDecode(t *testing.T) {
	withUnknown := protowire.AppendTag(mustMarshal(t, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "a"}), 99, protowire.BytesType)
	withUnknown = protowire.AppendBytes(withUnknown, []byte("a future field"))
	tests := []struct {
		name    string
		body    []byte
		want    proto.Message
		wantErr error
	}{
		{"empty body is the zero message", nil, &wirepb.Hello{}, nil},
		{"unknown fields are ignored", withUnknown, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "a"}, nil},
		{"truncated varint", []byte{0x08}, nil, wire.ErrBadMessage},
		{"bad wire type", []byte{0x0f}, nil, wire.ErrBadMessage},
		{"length past end", []byte{0x1a, 0x05, 'a'}, nil, wire.ErrBadMessage},
		{"invalid UTF-8 string", []byte{0x1a, 0x01, 0xff}, nil, wire.ErrBadMessage},
		{"field number 0", []byte{0x00, 0x01}, nil, wire.ErrBadMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got wirepb.Hello
			err := wire.Decode(wire.Frame{Type: wire.TypeHello, Body: tt.body}, &got)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Decode(%q) = %v, want %v", tt.body, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q) = %v, want nil", tt.body, err)
			}
			got.ProtoReflect().SetUnknown(nil)
			if !proto.Equal(&got, tt.want) {
				t.Errorf("Decode(%q) = %v, want %v", tt.body, &got, tt.want)
			}
		})
	}
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		t      wire.Type
		want   string
		isData bool
	}{
		{wire.TypeHello, "hello", false},
		{wire.TypeData, "data", true},
		{wire.TypeDataZstd, "data-zstd", true},
		{wire.TypePong, "pong", false},
		{0, "type(0)", false},
		{wire.TypeProof, "proof", false},
		{13, "type(13)", false},
		{255, "type(255)", false},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
		if got := tt.t.IsData(); got != tt.isData {
			t.Errorf("Type(%d).IsData() = %v, want %v", uint8(tt.t), got, tt.isData)
		}
	}
}

func TestRemoteError(t *testing.T) {
	tests := []struct {
		err  *wire.RemoteError
		want string
	}{
		{&wire.RemoteError{Code: wire.CodeAuth, Message: "wrong token"}, "peer error auth: wrong token"},
		{&wire.RemoteError{Code: wire.CodeOffset, Message: "got 5", Handle: 3}, "peer error offset (stream handle 3): got 5"},
		{&wire.RemoteError{Code: 77, Message: "new"}, "peer error code(77): new"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
	codes := map[wire.Code]string{
		1: "protocol", 2: "version", 3: "auth", 4: "name", 5: "limit",
		6: "offset", 7: "storage", 8: "shutdown", 9: "busy",
	}
	for c, want := range codes {
		if got := c.String(); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", uint32(c), got, want)
		}
	}
}
