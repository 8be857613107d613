package processor

import (
	"sync"
	"sync/atomic"

	"thunder/internal/relpath"
	"thunder/internal/stream"
)

// Handshaking returns how many connections hold a handshake slot.
func Handshaking(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hs.n
}

// Waiting returns how many connections wait for a handshake slot.
func Waiting(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting.n
}

// QueuedBytes returns the most bytes of frames any session has queued for
// its writer.
func QueuedBytes(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	most := 0
	for s := range p.sessions {
		s.mu.Lock()
		n := len(s.out)
		if s.pong {
			n += 5 // wire.HeaderBytes
		}
		s.mu.Unlock()
		most = max(most, n)
	}
	return most
}

// Stall makes p's outputs hold every Append until release is called, as
// an output applying backpressure does (Kafka's buffer full, a slow disk).
// Call it before Serve. attached and appending count the Attach and
// Append calls so far.
func Stall(p *Processor) (attached, appending func() int64, release func()) {
	g := &stallGate{release: make(chan struct{})}
	for i, out := range p.outs {
		p.outs[i] = stallOutput{out, g}
	}
	var once sync.Once
	return g.attached.Load, g.appending.Load, func() { once.Do(func() { close(g.release) }) }
}

type stallGate struct {
	attached, appending atomic.Int64
	release             chan struct{}
}

type stallOutput struct {
	output
	g *stallGate
}

func (o stallOutput) Attach(k stream.Key, n relpath.Name, acked stream.Mark, w stream.Owner) (outStream, stream.Mark, error) {
	st, at, err := o.output.Attach(k, n, acked, w)
	if err == nil {
		o.g.attached.Add(1)
		st = stallStream{st, o.g}
	}
	return st, at, err
}

type stallStream struct {
	outStream
	g *stallGate
}

func (s stallStream) Append(w stream.Owner, c stream.Chunk) error {
	s.g.appending.Add(1)
	<-s.g.release
	return s.outStream.Append(w, c)
}

// ConnBudget returns how many connections p accepts before it waits for
// descriptors (0: no limit).
func ConnBudget(p *Processor) int { return p.fdBudget }

// SetConnBudget sets how many connections p accepts before it waits for
// descriptors, as a lower descriptor limit would.
func SetConnBudget(p *Processor, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fdBudget = n
}
