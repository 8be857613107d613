package peer

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// A Processor is a fake processor on 127.0.0.1:0: it accepts connections,
// reads the preface and Hello, sends a Welcome with a challenge and checks
// the Proof (PROTOCOL.md §3), then hands the connection to a test's
// handler. Everything it started ends with the test.
type Processor struct {
	Addr string

	t     testing.TB
	opts  Options
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// Options configure a fake processor.
type Options struct {
	// WriteTimeout bounds every write.
	WriteTimeout time.Duration
	// CRC32C: answer a Hello that offers crc32c with it in Welcome; the
	// connection is then sealed (Conn.Sealed) from the Proof on, as a
	// processor that speaks PROTOCOL.md §13. Without it the fake is an
	// old processor: Welcome lists no feature and frames are unsealed.
	CRC32C bool
	// Zstd: choose zstd compression when Hello offers it (Conn.Zstd);
	// ParseData decodes DataZstd frames.
	Zstd bool
}

// Listen starts a fake processor whose handler gets the n-th handshaken
// connection (from 0); the connection is closed when handle returns.
// Writes are bounded by writeTimeout. It is an old processor: it does not
// negotiate crc32c (ListenWith does).
func Listen(t testing.TB, writeTimeout time.Duration, handle func(n int, c *Conn)) *Processor {
	t.Helper()
	return ListenWith(t, Options{WriteTimeout: writeTimeout}, handle)
}

// ListenWith is Listen with options.
func ListenWith(t testing.TB, opts Options, handle func(n int, c *Conn)) *Processor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{Addr: ln.Addr().String(), t: t, ln: ln, opts: opts}
	p.wg.Go(func() {
		for n := 0; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, conn)
			p.mu.Unlock()
			p.wg.Go(func() { p.serve(n, conn, handle) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *Processor) serve(n int, conn net.Conn, handle func(n int, c *Conn)) {
	defer conn.Close()
	c := NewConn(conn)
	c.WriteTimeout = p.opts.WriteTimeout
	defer c.R.Close()
	if err := c.R.ReadPreface(); err != nil {
		return
	}
	fr, err := c.R.Next()
	if err != nil || fr.Type != wire.TypeHello {
		return
	}
	c.Hello = &wirepb.Hello{}
	if wire.Decode(fr, c.Hello) != nil {
		return
	}
	if !p.challenge(c) {
		return
	}
	handle(n, c)
}

// challenge sends Welcome with a challenge and checks the collector's
// Proof, as a processor does (PROTOCOL.md §3).
func (p *Processor) challenge(c *Conn) bool {
	ch, err := identity.NewChallenge()
	if err != nil {
		p.t.Error(err)
		return false
	}
	w := &wirepb.Welcome{Version: 1, MaxFrameBytes: wire.MaxFrameBytes, MaxStreams: 1000, Processor: "fake", Challenge: ch}
	sealed := p.opts.CRC32C && slices.Contains(c.Hello.Features, wire.FeatureCRC32C)
	if sealed {
		w.Features = []string{wire.FeatureCRC32C}
	}
	if p.opts.Zstd && slices.Contains(c.Hello.Compression, wire.CompressionZstd) {
		w.Compression = wire.CompressionZstd
	}
	if c.Send(wire.TypeWelcome, w) != nil {
		return false
	}
	if sealed {
		c.seal()
	}
	fr, err := c.ServerNext()
	if err != nil {
		return false
	}
	var pr wirepb.Proof
	if fr.Type != wire.TypeProof || wire.Decode(fr, &pr) != nil {
		p.t.Errorf("fake processor: got %s after Welcome, want a proof", fr.Type)
		return false
	}
	if !identity.Verify(c.Hello.IdentityKey, ch, nil, c.Hello.Collector, pr.Signature) {
		p.t.Errorf("fake processor: proof of %q does not verify", c.Hello.Collector)
		return false
	}
	return true
}

// ServerNext reads the next frame as a handler does: EOF and a closed
// connection (the test is over) both read as io.EOF.
func (c *Conn) ServerNext() (wire.Frame, error) {
	f, err := c.Next()
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
		return f, io.EOF
	}
	return f, err
}
