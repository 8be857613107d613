package processor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

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
	if err := s.welcome(r, &h, challenge); err != nil {
		return err
	}
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

// welcome chooses what the connection uses of what Hello offers (codec,
// checksums) and sends Welcome, the last frame without a checksum: from
// the next one on, both directions carry them when chosen (§13).
func (s *session) welcome(r *wire.Reader, h *wirepb.Hello, challenge []byte) error {
	var codec string
	for _, c := range h.Compression {
		if c == wire.CompressionZstd && s.p.zstd != nil {
			codec, s.zstd = c, true
			break
		}
	}
	sums := slices.Contains(h.Features, wire.FeatureCRC32C)
	if !sums {
		if s.p.cfg.RequireChecksums {
			return s.refuse(wire.CodeVersion, 0, "collector does not checksum its frames (protocol feature %s): upgrade it, or run the processor without --require-checksums", wire.FeatureCRC32C)
		}
		s.p.m.uncheckedConn()
		s.logAt(slog.LevelWarn, "collector does not checksum its frames: data damaged on the way would be written; upgrade it", "software", h.Software)
	}
	var features []string
	if sums {
		features = []string{wire.FeatureCRC32C}
	}
	s.mu.Lock()
	_ = s.queueLocked(wire.TypeWelcome, &wirepb.Welcome{
		Version:       wire.Version,
		Compression:   codec,
		MaxFrameBytes: wire.MaxFrameBytes,
		MaxStreams:    uint32(s.p.cfg.MaxStreamsPerConn),
		Processor:     s.p.cfg.Name,
		Challenge:     challenge,
		Features:      features,
	})
	s.sums = sums
	s.mu.Unlock()
	s.notify()
	r.SetChecksums(sums)
	return nil
}

func checkCollectorName(n string) error { return identity.CheckName(n) }

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
