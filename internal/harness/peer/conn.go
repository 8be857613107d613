// Package peer speaks thunder's wire protocol (docs/PROTOCOL.md) by hand,
// frame by frame, for tests and benchmarks: as a collector (Dial: fake
// collectors, hostile clients, raw clients of processor tests) or as a
// processor (Listen: a fake processor for collector tests). Nothing here
// checks that the frames it is told to send are valid: that is the point.
package peer

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"thunder/internal/digest"
	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// A Conn is one end of a protocol connection. Reads must come from one
// goroutine; writes are serialised and may come from any.
type Conn struct {
	net.Conn
	R *wire.Reader

	// ReadTimeout and WriteTimeout bound each Next and each write; zero
	// leaves the connection's deadlines alone.
	ReadTimeout, WriteTimeout time.Duration

	// Key proves the collector name of SendHello (nil: Key(name)); NoKey
	// sends Hello without a key.
	Key   ed25519.PrivateKey
	NoKey bool

	// Hello is the Hello a Listen connection received.
	Hello *wirepb.Hello

	// Sealed: the crc32c feature was negotiated (PROTOCOL.md §13): Send,
	// Data and DataFrameFor seal every frame, and R checks the trailers of
	// control frames (ParseData those of data frames). Handshake and a
	// Listen with Options.CRC32C set it.
	Sealed bool

	wmu sync.Mutex
}

// NewConn wraps an established connection.
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c, R: wire.NewReader(c)} }

// Dial connects to addr, from the loopback address from when set (all of
// 127.0.0.0/8 is local on Linux, so a test can play several peers), with
// every read and write bounded by timeout.
func Dial(addr, from string, timeout time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := NewConn(c)
	pc.ReadTimeout, pc.WriteTimeout = timeout, timeout
	return pc, nil
}

// Key returns the identity key of a peer collector called name: derived
// from the name, so every connection that claims name proves the same key,
// as a real collector's do.
func Key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("thunder test peer " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// StreamID returns a fresh random 16-byte stream id.
func StreamID() []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // crypto/rand never fails on Linux
	return id
}

func (c *Conn) keyFor(name string) ed25519.PrivateKey {
	if c.Key != nil {
		return c.Key
	}
	return Key(name)
}

// Write sends raw bytes.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.WriteTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.WriteTimeout))
	}
	return c.Conn.Write(b)
}

// Control encodes a control frame.
func Control(t wire.Type, m proto.Message) ([]byte, error) { return wire.AppendControl(nil, t, m) }

// Send sends a control frame, sealed when c is.
func (c *Conn) Send(t wire.Type, m proto.Message) error {
	b, err := c.Frame(t, m)
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// Frame encodes a control frame as Send sends it: sealed when c is.
func (c *Conn) Frame(t wire.Type, m proto.Message) ([]byte, error) {
	b, err := Control(t, m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	if c.Sealed {
		b = wire.Seal(b, 0)
	}
	return b, nil
}

// seal makes c sealed from its next frame on, both ways.
func (c *Conn) seal() {
	c.Sealed = true
	c.R.SetChecksums(true)
}

// HelloBytes returns the preface and h, with the identity key of
// h.Collector unless h has one or c.NoKey.
func (c *Conn) HelloBytes(h *wirepb.Hello) ([]byte, error) {
	if h.IdentityKey == nil && !c.NoKey {
		h.IdentityKey = identity.Public(c.keyFor(h.Collector))
	}
	b, err := wire.AppendControl([]byte(wire.Preface), wire.TypeHello, h)
	if err != nil || !slices.Contains(h.Features, wire.FeatureCRC32C) || h.HelloSum != nil {
		return b, err
	}
	return wire.SealHello(b, len(wire.Preface)), nil // as a collector offering crc32c does (§13)
}

// SendHello sends the preface and h (see HelloBytes).
func (c *Conn) SendHello(h *wirepb.Hello) error {
	b, err := c.HelloBytes(h)
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// Next reads the next frame; its body is copied, so it stays valid.
func (c *Conn) Next() (wire.Frame, error) {
	if c.ReadTimeout > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.ReadTimeout))
	}
	f, err := c.R.Next()
	if err != nil {
		return f, err
	}
	f.Body = append([]byte(nil), f.Body...)
	return f, nil
}

// Expect reads one frame, which must be of type want, into m (unless nil).
// An Error frame instead is returned as a *wire.RemoteError.
func (c *Conn) Expect(want wire.Type, m proto.Message) error {
	f, err := c.Next()
	if err != nil {
		return fmt.Errorf("reading %s: %w", want, err)
	}
	if f.Type != want {
		if f.Type == wire.TypeError {
			var e wirepb.Error
			_ = wire.Decode(f, &e) // best effort: for the message
			return fmt.Errorf("got error frame, want %s: %w", want, &wire.RemoteError{Code: wire.Code(e.Code), Message: e.Message, Handle: e.Handle})
		}
		return fmt.Errorf("got %s frame, want %s", f.Type, want)
	}
	if m != nil {
		return wire.Decode(f, m)
	}
	return nil
}

// Prove answers w's challenge, if any, with a Proof for name (§3).
func (c *Conn) Prove(w *wirepb.Welcome, name string) error {
	if len(w.Challenge) == 0 {
		return nil
	}
	return c.Send(wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(c.keyFor(name), w.Challenge, nil, name)})
}

// Handshake sends h (see SendHello), reads the Welcome and answers its
// challenge. A refusal of the proof arrives at the next read. When h
// offers crc32c and the Welcome lists it, c is sealed from the Proof on.
func (c *Conn) Handshake(h *wirepb.Hello) (*wirepb.Welcome, error) {
	if err := c.SendHello(h); err != nil {
		return nil, err
	}
	var w wirepb.Welcome
	if err := c.Expect(wire.TypeWelcome, &w); err != nil {
		return nil, err
	}
	if slices.Contains(h.Features, wire.FeatureCRC32C) && slices.Contains(w.Features, wire.FeatureCRC32C) {
		c.seal()
	}
	return &w, c.Prove(&w, h.Collector)
}

// Open opens a stream and returns its Opened, which must be for handle.
func (c *Conn) Open(handle uint32, id []byte, name string, acked uint64) (*wirepb.Opened, error) {
	if err := c.Send(wire.TypeOpen, &wirepb.Open{Handle: handle, StreamId: id, Name: name, Acked: acked}); err != nil {
		return nil, err
	}
	var o wirepb.Opened
	if err := c.Expect(wire.TypeOpened, &o); err != nil {
		return nil, err
	}
	if o.Handle != handle {
		return &o, fmt.Errorf("opened handle %d, want %d", o.Handle, handle)
	}
	return &o, nil
}

// DataFrame returns a data frame of type t (Data or DataZstd) for handle,
// covering source offsets [offset, end), with payload as its body.
func DataFrame(t wire.Type, handle uint32, offset, end uint64, payload []byte) []byte {
	b := make([]byte, wire.DataPrefixBytes+len(payload))
	wire.PutDataHeader(b, t, handle, offset, end, len(payload), false)
	copy(b[wire.DataPrefixBytes:], payload)
	return b
}

// SealedDataFrame is DataFrame with its trailer (§13); t must be Data,
// whose payload is as appended.
func SealedDataFrame(t wire.Type, handle uint32, offset, end uint64, payload []byte) []byte {
	b := make([]byte, wire.DataPrefixBytes+len(payload), wire.DataPrefixBytes+len(payload)+wire.ChecksumBytes)
	wire.PutDataHeader(b, t, handle, offset, end, len(payload), true)
	copy(b[wire.DataPrefixBytes:], payload)
	return wire.AppendDataSum(b, wire.DataSum(t, b[wire.HeaderBytes:wire.DataPrefixBytes], payload, digest.Checksum(payload)))
}

// DataFrameFor is DataFrame, sealed when c is.
func (c *Conn) DataFrameFor(handle uint32, offset, end uint64, payload []byte) []byte {
	if c.Sealed {
		return SealedDataFrame(wire.TypeData, handle, offset, end, payload)
	}
	return DataFrame(wire.TypeData, handle, offset, end, payload)
}

// Data sends payload as a Data frame at offset (sealed when c is) and
// returns its end.
func (c *Conn) Data(handle uint32, offset uint64, payload string) (uint64, error) {
	end := offset + uint64(len(payload))
	_, err := c.Write(c.DataFrameFor(handle, offset, end, []byte(payload)))
	return end, err
}

// ParseData decodes a data frame, decompressing a DataZstd payload, and,
// when it was sealed, checks its trailer against the payload as appended
// (wire.ErrChecksum).
func ParseData(f wire.Frame) (wire.Data, error) {
	d, err := wire.ParseData(f.Body)
	if err != nil {
		return d, err
	}
	if f.Type == wire.TypeDataZstd {
		dec, err := wire.NewDecoder()
		if err != nil {
			return d, err
		}
		defer dec.Close()
		if d.Payload, err = dec.Decode(make([]byte, 0, wire.MaxPayloadBytes), d.Payload); err != nil {
			return d, err
		}
	}
	if err := wire.CheckLines(d.Payload); err != nil {
		return d, err
	}
	return d, wire.CheckData(f, d, digest.Checksum(d.Payload))
}

// WaitAck reads frames until an Ack says handle reached offset; an Ack
// beyond offset is an error.
func (c *Conn) WaitAck(handle uint32, offset uint64) error {
	for {
		var a wirepb.Ack
		if err := c.Expect(wire.TypeAck, &a); err != nil {
			return err
		}
		for _, sa := range a.Streams {
			if sa.Handle != handle {
				continue
			}
			if sa.Offset > offset {
				return fmt.Errorf("acknowledged handle %d at %d, beyond what was sent (%d)", handle, sa.Offset, offset)
			}
			if sa.Offset == offset {
				return nil
			}
		}
	}
}

// ExpectError reads frames, skipping Acks and Pongs, until an Error frame
// with code, then expects the connection to be closed.
func (c *Conn) ExpectError(code wire.Code) (*wirepb.Error, error) {
	for {
		f, err := c.Next()
		if err != nil {
			return nil, fmt.Errorf("reading, want error frame %s: %w", code, err)
		}
		switch f.Type {
		case wire.TypeAck, wire.TypePong:
			continue
		case wire.TypeError:
		default:
			return nil, fmt.Errorf("got %s frame, want error %s", f.Type, code)
		}
		var e wirepb.Error
		if err := wire.Decode(f, &e); err != nil {
			return nil, err
		}
		if wire.Code(e.Code) != code {
			return &e, fmt.Errorf("error code = %s (%q), want %s", wire.Code(e.Code), e.Message, code)
		}
		return &e, c.ExpectClosed()
	}
}

// ExpectClosed expects the other end to close the connection, without any
// further frame.
func (c *Conn) ExpectClosed() error {
	f, err := c.Next()
	switch {
	case err == nil:
		return fmt.Errorf("got %s frame, want the connection closed", f.Type)
	case errors.Is(err, io.EOF), IsReset(err):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("connection still open after %v", c.ReadTimeout)
	default:
		return fmt.Errorf("read after error: %v, want EOF", err)
	}
}

// ReadToClose reads until the other end closes the connection and returns
// the Error frame it sent before, if any; other frames are skipped. A
// second Error frame, an undecodable one or a timeout is an error.
func (c *Conn) ReadToClose() (*wirepb.Error, error) {
	var got *wirepb.Error
	for {
		f, err := c.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, errors.New("not closed before the deadline")
			}
			return got, nil // EOF or reset: closed
		}
		if f.Type != wire.TypeError {
			continue
		}
		if got != nil {
			return got, errors.New("second Error frame")
		}
		got = &wirepb.Error{}
		if err := wire.Decode(f, got); err != nil {
			return got, fmt.Errorf("undecodable Error: %w", err)
		}
	}
}

// IsReset reports whether err is a connection error other than a timeout,
// such as a reset by the other end.
func IsReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
