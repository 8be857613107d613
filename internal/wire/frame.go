package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"
)

// Preface opens every connection, sent by the collector before its Hello
// (§2). It lets a processor drop a stray HTTP client or port scanner at once.
const Preface = "THUNDER1"

// Version is the newest protocol version this package speaks (§3).
const Version = 1

// Frame layout (§2): a 4-byte big-endian length n, then n bytes: one type
// byte and the body.
const (
	HeaderBytes     = 5  // length + type
	DataHeaderBytes = 20 // handle(4) + offset(8) + end(8), before the payload
)

// Limits (§6).
const (
	// MaxControlBytes bounds the body of every frame but Data.
	MaxControlBytes = 64 << 10
	// MaxPayloadBytes bounds a data frame's payload; collectors send at most
	// this many bytes of lines per frame.
	MaxPayloadBytes = 4 << 20
	// MaxFrameBytes bounds any frame body.
	MaxFrameBytes = DataHeaderBytes + MaxPayloadBytes
)

// Type is a frame's type byte (§2).
type Type uint8

// Frame types. Numbers are part of the protocol and never reused.
const (
	TypeHello    Type = 1
	TypeWelcome  Type = 2
	TypeOpen     Type = 3
	TypeOpened   Type = 4
	TypeData     Type = 5
	TypeAck      Type = 6
	TypeClose    Type = 7
	TypeError    Type = 8
	TypePing     Type = 9
	TypePong     Type = 10
	TypeDataZstd Type = 11
	TypeProof    Type = 12 // the collector's signature over Welcome's challenge (§3)
)

var typeNames = [...]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeOpen: "open", TypeOpened: "opened",
	TypeData: "data", TypeAck: "ack", TypeClose: "close", TypeError: "error",
	TypePing: "ping", TypePong: "pong", TypeDataZstd: "data-zstd", TypeProof: "proof",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// IsData reports whether frames of type t carry a data header and payload.
func (t Type) IsData() bool { return t == TypeData || t == TypeDataZstd }

// Errors returned by Reader and the decoders.
var (
	ErrBadPreface    = errors.New("wire: bad connection preface")
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrEmptyFrame    = errors.New("wire: empty frame")
	ErrUnknownType   = errors.New("wire: unknown frame type")
	ErrBadData       = errors.New("wire: malformed data frame")
	ErrBadMessage    = errors.New("wire: malformed message")
)

// Frame is one decoded frame. Body is only valid until the next call to
// Reader.Next.
type Frame struct {
	Type Type
	Body []byte
}

// bufPool recycles data frame bodies so that an idle connection holds no
// large buffer: memory follows frames in flight, not connections.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}

// Reader decodes frames from a stream. It is not safe for concurrent use.
type Reader struct {
	r    *bufio.Reader
	hdr  [HeaderBytes]byte
	ctl  []byte
	data *[]byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 32<<10)}
}

// ReadPreface reads and checks the connection preface.
func (r *Reader) ReadPreface() error {
	var p [len(Preface)]byte
	if _, err := io.ReadFull(r.r, p[:]); err != nil {
		return err
	}
	if string(p[:]) != Preface {
		return ErrBadPreface
	}
	return nil
}

// Next reads one frame. Control bodies are bounded by MaxControlBytes, data
// bodies by MaxFrameBytes; the limit is checked before any allocation.
func (r *Reader) Next() (Frame, error) {
	r.release()
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("wire: truncated frame header: %w", err)
		}
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:4])
	if n == 0 {
		return Frame{}, ErrEmptyFrame
	}
	t := Type(r.hdr[4])
	size := int64(n) - 1
	var body []byte
	switch {
	case t.IsData():
		if size > MaxFrameBytes {
			return Frame{}, fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrFrameTooLarge, t, size, MaxFrameBytes)
		}
		r.data = bufPool.Get().(*[]byte)
		if int64(cap(*r.data)) < size {
			*r.data = make([]byte, size)
		}
		body = (*r.data)[:size]
	case t >= TypeHello && t <= TypeProof: // every type but data is a control frame
		if size > MaxControlBytes {
			return Frame{}, fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrFrameTooLarge, t, size, MaxControlBytes)
		}
		if int64(cap(r.ctl)) < size {
			r.ctl = make([]byte, size)
		}
		body = r.ctl[:size]
	default:
		return Frame{}, fmt.Errorf("%w %d", ErrUnknownType, uint8(t))
	}
	if _, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("wire: truncated %s frame: %w", t, err)
	}
	return Frame{Type: t, Body: body}, nil
}

func (r *Reader) release() {
	if r.data != nil {
		bufPool.Put(r.data)
		r.data = nil
	}
}

// Close returns the Reader's pooled buffer. The Reader must not be used after.
func (r *Reader) Close() { r.release() }

// PutHeader writes a frame header for a body of bodyLen bytes into
// dst[:HeaderBytes].
func PutHeader(dst []byte, t Type, bodyLen int) {
	binary.BigEndian.PutUint32(dst[:4], uint32(bodyLen+1))
	dst[4] = byte(t)
}

// AppendControl appends a control frame carrying m (nil for an empty body) to dst.
func AppendControl(dst []byte, t Type, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderBytes)...)
	if m != nil {
		var err error
		dst, err = proto.MarshalOptions{}.MarshalAppend(dst, m)
		if err != nil {
			return dst[:start], fmt.Errorf("wire: encode %s: %w", t, err)
		}
	}
	n := len(dst) - start - HeaderBytes
	if n > MaxControlBytes {
		return dst[:start], fmt.Errorf("%w: %s body of %d bytes", ErrFrameTooLarge, t, n)
	}
	PutHeader(dst[start:], t, n)
	return dst, nil
}

// Decode unmarshals a control frame's body into m.
func Decode(f Frame, m proto.Message) error {
	if err := proto.Unmarshal(f.Body, m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadMessage, f.Type, err)
	}
	return nil
}
