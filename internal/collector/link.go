package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"thunder/internal/backoff"
	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// link is one connection to a processor. The Run loop is the only sender on
// out and closes it when it is done with the link; it alone uses the
// fields below the line.
type link struct {
	idx      int    // index of addr in Config.Targets
	compress string // negotiated codec, "" for none
	sealed   bool   // frames carry CRC-32C trailers both ways (PROTOCOL.md §13)
	addr     string
	conn     net.Conn
	out      chan frame
	dead     chan struct{} // closed when the reader exits
	since    time.Time

	last       time.Time // last frame queued, for heartbeats
	handles    map[uint32]*source
	inflight   int64 // bytes sent on this link and not yet acknowledged
	nextHandle uint32
	opening    int           // Opens awaiting Opened
	zstd       *wire.Encoder // set while the link compresses
}

// frame is an encoded frame; buf, when set, goes back to the pool once sent.
type frame struct {
	b   []byte
	buf *[]byte
}

type msgKind int

const (
	msgUp msgKind = iota
	msgOpened
	msgAck
	msgDown
	msgUnreachable // a connection attempt to Targets[idx] failed
)

// linkMsg is what link goroutines tell the Run loop.
type linkMsg struct {
	kind      msgKind
	l         *link
	idx       int // msgUnreachable
	handle    uint32
	offset    uint64
	committed uint64
	// digest and committedDigest: the processor's digests at offset and
	// committed (msgOpened, §13).
	digest, committedDigest *uint32 // nil: the processor does not know it
	acks                    []*wirepb.StreamAck
	err                     error
}

// maxControlQueue bounds control frames queued on a link besides data.
const maxControlQueue = 1024

// dialLoop keeps the link to Targets[idx] up: it connects with capped
// exponential backoff and jitter, hands the link to the Run loop and waits
// for it to die.
func (c *Collector) dialLoop(ctx context.Context, idx int) {
	var failures int
	var lastErr string
	addr := c.cfg.Targets[idx]
	for ctx.Err() == nil {
		l, err := c.connect(ctx, idx, addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 {
				select {
				case c.inbox <- linkMsg{kind: msgUnreachable, idx: idx}:
				case <-ctx.Done():
					return
				}
			}
			refused := c.permanent(addr, err)
			if refused != nil {
				err = refused
			}
			if msg := err.Error(); msg != lastErr {
				if refused != nil {
					c.log.Error("cannot connect to processor: it refuses this collector; change what err says (retrying with backoff up to "+refusedBackoffMax.String()+")", "addr", addr, "err", err)
				} else {
					c.log.Warn("cannot connect to processor; retrying", "addr", addr, "err", err)
				}
				lastErr = msg
				c.statsAdd(func(st *Stats) { st.LastError = msg })
			} else if refused != nil && failures%10 == 0 {
				c.log.Error("processor still refuses this collector", "addr", addr, "attempts", failures, "err", err)
			}
			if refused != nil {
				c.refusedSleep(ctx, failures)
			} else {
				c.sleep(ctx, failures)
			}
			continue
		}
		if failures > 0 || lastErr != "" {
			c.log.Info("connected to processor", "addr", addr, "attempts", failures+1)
		} else {
			c.log.Info("connected to processor", "addr", addr)
		}
		failures, lastErr = 0, ""
		if !c.run(ctx, l) {
			return
		}
		if time.Since(l.since) < time.Second {
			failures++ // a link that dies at once backs off too
		}
		c.sleep(ctx, failures)
	}
}

// run hands l to the Run loop, runs its reader and writer and waits for
// both to exit: the reader exits when the Run loop drops the link (closing
// its connection), the writer when the reader did. A link handed over as
// Run stopped, which the Run loop never took, is closed here. It reports
// whether to connect again.
func (c *Collector) run(ctx context.Context, l *link) bool {
	select {
	case c.inbox <- linkMsg{kind: msgUp, l: l}:
	case <-ctx.Done():
		_ = l.conn.Close() // never handed over
		return false
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.readLoop(l) })
	wg.Go(func() { c.writeLoop(l) })
	select {
	case <-l.dead:
	case <-c.stopped:
		_ = l.conn.Close()
	}
	wg.Wait()
	return ctx.Err() == nil
}

// sleep waits the backoff for n consecutive failures: n² × BackoffMin up to
// BackoffMax, with jitter so collectors do not reconnect in step.
func (c *Collector) sleep(ctx context.Context, n int) {
	backoff.Policy{Min: c.cfg.BackoffMin, Max: c.cfg.BackoffMax, Jitter: true}.Wait(ctx, n)
}

// connect dials addr and runs the handshake (PROTOCOL.md §3).
func (c *Collector) connect(ctx context.Context, idx int, addr string) (*link, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dial := c.cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true) // frames are written whole
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A stop (SIGTERM) during the handshake ends it at once, not at the
	// deadline: a processor slow to answer must not hold a shutdown 10 s.
	stopWait := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stopWait()
	compress, sealed, err := c.handshake(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	now := time.Now()
	return &link{
		idx: idx, addr: addr, conn: conn, since: now, last: now, compress: compress, sealed: sealed,
		out:     make(chan frame, c.cfg.Buffers+maxControlQueue),
		dead:    make(chan struct{}),
		handles: make(map[uint32]*source),
	}, nil
}

// handshake sends Hello and takes the processor's Welcome, proving the
// collector's name if asked to. It returns the codec the processor chose
// and whether frames are sealed with a CRC-32C trailer from now on (§13):
// the collector always offers it, and an old processor does not list it.
func (c *Collector) handshake(conn net.Conn) (compress string, sealed bool, err error) {
	offer := !c.cfg.NoFrameChecksums
	var features []string
	if offer {
		features = []string{wire.FeatureCRC32C}
	}
	b := []byte(wire.Preface)
	b, err = wire.AppendControl(b, wire.TypeHello, &wirepb.Hello{
		MinVersion: wire.Version, MaxVersion: wire.Version,
		Collector: c.cfg.Name, Token: c.cfg.Token, Software: "thunder",
		Compression: compressionOffer(c.cfg.Compression),
		IdentityKey: identity.Public(c.key),
		Features:    features,
	})
	if err == nil && offer {
		b = wire.SealHello(b, len(wire.Preface)) // a damaged Hello must not turn checksums off
	}
	if err == nil {
		_, err = conn.Write(b)
	}
	if err != nil {
		return "", false, fmt.Errorf("handshake: %w", err)
	}
	f, err := wire.NewReader(conn).Next()
	if err != nil {
		return "", false, fmt.Errorf("handshake: %w", err)
	}
	if f.Type == wire.TypeError {
		return "", false, remoteError(f)
	}
	if f.Type != wire.TypeWelcome {
		return "", false, fmt.Errorf("handshake: unexpected %s frame", f.Type)
	}
	var w wirepb.Welcome
	if err := wire.Decode(f, &w); err != nil {
		return "", false, err
	}
	if w.Version != wire.Version {
		return "", false, fmt.Errorf("handshake: processor chose version %d", w.Version)
	}
	if w.Compression != "" && w.Compression != c.cfg.Compression {
		return "", false, fmt.Errorf("handshake: processor chose compression %q, not offered", w.Compression)
	}
	sealed = offer && slices.Contains(w.Features, wire.FeatureCRC32C)
	if err := c.prove(conn, w.Challenge, sealed); err != nil {
		return "", false, fmt.Errorf("handshake: %w", err)
	}
	return w.Compression, sealed, nil
}

// seal appends the trailer to b, one control frame from AppendControl, when
// frames are sealed (§13).
func seal(b []byte, sealed bool) []byte {
	if !sealed {
		return b
	}
	return wire.Seal(b, 0)
}

// prove answers a Welcome's challenge with a Proof of the collector's name
// (§3), before any Open. A processor that checks no identity sends none.
// A refusal of the proof comes as an Error frame on the link.
func (c *Collector) prove(conn net.Conn, challenge []byte, sealed bool) error {
	if len(challenge) == 0 {
		return nil
	}
	if len(challenge) != identity.ChallengeBytes {
		return fmt.Errorf("challenge of %d bytes, want %d", len(challenge), identity.ChallengeBytes)
	}
	binding, err := identity.Binding(conn)
	if err != nil {
		return err
	}
	b, err := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(c.key, challenge, binding, c.cfg.Name)})
	if err == nil {
		_, err = conn.Write(seal(b, sealed))
	}
	return err
}

func remoteError(f wire.Frame) error {
	var m wirepb.Error
	if err := wire.Decode(f, &m); err != nil {
		return err
	}
	return &wire.RemoteError{Code: wire.Code(m.Code), Message: m.Message, Handle: m.Handle}
}

// readLoop turns the processor's frames into messages for the Run loop.
func (c *Collector) readLoop(l *link) {
	defer close(l.dead)
	r := wire.NewReader(l.conn)
	r.SetChecksums(l.sealed) // Next checks every control frame's trailer
	defer r.Close()
	err := func() error {
		for {
			_ = l.conn.SetReadDeadline(time.Now().Add(3 * c.cfg.PingInterval))
			f, err := r.Next()
			if err != nil {
				return err
			}
			var m linkMsg
			switch f.Type {
			case wire.TypeOpened:
				var o wirepb.Opened
				if err := wire.Decode(f, &o); err != nil {
					return err
				}
				m = linkMsg{kind: msgOpened, handle: o.Handle, offset: o.Offset, committed: o.Committed, digest: o.Digest, committedDigest: o.CommittedDigest}
			case wire.TypeAck:
				var a wirepb.Ack
				if err := wire.Decode(f, &a); err != nil {
					return err
				}
				m = linkMsg{kind: msgAck, acks: a.Streams}
			case wire.TypePong:
				continue
			case wire.TypeError:
				return remoteError(f)
			default:
				return fmt.Errorf("unexpected %s frame from processor", f.Type)
			}
			m.l = l
			select {
			case c.inbox <- m:
			case <-c.stopped:
				return nil
			}
		}
	}()
	_ = l.conn.Close() // the writer fails too and drains
	select {
	case c.inbox <- linkMsg{kind: msgDown, l: l, err: err}:
	case <-c.stopped:
	}
}

// writeLoop sends frames until the Run loop closes out, a write fails or
// the reader exits. Frames it leaves in out go back to the pool when the
// Run loop drops the link (dropLink).
func (c *Collector) writeLoop(l *link) {
	for {
		select {
		case f, ok := <-l.out:
			if !ok {
				return
			}
			_ = l.conn.SetWriteDeadline(time.Now().Add(3 * c.cfg.PingInterval))
			_, err := l.conn.Write(f.b)
			c.recycle(f)
			if err != nil {
				_ = l.conn.Close() // the reader reports the link down
				return
			}
		case <-l.dead:
			return
		}
	}
}

// recycle gives f's buffer, if pooled, back to the pool; it never blocks,
// as the pool holds every buffer.
func (c *Collector) recycle(f frame) {
	if f.buf != nil {
		c.pool <- f.buf
	}
}

// send queues a frame without blocking; false if the link's queue is full.
func (l *link) send(f frame) bool {
	select {
	case l.out <- f:
		l.last = time.Now()
		return true
	default:
		return false
	}
}

// isClosed reports errors that only mean the link went away.
func isClosed(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed)
}

func compressionOffer(codec string) []string {
	if codec == "" {
		return nil
	}
	return []string{codec}
}
