package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"thunder/internal/identity"
	"thunder/internal/stream"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// MaxCollectorNameBytes bounds a collector's name.
const MaxCollectorNameBytes = identity.MaxNameBytes

// session is one collector connection. The reader goroutine (serve) owns
// handles; mu guards what the writer goroutine sends.
type session struct {
	p    *Processor
	conn net.Conn
	log  *slog.Logger

	ip        string // peerKey
	collector string
	zstd      bool                // the collector may send DataZstd
	sums      bool                // frames after Welcome carry checksums (§13); guarded by mu
	handles   map[uint32]*binding // reader only
	since     time.Time
	arrived   time.Time     // when accepted: the waiting go in this order
	accepted  time.Time     // when given its handshake slot, for eviction; guarded by Processor.mu
	granted   chan struct{} // closed once it has a handshake slot, or was evicted waiting
	tokenOK   atomic.Bool   // its Hello passed the token check
	streams   atomic.Int64
	bytes     atomic.Uint64
	lines     atomic.Uint64

	mu      sync.Mutex
	out     []byte // encoded control frames waiting for the writer, ≤ MaxQueuedBytes
	pong    bool   // a Pong is due (Pings coalesce: at most one is pending)
	acks    map[uint32]stream.Mark
	closing bool // no more frames will be queued; the writer flushes and exits
	wake    chan struct{}
	done    chan struct{} // closed when the writer exits

	readDone chan struct{} // closed when the reader appends no more
}

func newSession(p *Processor, conn net.Conn) *session {
	now := time.Now()
	return &session{
		p:        p,
		conn:     conn,
		arrived:  now,
		accepted: now, // the age among the waiting until it has a slot
		granted:  make(chan struct{}),
		log:      p.log.With("peer", conn.RemoteAddr().String()),
		handles:  make(map[uint32]*binding),
		acks:     make(map[uint32]stream.Mark),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),

		readDone: make(chan struct{}),
	}
}

// serve runs the connection until it fails or ctx is done. On shutdown the
// writer stays up until Serve calls finish, so the final acks reach the
// collector.
func (s *session) serve(ctx context.Context) {
	defer s.lingeringClose()
	go s.writeLoop()
	r := wire.NewReader(s.conn)
	defer r.Close()
	// Until the collector is authenticated, nothing larger than a
	// handshake frame is read, and no read buffer is allocated (§2).
	r.SetLimit(wire.MaxHandshakeBytes)
	err := s.awaitSlot(ctx)
	if err == nil {
		err = s.handshake(ctx, r)
		s.p.handshook(s)
	}
	if err == nil {
		r.SetLimit(0)
		s.paceFrames(ctx, r)
		s.log = s.p.log.With("peer", s.conn.RemoteAddr().String(), "collector", s.collector)
		s.logAt(slog.LevelInfo, "collector connected")
		s.p.m.connect(1)
		err = s.readLoop(ctx, r)
		s.p.m.connect(-1)
	}
	close(s.readDone)
	if ctx.Err() != nil {
		// Keep the streams attached so the final commit's acks find this
		// session; Serve calls finish once they are queued.
		<-s.done
		s.detachAll()
		return
	}
	s.detachAll()
	s.fail(err)
	s.finish()
	<-s.done
}

func (s *session) detachAll() {
	for h, b := range s.handles {
		s.release(b, false)
		delete(s.handles, h)
	}
}

// fail logs why the session ends and tells the collector when it can use it.
func (s *session) fail(err error) {
	var re *wire.RemoteError
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.logAt(slog.LevelInfo, "collector disconnected")
		return
	case errors.As(err, &re):
		// Already sent to the collector by the code that found it.
		s.logRefusal(re)
	case errors.Is(err, wire.ErrChecksum):
		_ = s.damaged(err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.logAt(slog.LevelWarn, "collector timed out", "err", err)
		return
	default:
		s.logAt(slog.LevelWarn, "collector connection failed", "err", err)
		s.sendError(&wire.RemoteError{Code: wire.CodeProtocol, Message: err.Error()})
	}
}

// damaged refuses a frame whose checksum does not match its content: bytes
// changed between the collector and here, so nothing of it is written, and
// the collector resends from what Opened says on its next connection.
func (s *session) damaged(err error) error {
	s.p.m.damagedFrame()
	s.logAt(slog.LevelWarn, "frame damaged on the way; refused, the collector sends it again", "err", err)
	return s.refuse(wire.CodeChecksum, 0, "%v", err)
}

// refuse queues an Error frame and returns it as the session's end.
func (s *session) refuse(code wire.Code, handle uint32, format string, args ...any) error {
	re := &wire.RemoteError{Code: code, Handle: handle, Message: cut(fmt.Sprintf(format, args...), maxErrorMessage)}
	s.p.m.refused(code)
	s.sendError(re)
	return re
}

// maxErrorMessage bounds an Error's message: a refusal quoting what a
// collector sent (a 64 KiB name) must still fit in a frame and a log line.
const maxErrorMessage = 1024

// cut shortens msg to at most n bytes, on a rune boundary (a protobuf
// string must be valid UTF-8), ending it with an ellipsis.
func cut(msg string, n int) string {
	if len(msg) <= n {
		return msg
	}
	i := n - len("…")
	for i > 0 && !utf8.RuneStart(msg[i]) {
		i--
	}
	return msg[:i] + "…"
}

func (s *session) sendError(re *wire.RemoteError) {
	s.queue(wire.TypeError, &wirepb.Error{Code: uint32(re.Code), Message: re.Message, Handle: re.Handle})
}

func (s *session) readLoop(ctx context.Context, r *wire.Reader) error {
	for {
		if r.Buffered() == 0 {
			// The next frame is not here yet: an idle collector has
			// IdleTimeout to send it. One that is here already in part
			// has the frame timeout (paceFrames), and one whole in the
			// buffer cannot wait.
			_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.IdleTimeout))
		}
		if ctx.Err() != nil {
			return nil // checked after the deadline: stopReading may have run before it
		}
		f, err := r.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch f.Type {
		case wire.TypeData, wire.TypeDataZstd:
			err = s.data(f)
		case wire.TypeOpen:
			err = s.open(f)
		case wire.TypeClose:
			err = s.closeStream(f)
		case wire.TypePing:
			s.queuePong()
		case wire.TypeError:
			var m wirepb.Error
			if wire.Decode(f, &m) == nil {
				s.logAt(slog.LevelWarn, "collector reported an error", "code", wire.Code(m.Code), "err", m.Message)
			}
			return nil
		default:
			err = s.refuse(wire.CodeProtocol, 0, "unexpected %s frame", f.Type)
		}
		if err != nil {
			return err
		}
	}
}

func (s *session) status() CollectorStatus {
	s.mu.Lock()
	name, since := s.collector, s.since
	s.mu.Unlock()
	return CollectorStatus{
		Name: name, Peer: s.conn.RemoteAddr().String(), Since: since, Streams: int(s.streams.Load()),
		CollectorCounters: CollectorCounters{Bytes: s.bytes.Load(), Lines: s.lines.Load()},
	}
}
