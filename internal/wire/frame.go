package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"thunder/internal/bufpool"
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
	MaxFrameBytes = DataHeaderBytes + MaxPayloadBytes + ChecksumBytes
	// MaxHandshakeBytes bounds the body of every frame a processor reads
	// before the collector is authenticated (Hello, and any later
	// handshake frame); data frames are refused then (§2, §3). It leaves
	// room for a token of several KiB.
	MaxHandshakeBytes = 8 << 10
)

// ReadBufferBytes is the read buffer of a Reader without a limit, which
// every connection holds for its life, idle or not. A frame body that fits
// is returned from it without a copy; a larger one is read straight into a
// pooled buffer of its size class. Small enough that 10,000 idle
// connections cost 40 MiB, large enough that a busy stream of small frames
// still reads several per system call.
const ReadBufferBytes = 4 << 10

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
	// ErrDataRefused is returned for a data frame while a Reader is
	// limited (SetLimit).
	ErrDataRefused = errors.New("wire: data frame refused")
)

// Frame is one decoded frame. Body is only valid until the next call to
// Reader.Next.
type Frame struct {
	Type Type
	Body []byte
	// Checksummed says the frame had a trailer (§13), and Sum is it. A
	// control frame's was checked by Next; a data frame's is CheckData's.
	Checksummed bool
	Sum         uint32
}

// bodies recycles the frame bodies that do not fit the read buffer, by size
// class, so that an idle connection holds no body buffer and a busy one
// holds one sized to its frame: memory follows frames in flight, not
// connections, nor the largest frame ever read.
var bodies = bufpool.New(ReadBufferBytes, MaxFrameBytes)

// Reader decodes frames from a stream. It is not safe for concurrent use.
type Reader struct {
	src     io.Reader
	r       *bufio.Reader // nil until the first read without a limit
	limit   int           // 0: the protocol's limits (§2); else SetLimit's
	hdr     [HeaderBytes]byte
	body    *[]byte // from bodies, held until the next Next
	skip    int     // bytes of r.r returned as the last body, discarded by Next
	onFrame func(bodyBytes int)
	sums    bool // frames carry trailers (§13)
}

// NewReader returns a Reader on r. It allocates its read buffer at its
// first read without a limit.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r}
}

// SetLimit makes Next refuse, on the header and before reading or
// allocating anything for the body, every data frame (ErrDataRefused) and
// every body over maxBody bytes (ErrFrameTooLarge). A processor sets
// MaxHandshakeBytes until the collector is authenticated (§2). While a
// limit is set and nothing has been read without one, the Reader reads
// unbuffered: it allocates no read buffer and never reads past the frame
// it returns. SetLimit(0) restores the protocol's limits.
func (r *Reader) SetLimit(maxBody int) { r.limit = max(maxBody, 0) }

// OnFrame makes Next call f as soon as the first byte of a frame has
// arrived, with bodyBytes -1, and again once its header is read, with the
// body's length, before the body is read: a caller bounds the time a frame
// may take there (§6 frame timeout). A frame already whole in the read
// buffer cannot wait on the connection, and f is not called for it: a busy
// connection reads several frames at a time, and a deadline set per frame
// cost more than its copy. Nil removes it.
func (r *Reader) OnFrame(f func(bodyBytes int)) { r.onFrame = f }

// SetChecksums makes Next expect a trailer on every frame from now on (§13):
// it checks a control frame's and returns a data frame's in Frame.Sum.
func (r *Reader) SetChecksums(on bool) { r.sums = on }

// source is what Next and ReadPreface read from.
func (r *Reader) source() io.Reader {
	if r.r == nil {
		if r.limit > 0 {
			return r.src
		}
		r.r = bufio.NewReaderSize(r.src, ReadBufferBytes)
	}
	return r.r
}

// ReadPreface reads and checks the connection preface.
func (r *Reader) ReadPreface() error {
	var p [len(Preface)]byte
	if _, err := io.ReadFull(r.source(), p[:]); err != nil {
		return err
	}
	if string(p[:]) != Preface {
		return ErrBadPreface
	}
	return nil
}

// Next reads one frame. Control bodies are bounded by MaxControlBytes, data
// bodies by MaxFrameBytes (or both as SetLimit says); the limit is checked
// before any allocation.
func (r *Reader) Next() (Frame, error) {
	r.release()
	whole := r.wholeBuffered()
	if err := r.readHeader(whole); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:4])
	if n == 0 {
		return Frame{}, ErrEmptyFrame
	}
	t := Type(r.hdr[4])
	size := int64(n) - 1
	if err := r.check(t, size); err != nil {
		return Frame{}, err
	}
	if r.onFrame != nil && !whole {
		r.onFrame(int(size))
	}
	body, err := r.readBody(int(size))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("wire: truncated %s frame: %w", t, err)
	}
	if !r.sums {
		return Frame{Type: t, Body: body}, nil
	}
	body, sum, err := openTrailer(t, body)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Type: t, Body: body, Checksummed: true, Sum: sum}, nil
}

// readBody reads a body of size bytes: in place in the read buffer when it
// fits there (valid until the next read), else into a pooled buffer that
// grows as the bytes arrive.
func (r *Reader) readBody(size int) ([]byte, error) {
	src := r.source()
	if br, ok := src.(*bufio.Reader); ok && size <= br.Size() {
		body, err := br.Peek(size)
		if err != nil {
			return nil, err
		}
		r.skip = size
		return body, nil
	}
	r.body = bodies.Get(min(size, growStartBytes))
	return readGrowing(src, &r.body, size)
}

// growStartBytes is the first buffer of a body read by readGrowing: a peer
// announcing a large frame gets no more until it sends the bytes.
const growStartBytes = 64 << 10

// Buffered is how many bytes the Reader holds that it read from the
// connection and has not returned yet: with none, the next Next waits on
// the connection.
func (r *Reader) Buffered() int {
	if r.r == nil {
		return 0
	}
	return r.r.Buffered() - r.skip
}

// wholeBuffered reports whether the next frame, after the last one's body
// (r.skip), is all in the read buffer.
func (r *Reader) wholeBuffered() bool {
	if r.r == nil || r.r.Buffered() < HeaderBytes {
		return false
	}
	h, err := r.r.Peek(HeaderBytes) // buffered: reads nothing
	if err != nil {
		return false
	}
	n := int64(binary.BigEndian.Uint32(h[:4]))
	return n > 0 && int64(r.r.Buffered()) >= HeaderBytes+n-1
}

// readHeader reads a frame header, telling onFrame when its first byte
// arrived unless the frame is whole in the buffer.
func (r *Reader) readHeader(whole bool) error {
	src := r.source()
	k, err := io.ReadFull(src, r.hdr[:1])
	if err == nil {
		if r.onFrame != nil && !whole {
			r.onFrame(-1)
		}
		k, err = io.ReadFull(src, r.hdr[1:])
		k++
	}
	switch {
	case err == nil:
		return nil
	case k > 0 && errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("wire: truncated frame header: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// check applies the limits of §2 (and SetLimit's) to a frame header.
func (r *Reader) check(t Type, size int64) error {
	limit := int64(MaxControlBytes)
	switch {
	case t.IsData() && r.limit > 0:
		return fmt.Errorf("%w: %s frame of %d bytes before the limit was lifted", ErrDataRefused, t, size)
	case t.IsData():
		limit = MaxFrameBytes
	case t < TypeHello || t > TypeProof: // every type but data is a control frame
		return fmt.Errorf("%w %d", ErrUnknownType, uint8(t))
	}
	if r.limit > 0 {
		limit = min(limit, int64(r.limit))
	}
	if size > limit {
		return fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrFrameTooLarge, t, size, limit)
	}
	return nil
}

// readGrowing reads size bytes into *buf, from bodies, moving them to the
// next class (doubling) only as the bytes arrive: a peer that announces a
// large frame and sends it slowly holds memory for what it sent, not for
// what it announced.
func readGrowing(src io.Reader, buf **[]byte, size int) ([]byte, error) {
	b := (**buf)[:0]
	for len(b) < size {
		if len(b) == cap(b) {
			nb := bodies.Get(min(size, 2*cap(b)))
			*nb = append(*nb, b...)
			bodies.Put(*buf)
			*buf = nb
			b = *nb
		}
		n, err := io.ReadFull(src, b[len(b):min(size, cap(b))])
		b = b[:len(b)+n]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// release lets go of the last frame's body.
func (r *Reader) release() {
	if r.skip > 0 {
		_, _ = r.r.Discard(r.skip) // buffered already: cannot fail
		r.skip = 0
	}
	if r.body != nil {
		bodies.Put(r.body)
		r.body = nil
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
