package processor_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"thunder/internal/identity"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// waitTimeout bounds every wait; generous for a loaded 2-core machine
// running with -race.
const waitTimeout = 20 * time.Second

// server is a processor serving on 127.0.0.1:0 for one test.
type server struct {
	p      *processor.Processor
	addr   string
	dir    string
	cancel func() // cancels Serve's context
	stop   func() // cancels Serve, waits for it (it must return nil) and closes p; idempotent
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mustServe starts a processor on a fresh target dir (or dir, when set).
func mustServe(t *testing.T, dir string, mod func(*processor.Config)) *server {
	t.Helper()
	return mustServeOn(t, dir, mod, nil)
}

// mustServeOn is mustServe with the listener wrapped by wrap (when set).
func mustServeOn(t *testing.T, dir string, mod func(*processor.Config), wrap func(net.Listener) net.Listener) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := processor.DefaultConfig()
	cfg.Name = "test-processor"
	cfg.TargetDir = dir
	cfg.Logger = testLogger(t)
	if mod != nil {
		mod(&cfg)
	}
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatalf("processor.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	var stopped bool
	s := &server{p: p, addr: ln.Addr().String(), dir: dir, cancel: cancel}
	s.stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("Serve did not return within %v of cancel", waitTimeout)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// smallSendBuffers is a listener whose connections have a send buffer of
// a few KiB, so that what a test's peer does not read piles up in the
// processor rather than in the kernel (loopback buffers take megabytes).
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

func withSmallSendBuffers(ln net.Listener) net.Listener { return smallSendBuffers{ln} }

// client speaks the protocol by hand.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *wire.Reader
	// key proves the collector name (nil: testKey of the name in Hello);
	// noKey sends Hello without one.
	key   ed25519.PrivateKey
	noKey bool
}

// testKey is the identity key of a test collector called name: the same for
// every connection that claims name, as a real collector's is.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("thunder test collector " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func (c *client) keyFor(name string) ed25519.PrivateKey {
	if c.key != nil {
		return c.key
	}
	return testKey(name)
}

func mustDial(t *testing.T, addr string) *client {
	t.Helper()
	return mustDialFrom(t, addr, "")
}

// mustDialFrom dials addr from the loopback address from (e.g. 127.0.0.2:
// all of 127.0.0.0/8 is local on Linux), so that a test can play several
// peers; "" lets the system choose.
func mustDialFrom(t *testing.T, addr, from string) *client {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn, r: wire.NewReader(conn)}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) control(t wire.Type, m proto.Message) {
	c.t.Helper()
	b, err := wire.AppendControl(nil, t, m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

// hello sends the preface and h, with the client's identity key unless h
// has one or c.noKey.
func (c *client) hello(h *wirepb.Hello) {
	c.t.Helper()
	if h.IdentityKey == nil && !c.noKey {
		h.IdentityKey = identity.Public(c.keyFor(h.Collector))
	}
	b, err := wire.AppendControl([]byte(wire.Preface), wire.TypeHello, h)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

// next reads a frame; the body is copied, so it stays valid.
func (c *client) next() (wire.Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	f, err := c.r.Next()
	if err != nil {
		return f, err
	}
	f.Body = append([]byte(nil), f.Body...)
	return f, nil
}

func (c *client) mustNext(want wire.Type, m proto.Message) {
	c.t.Helper()
	f, err := c.next()
	if err != nil {
		c.t.Fatalf("reading %s: %v", want, err)
	}
	if f.Type != want {
		if f.Type == wire.TypeError {
			var e wirepb.Error
			_ = wire.Decode(f, &e)
			c.t.Fatalf("got error frame (code %s: %s), want %s", wire.Code(e.Code), e.Message, want)
		}
		c.t.Fatalf("got %s frame, want %s", f.Type, want)
	}
	if m != nil {
		if err := wire.Decode(f, m); err != nil {
			c.t.Fatal(err)
		}
	}
}

// handshake sends a good Hello, reads the Welcome, answers its challenge
// and returns it. A refusal of the proof arrives at the next read.
func (c *client) handshake(name string, compression ...string) *wirepb.Welcome {
	c.t.Helper()
	c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Software: "test", Compression: compression})
	var w wirepb.Welcome
	c.mustNext(wire.TypeWelcome, &w)
	c.prove(&w, name)
	return &w
}

// prove answers w's challenge, if any, with a Proof for name (§3).
func (c *client) prove(w *wirepb.Welcome, name string) {
	c.t.Helper()
	if len(w.Challenge) > 0 {
		c.control(wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(c.keyFor(name), w.Challenge, nil, name)})
	}
}

func (c *client) open(handle uint32, id []byte, name string, acked uint64) *wirepb.Opened {
	c.t.Helper()
	c.control(wire.TypeOpen, &wirepb.Open{Handle: handle, StreamId: id, Name: name, Acked: acked})
	var o wirepb.Opened
	c.mustNext(wire.TypeOpened, &o)
	if o.Handle != handle {
		c.t.Fatalf("Opened.handle = %d, want %d", o.Handle, handle)
	}
	return &o
}

func dataFrame(t wire.Type, handle uint32, offset, end uint64, payload []byte) []byte {
	b := make([]byte, wire.DataPrefixBytes+len(payload))
	wire.PutDataHeader(b, t, handle, offset, end, len(payload))
	copy(b[wire.DataPrefixBytes:], payload)
	return b
}

func (c *client) data(handle uint32, offset uint64, payload string) uint64 {
	c.t.Helper()
	end := offset + uint64(len(payload))
	c.write(dataFrame(wire.TypeData, handle, offset, end, []byte(payload)))
	return end
}

// waitAck reads frames until an Ack says handle reached offset.
func (c *client) waitAck(handle uint32, offset uint64) {
	c.t.Helper()
	for {
		var a wirepb.Ack
		c.mustNext(wire.TypeAck, &a)
		for _, sa := range a.Streams {
			if sa.Handle != handle {
				continue
			}
			if sa.Offset > offset {
				c.t.Fatalf("Ack for handle %d at %d, beyond what was sent (%d)", handle, sa.Offset, offset)
			}
			if sa.Offset == offset {
				return
			}
		}
	}
}

// expectError reads frames (skipping Acks) until an Error frame, checks its
// code, then expects the connection to be closed.
func (c *client) expectError(code wire.Code) *wirepb.Error {
	c.t.Helper()
	for {
		f, err := c.next()
		if err != nil {
			c.t.Fatalf("reading, want error frame %s: %v", code, err)
		}
		switch f.Type {
		case wire.TypeAck, wire.TypePong:
			continue
		case wire.TypeError:
		default:
			c.t.Fatalf("got %s frame, want error %s", f.Type, code)
		}
		var e wirepb.Error
		if err := wire.Decode(f, &e); err != nil {
			c.t.Fatal(err)
		}
		if wire.Code(e.Code) != code {
			c.t.Fatalf("error code = %s (%q), want %s", wire.Code(e.Code), e.Message, code)
		}
		c.expectClosed()
		return &e
	}
}

// expectClosed expects the processor to close the connection, without any
// further frame.
func (c *client) expectClosed() {
	c.t.Helper()
	f, err := c.next()
	switch {
	case err == nil:
		c.t.Fatalf("got %s frame, want the connection closed", f.Type)
	case errors.Is(err, io.EOF), isReset(err):
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("connection still open after %v", waitTimeout)
	default:
		c.t.Fatalf("read after error: %v, want EOF", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func newID(t *testing.T) []byte {
	t.Helper()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return id
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue gathers g and returns the value of the counter or gauge name
// whose labels include the given name/value pairs (0 when absent).
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
