//go:build unix

package e2e_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dialTimeout bounds the proxy's connection to its upstream.
const dialTimeout = 5 * time.Second

// A Proxy forwards loopback TCP connections to an upstream address and can
// cut them all at once, as a network failure would.
type Proxy struct {
	Addr string // where to connect, host:port

	upstream string
	ln       net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // both ends of every open pair
	closed bool
	parted bool // Partition: new connections are closed at once
	pairs  int  // connections accepted and forwarded

	// With FlipEvery, about one bit in every so many bytes is flipped on
	// the way to the upstream (up) and back (down): a link that TCP's
	// checksum does not protect well enough.
	flipUp, flipDown atomic.Int64
	flips            atomic.Int64 // bits flipped so far
}

// FlipEvery flips one random bit, on average, in every up bytes sent to
// the upstream and every down bytes sent back; 0 turns a direction off.
func (p *Proxy) FlipEvery(up, down int64) {
	p.flipUp.Store(up)
	p.flipDown.Store(down)
}

// Flips returns how many bits the proxy flipped.
func (p *Proxy) Flips() int64 { return p.flips.Load() }

// copyFlipping copies src to dst, flipping bits at the rate *every says.
func (p *Proxy) copyFlipping(dst, src net.Conn, every *atomic.Int64) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if e := every.Load(); e > 0 {
				// One flip per e bytes on average, at uniform places.
				for i := range buf[:n] {
					if rnd.Int64N(e) == 0 {
						buf[i] ^= 1 << rnd.IntN(8)
						p.flips.Add(1)
					}
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// newProxy starts a proxy to upstream on a free loopback port; it is
// closed when the test ends.
func newProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Accept errors on loopback are transient (EMFILE); go on
				// after a pause rather than spin.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// forward dials upstream for client c and copies both ways until either
// side closes or CutAll cuts the pair.
func (p *Proxy) forward(c net.Conn) {
	u, err := net.DialTimeout("tcp", p.upstream, dialTimeout)
	if err != nil {
		_ = c.Close() // the client sees the upstream failure as a reset
		return
	}
	if !p.track(c, u) {
		return
	}
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn, flip *atomic.Int64) {
		if flip.Load() > 0 {
			p.copyFlipping(dst, src, flip)
		} else {
			_, _ = io.Copy(dst, src)
		}
		p.cut(c, u) // any end of a copy ends the pair
	}
	wg.Go(func() { cp(u, c, &p.flipUp) })
	cp(c, u, &p.flipDown)
	wg.Wait()
}

// track registers a new pair, or closes it if the proxy is closed.
func (p *Proxy) track(c, u net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.parted {
		_, _ = c.Close(), u.Close()
		return false
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.pairs++
	return true
}

func (p *Proxy) cut(c, u net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = c.Close(), u.Close() // closing twice only returns an error
	delete(p.conns, c)
	delete(p.conns, u)
}

// CutAll closes every open connection pair and returns how many there
// were. The proxy keeps accepting new connections.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for c := range p.conns {
		_ = c.Close() // the copy goroutines see the error and finish
	}
	clear(p.conns)
	return n
}

// Partition cuts every pair and refuses new connections until Heal, as a
// network partition would: the upstream stays up but unreachable.
func (p *Proxy) Partition() {
	p.mu.Lock()
	p.parted = true
	p.mu.Unlock()
	p.CutAll()
}

// Heal ends a Partition.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.parted = false
	p.mu.Unlock()
}

// Pairs returns how many connections the proxy has forwarded so far.
func (p *Proxy) Pairs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pairs
}

func (p *Proxy) close() {
	_ = p.ln.Close() // stops accept
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CutAll()
	p.wg.Wait()
}
