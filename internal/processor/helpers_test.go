package processor_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"thunder/internal/harness/peer"
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
	return mustServeWith(t, dir, mod, wrap, nil)
}

// mustServeWith is mustServeOn calling before (when set) on the processor
// before it serves.
func mustServeWith(t *testing.T, dir string, mod func(*processor.Config), wrap func(net.Listener) net.Listener, before func(*processor.Processor)) *server {
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
	if before != nil {
		before(p)
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

// client speaks the protocol by hand: a peer.Conn that fails the test.
type client struct {
	t    *testing.T
	pc   *peer.Conn
	conn net.Conn
	r    *wire.Reader
	// key proves the collector name (nil: testKey of the name in Hello);
	// noKey sends Hello without one.
	key   ed25519.PrivateKey
	noKey bool
}

// testKey is the identity key of a test collector called name: the same for
// every connection that claims name, as a real collector's is.
var testKey = peer.Key

// dataFrame returns a data frame (see peer.DataFrame).
var dataFrame = peer.DataFrame

// isReset reports a connection error other than a timeout.
var isReset = peer.IsReset

// peer returns the connection with the client's key settings.
func (c *client) peer() *peer.Conn {
	c.pc.Key, c.pc.NoKey = c.key, c.noKey
	return c.pc
}

// keyFor returns the key the client proves name with.
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
	pc, err := peer.Dial(addr, from, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &client{t: t, pc: pc, conn: pc.Conn, r: pc.R}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.pc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) control(t wire.Type, m proto.Message) {
	c.t.Helper()
	if err := c.pc.Send(t, m); err != nil {
		c.t.Fatalf("send %s: %v", t, err)
	}
}

// hello sends the preface and h, with the client's identity key unless h
// has one or c.noKey.
func (c *client) hello(h *wirepb.Hello) {
	c.t.Helper()
	if err := c.peer().SendHello(h); err != nil {
		c.t.Fatalf("send Hello: %v", err)
	}
}

// next reads a frame; the body is copied, so it stays valid.
func (c *client) next() (wire.Frame, error) { return c.pc.Next() }

func (c *client) mustNext(want wire.Type, m proto.Message) {
	c.t.Helper()
	if err := c.pc.Expect(want, m); err != nil {
		c.t.Fatal(err)
	}
}

// handshake sends a good Hello, reads the Welcome, answers its challenge
// and returns it. A refusal of the proof arrives at the next read.
func (c *client) handshake(name string, compression ...string) *wirepb.Welcome {
	c.t.Helper()
	w, err := c.peer().Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Software: "test", Compression: compression})
	if err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	return w
}

// prove answers w's challenge, if any, with a Proof for name (§3).
func (c *client) prove(w *wirepb.Welcome, name string) {
	c.t.Helper()
	if err := c.peer().Prove(w, name); err != nil {
		c.t.Fatalf("send Proof: %v", err)
	}
}

func (c *client) open(handle uint32, id []byte, name string, acked uint64) *wirepb.Opened {
	c.t.Helper()
	o, err := c.pc.Open(handle, id, name, acked)
	if err != nil {
		c.t.Fatal(err)
	}
	return o
}

func (c *client) data(handle uint32, offset uint64, payload string) uint64 {
	c.t.Helper()
	end, err := c.pc.Data(handle, offset, payload)
	if err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return end
}

// waitAck reads frames until an Ack says handle reached offset.
func (c *client) waitAck(handle uint32, offset uint64) {
	c.t.Helper()
	if err := c.pc.WaitAck(handle, offset); err != nil {
		c.t.Fatal(err)
	}
}

// expectError reads frames (skipping Acks) until an Error frame, checks its
// code, then expects the connection to be closed.
func (c *client) expectError(code wire.Code) *wirepb.Error {
	c.t.Helper()
	e, err := c.pc.ExpectError(code)
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}

// expectClosed expects the processor to close the connection, without any
// further frame.
func (c *client) expectClosed() {
	c.t.Helper()
	if err := c.pc.ExpectClosed(); err != nil {
		c.t.Fatal(err)
	}
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
