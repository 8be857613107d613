package processor

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"thunder/internal/identity"
	"thunder/internal/kafka"
	"thunder/internal/relpath"
	"thunder/internal/stream"
	"thunder/internal/target"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

var errTooManyFiles = syscall.EMFILE

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
	handles   map[uint32]*binding // reader only
	since     time.Time
	accepted  time.Time   // when admitted, for handshake eviction
	tokenOK   atomic.Bool // its Hello passed the token check
	streams   atomic.Int64
	bytes     atomic.Uint64
	lines     atomic.Uint64

	mu      sync.Mutex
	out     []byte // encoded control frames waiting for the writer, ≤ MaxQueuedBytes
	pong    bool   // a Pong is due (Pings coalesce: at most one is pending)
	acks    map[uint32]uint64
	byFile  map[*target.Stream]*binding
	byKafka map[*kafka.Stream]*binding
	closing bool // no more frames will be queued; the writer flushes and exits
	wake    chan struct{}
	done    chan struct{} // closed when the writer exits

	readDone chan struct{} // closed when the reader appends no more
}

func newSession(p *Processor, conn net.Conn) *session {
	return &session{
		p:        p,
		conn:     conn,
		accepted: time.Now(),
		log:      p.log.With("peer", conn.RemoteAddr().String()),
		handles:  make(map[uint32]*binding),
		acks:     make(map[uint32]uint64),
		byFile:   make(map[*target.Stream]*binding),
		byKafka:  make(map[*kafka.Stream]*binding),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),

		readDone: make(chan struct{}),
	}
}

// binding is an open handle: the stream in each output, and what each
// output committed of it. The collector is acknowledged the least of
// those: only what every output holds is delivered. The committed fields
// are guarded by the session's mu.
type binding struct {
	handle uint32
	file   *target.Stream // nil without a target dir
	kafka  *kafka.Stream  // nil without Kafka

	fileCommitted, kafkaCommitted uint64
	sent                          uint64 // last offset acknowledged to the collector
}

// committed is the offset every output has committed. s.mu is held.
func (b *binding) committed() uint64 {
	switch {
	case b.file == nil:
		return b.kafkaCommitted
	case b.kafka == nil:
		return b.fileCommitted
	}
	return min(b.fileCommitted, b.kafkaCommitted)
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
	err := s.handshake(ctx, r)
	s.p.handshook(s)
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

// release detaches the binding's streams from their outputs; done forgets
// them (the collector deleted the file).
func (s *session) release(b *binding, done bool) {
	if b.file != nil {
		if done {
			s.p.dir.Forget(b.file, s)
		} else {
			s.p.dir.Detach(b.file, s)
		}
	}
	if b.kafka != nil {
		if done {
			s.p.kafka.Forget(b.kafka, s)
		} else {
			s.p.kafka.Detach(b.kafka, s)
		}
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
		s.logAt(slog.LevelWarn, "collector refused", "code", re.Code, "err", re.Message, "handle", re.Handle)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.logAt(slog.LevelWarn, "collector timed out", "err", err)
		return
	default:
		s.logAt(slog.LevelWarn, "collector connection failed", "err", err)
		s.sendError(&wire.RemoteError{Code: wire.CodeProtocol, Message: err.Error()})
	}
}

// refuse queues an Error frame and returns it as the session's end.
func (s *session) refuse(code wire.Code, handle uint32, format string, args ...any) error {
	re := &wire.RemoteError{Code: code, Handle: handle, Message: fmt.Sprintf(format, args...)}
	s.p.m.refused(code)
	s.sendError(re)
	return re
}

func (s *session) sendError(re *wire.RemoteError) {
	s.queue(wire.TypeError, &wirepb.Error{Code: uint32(re.Code), Message: re.Message, Handle: re.Handle})
}

func (s *session) handshake(ctx context.Context, r *wire.Reader) error {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.HandshakeTimeout))
	if ctx.Err() != nil {
		return ctx.Err() // stopReading may have run before the deadline was set
	}
	if err := r.ReadPreface(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	f, err := r.Next()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if f.Type != wire.TypeHello {
		return s.refuse(wire.CodeProtocol, 0, "expected hello, got %s", f.Type)
	}
	var h wirepb.Hello
	if err := wire.Decode(f, &h); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	s.log = s.log.With("claimed", h.Collector)
	if h.MinVersion > wire.Version || h.MaxVersion < wire.Version {
		return s.refuse(wire.CodeVersion, 0, "no common version: collector speaks %d..%d, processor %d", h.MinVersion, h.MaxVersion, wire.Version)
	}
	if !s.p.checkToken(h.Token) {
		return s.refuse(wire.CodeAuth, 0, "wrong or missing token")
	}
	s.tokenOK.Store(true) // handshake eviction spares it while silent ones are left
	if err := checkCollectorName(h.Collector); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	if s.p.cfg.BindNameToCert {
		if err := certAllows(s.conn, h.Collector); err != nil {
			return s.refuse(wire.CodeAuth, 0, "%v", err)
		}
	}
	if err := s.checkIdentityKey(&h); err != nil {
		return err
	}
	var challenge []byte
	if s.p.pins != nil {
		if challenge, err = identity.NewChallenge(); err != nil {
			return s.refuse(wire.CodeStorage, 0, "%v", err)
		}
	}
	var codec string
	for _, c := range h.Compression {
		if c == wire.CompressionZstd && s.p.zstd != nil {
			codec, s.zstd = c, true
			break
		}
	}
	s.queue(wire.TypeWelcome, &wirepb.Welcome{
		Version:       wire.Version,
		Compression:   codec,
		MaxFrameBytes: wire.MaxFrameBytes,
		MaxStreams:    uint32(s.p.cfg.MaxStreamsPerConn),
		Processor:     s.p.cfg.Name,
		Challenge:     challenge,
	})
	if challenge != nil {
		// The name is the collector's only once it proved it (§3, §12).
		if err := s.prove(r, &h, challenge); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.collector, s.since = h.Collector, time.Now()
	s.mu.Unlock()
	return nil
}

func checkCollectorName(n string) error { return identity.CheckName(n) }

func (s *session) readLoop(ctx context.Context, r *wire.Reader) error {
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.IdleTimeout))
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

func (s *session) open(f wire.Frame) error {
	var m wirepb.Open
	if err := wire.Decode(f, &m); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	if m.Handle == 0 {
		return s.refuse(wire.CodeProtocol, 0, "stream handle 0 is reserved")
	}
	if _, dup := s.handles[m.Handle]; dup {
		return s.refuse(wire.CodeProtocol, m.Handle, "stream handle %d already open", m.Handle)
	}
	if len(s.handles) >= s.p.cfg.MaxStreamsPerConn {
		return s.refuse(wire.CodeLimit, m.Handle, "more than %d streams on one connection", s.p.cfg.MaxStreamsPerConn)
	}
	id, err := stream.ParseID(m.StreamId)
	if err != nil {
		return s.refuse(wire.CodeProtocol, m.Handle, "%v", err)
	}
	name, err := relpath.Clean(m.Name)
	if err != nil {
		return s.refuse(wire.CodeName, m.Handle, "%v", err)
	}
	key := stream.Key{Collector: s.collector, ID: id}
	b := &binding{handle: m.Handle}
	offset := uint64(0)
	if s.p.dir != nil {
		st, off, _, err := s.p.dir.Attach(key, name, m.Acked, s)
		if err != nil {
			return s.refuse(wire.CodeStorage, m.Handle, "%v", err)
		}
		b.file, offset = st, off
	}
	if s.p.kafka != nil {
		st, off, _, err := s.p.kafka.Attach(key, name, m.Acked, s)
		if err != nil {
			if b.file != nil {
				s.p.dir.Detach(b.file, s)
			}
			code := wire.CodeStorage
			if errors.Is(err, kafka.ErrName) {
				code = wire.CodeName
			}
			return s.refuse(code, m.Handle, "%v", err)
		}
		if b.file == nil || off < offset {
			offset = off // resume where the output that is behind needs it
		}
		b.kafka = st
	}
	s.handles[m.Handle] = b
	s.streams.Store(int64(len(s.handles)))
	// Register the handle, read the committed offsets and queue Opened
	// under one lock: an ack from a commit that ends meanwhile either is in
	// Opened.committed or is queued after Opened.
	s.mu.Lock()
	if b.file != nil {
		s.byFile[b.file] = b
		b.fileCommitted = b.file.Committed()
	}
	if b.kafka != nil {
		s.byKafka[b.kafka] = b
		b.kafkaCommitted = b.kafka.Committed()
	}
	b.sent = b.committed()
	err = s.queueLocked(wire.TypeOpened, &wirepb.Opened{Handle: m.Handle, Offset: offset, Committed: b.sent})
	s.mu.Unlock()
	if err != nil {
		return s.refuse(wire.CodeLimit, m.Handle, "%v", err)
	}
	s.notify()
	s.log.Debug("stream opened", "stream", key, "name", name, "offset", offset)
	return nil
}

func (s *session) data(f wire.Frame) error {
	d, err := wire.ParseData(f.Body)
	if err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	b := s.handles[d.Handle]
	if b == nil {
		return s.refuse(wire.CodeProtocol, d.Handle, "data for unknown stream handle %d", d.Handle)
	}
	if f.Type == wire.TypeDataZstd {
		if !s.zstd {
			return s.refuse(wire.CodeProtocol, d.Handle, "compressed data without negotiated compression")
		}
		buf := s.p.zbufs.Get().(*[]byte)
		defer s.p.zbufs.Put(buf)
		if d.Payload, err = s.p.zstd.Decode(*buf, d.Payload); err != nil {
			return s.refuse(wire.CodeProtocol, d.Handle, "%v", err)
		}
	}
	if err := wire.CheckLines(d.Payload); err != nil {
		return s.refuse(wire.CodeProtocol, d.Handle, "%v", err)
	}
	err = s.append(b, d)
	switch {
	case err == nil:
		lines := bytes.Count(d.Payload, newline)
		s.bytes.Add(uint64(len(d.Payload)))
		s.lines.Add(uint64(lines))
		s.p.total.bytes.Add(uint64(len(d.Payload)))
		s.p.total.lines.Add(uint64(lines))
		s.p.m.wrote(len(d.Payload), lines)
		s.p.appended()
		return nil
	case errors.Is(err, target.ErrNotOwner), errors.Is(err, kafka.ErrNotOwner):
		return s.refuse(wire.CodeBusy, d.Handle, "%v", err)
	case errors.Is(err, target.ErrOffset), errors.Is(err, kafka.ErrOffset):
		return s.refuse(wire.CodeOffset, d.Handle, "%v", err)
	case errors.Is(err, target.ErrName):
		return s.refuse(wire.CodeName, d.Handle, "%v", err)
	default:
		return s.refuse(wire.CodeStorage, d.Handle, "%v", err)
	}
}

// append appends the data to each output. Data must start at the least of
// the outputs' offsets (where Opened resumed); an output that is ahead
// takes only what it lacks. Other data goes to each output as it is, which
// refuses it (busy before offset).
func (s *session) append(b *binding, d wire.Data) error {
	switch {
	case b.kafka == nil:
		return b.file.Append(s.p.dir, s, d.Offset, d.End, d.Payload)
	case b.file == nil:
		return b.kafka.Append(s.p.kafka, s, d.Offset, d.End, d.Payload)
	}
	fileAt, kafkaAt := b.file.Offset(), b.kafka.Offset()
	lo := min(fileAt, kafkaAt)
	if from, p, ok := skip(fileAt, lo, d); ok {
		if err := b.file.Append(s.p.dir, s, from, d.End, p); err != nil {
			return err
		}
	}
	if from, p, ok := skip(kafkaAt, lo, d); ok {
		return b.kafka.Append(s.p.kafka, s, from, d.End, p)
	}
	return nil
}

// skip returns what of d an output at have still needs, and its offset,
// when d starts at lo, the least offset of the outputs: after a fault one
// output may already hold the start of a frame, or all of it. Payload bytes
// are source bytes from d.Offset on (PROTOCOL §5) and outputs stop at frame
// ends, which are line ends, so the cut is a line boundary in practice; if
// not (an over-long line split differently when resent) the rest is written
// anyway and becomes a split line. A payload too short for the cut (only a
// broken collector sends one) is skipped, and its next frame refused.
func skip(have, lo uint64, d wire.Data) (uint64, []byte, bool) {
	switch {
	case d.Offset != lo || have <= d.Offset:
		return d.Offset, d.Payload, true
	case have >= d.End, have-d.Offset > uint64(len(d.Payload)):
		return 0, nil, false
	}
	return have, d.Payload[have-d.Offset:], true
}

func (s *session) closeStream(f wire.Frame) error {
	var m wirepb.Close
	if err := wire.Decode(f, &m); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	b := s.handles[m.Handle]
	if b == nil {
		return nil
	}
	delete(s.handles, m.Handle)
	s.streams.Store(int64(len(s.handles)))
	s.mu.Lock()
	delete(s.byFile, b.file)
	delete(s.byKafka, b.kafka)
	delete(s.acks, m.Handle)
	s.mu.Unlock()
	s.release(b, m.Done)
	return nil
}

var newline = []byte{'\n'}

func (s *session) status() CollectorStatus {
	s.mu.Lock()
	name, since := s.collector, s.since
	s.mu.Unlock()
	return CollectorStatus{
		Name: name, Peer: s.conn.RemoteAddr().String(), Since: since, Streams: int(s.streams.Load()),
		CollectorCounters: CollectorCounters{Bytes: s.bytes.Load(), Lines: s.lines.Load()},
	}
}

// MaxQueuedBytes bounds the control frames (Welcome, Opened) queued for
// one collector and not yet taken by the writer: a collector that sends
// Opens and does not read its answers is refused with limit past it
// (PROTOCOL.md §6). A well-behaved collector, with at most 256 Opens
// awaiting Opened, queues a few KiB. Error frames, the last of a session,
// go past it; Pongs coalesce into one (pong), Acks into one per stream.
const MaxQueuedBytes = 64 << 10

// errQueueFull is the reason a session is refused past MaxQueuedBytes.
var errQueueFull = fmt.Errorf("more than %d bytes of frames queued for a collector that does not read them", MaxQueuedBytes)

// queue appends a control frame for the writer; see queueLocked.
func (s *session) queue(t wire.Type, m proto.Message) error {
	s.mu.Lock()
	err := s.queueLocked(t, m)
	s.mu.Unlock()
	s.notify()
	return err
}

// queueLocked appends a control frame for the writer, or returns
// errQueueFull and queues nothing when MaxQueuedBytes would be passed.
func (s *session) queueLocked(t wire.Type, m proto.Message) error {
	if s.closing {
		return nil
	}
	n := len(s.out)
	var err error
	if s.out, err = wire.AppendControl(s.out, t, m); err != nil {
		s.log.Error("cannot encode frame", "err", err)
		return nil
	}
	if t != wire.TypeError && len(s.out) > MaxQueuedBytes {
		s.out = s.out[:n]
		return errQueueFull
	}
	return nil
}

// queuePong answers a Ping; Pongs not yet written coalesce into one, so a
// collector that pings and never reads queues nothing more.
func (s *session) queuePong() {
	s.mu.Lock()
	s.pong = !s.closing
	s.mu.Unlock()
	s.notify()
}

func (s *session) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queueFileAck records what the target dir committed of a stream.
func (s *session) queueFileAck(st *target.Stream, offset uint64) {
	s.mu.Lock()
	b := s.byFile[st]
	if b != nil {
		b.fileCommitted = max(b.fileCommitted, offset)
	}
	s.ackLocked(b)
}

// queueKafkaAck records what Kafka committed of a stream.
func (s *session) queueKafkaAck(st *kafka.Stream, offset uint64) {
	s.mu.Lock()
	b := s.byKafka[st]
	if b != nil {
		b.kafkaCommitted = max(b.kafkaCommitted, offset)
	}
	s.ackLocked(b)
}

// ackLocked queues an ack for the writer when what every output committed
// grew, and unlocks s.mu.
func (s *session) ackLocked(b *binding) {
	send := b != nil && !s.closing && b.committed() > b.sent
	if send {
		b.sent = b.committed()
		s.acks[b.handle] = b.sent
	}
	s.mu.Unlock()
	if send {
		s.notify()
	}
}

// finish lets the writer send what is queued and exit.
func (s *session) finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.notify()
}

// writeLoop sends queued frames; acks of one commit go out in one frame.
func (s *session) writeLoop() {
	defer close(s.done)
	var buf []byte
	for range s.wake {
		s.mu.Lock()
		buf = append(buf[:0], s.out...)
		s.out = s.out[:0]
		if s.pong {
			buf, _ = wire.AppendControl(buf, wire.TypePong, nil) // an empty body cannot fail
			s.pong = false
		}
		buf = s.appendAcksLocked(buf)
		closing := s.closing
		s.mu.Unlock()
		if len(buf) > 0 {
			timeout := s.p.cfg.WriteTimeout
			if closing {
				timeout = min(timeout, closingWriteTimeout)
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := s.conn.Write(buf); err != nil {
				_ = s.conn.Close() // the reader notices and ends the session
				s.drain()
				return
			}
		}
		if closing {
			return
		}
	}
}

// maxAcksPerFrame keeps an Ack frame well under wire.MaxControlBytes (a
// StreamAck takes at most 18 bytes).
const maxAcksPerFrame = 2048

// closingWriteTimeout bounds the last writes of a stopping processor.
const closingWriteTimeout = 2 * time.Second

// lingeringClose closes the connection once the writer has sent its last
// frames, without losing them: a socket closed with unread input sends a
// reset, and a collector that gets it may never read the last Acks or the
// Error before it (its kernel drops them, or its failed write closes the
// connection first). It would then resend what was committed here; with
// several processors, to another one, where it would be written twice. So
// it half-closes, discards what the collector still sends until it closes
// too (it does on EOF) or Config.LingerTimeout passes, and only then closes.
func (s *session) lingeringClose() {
	defer s.conn.Close()
	if s.collector == "" {
		// Refused in its handshake (set by the reader, this goroutine): no
		// acks are owed, the peer has sent nothing we did not read, and a
		// lingering socket would keep its connection slot for nothing.
		return
	}
	type closeWriter interface{ CloseWrite() error }
	cw, ok := s.conn.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.LingerTimeout))
	_, _ = io.Copy(io.Discard, s.conn) // until EOF, an error or the deadline
}

// appendAcksLocked encodes the pending acks, in as many frames as needed.
func (s *session) appendAcksLocked(buf []byte) []byte {
	m := &wirepb.Ack{}
	flush := func() {
		var err error
		if buf, err = wire.AppendControl(buf, wire.TypeAck, m); err != nil {
			panic(err) // maxAcksPerFrame keeps the frame small: a broken invariant
		}
		m.Streams = m.Streams[:0]
	}
	for h, off := range s.acks {
		m.Streams = append(m.Streams, &wirepb.StreamAck{Handle: h, Offset: off})
		if len(m.Streams) == maxAcksPerFrame {
			flush()
		}
	}
	if len(m.Streams) > 0 {
		flush()
	}
	clear(s.acks)
	return buf
}

// drain discards frames queued after a write failure until finish.
func (s *session) drain() {
	for range s.wake {
		s.mu.Lock()
		s.out, s.pong = s.out[:0], false
		clear(s.acks)
		closing := s.closing
		s.mu.Unlock()
		if closing {
			return
		}
	}
}

// certAllows checks that the collector's TLS client certificate names it.
func certAllows(conn net.Conn, name string) error {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return errors.New("collector name binding needs a TLS connection")
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return errors.New("no client certificate")
	}
	leaf := certs[0]
	if leaf.Subject.CommonName == name || slices.Contains(leaf.DNSNames, name) {
		return nil
	}
	return fmt.Errorf("collector name %q is not in its certificate (CN %q, DNS %v)", name, leaf.Subject.CommonName, leaf.DNSNames)
}

// MinFrameRate is the slowest a collector may send a frame once it has
// started it, in bytes per second (PROTOCOL.md §6): a frame whose first
// byte arrived must be whole within Config.FrameTimeout plus its size at
// this rate (10 s + 64 s for the largest data frame, by default). So a
// peer trickling bytes holds a frame's buffer only as long as it would
// take at this rate, and not the idle timeout per frame.
const MinFrameRate = 64 << 10

// paceFrames bounds each frame's time from its first byte (MinFrameRate);
// the time to that byte is the idle timeout set by readLoop.
func (s *session) paceFrames(ctx context.Context, r *wire.Reader) {
	var start time.Time
	r.OnFrame(func(bodyBytes int) {
		if bodyBytes < 0 {
			start, bodyBytes = time.Now(), 0
		}
		d := s.p.cfg.FrameTimeout + time.Duration(bodyBytes)*time.Second/MinFrameRate
		_ = s.conn.SetReadDeadline(start.Add(d))
		if ctx.Err() != nil {
			_ = s.conn.SetReadDeadline(time.Now()) // stopReading may have run before
		}
	})
}
