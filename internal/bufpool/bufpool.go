// Package bufpool recycles byte buffers by size class, so that what a
// connection holds follows the frame it reads, not the largest frame any
// connection ever read.
//
// Its invariant: Get(n) returns a buffer of capacity at least n from the
// smallest class that holds n, at most twice n (or the pool's largest
// class); Put takes back only buffers of a class's exact capacity.
package bufpool

import (
	"math/bits"
	"sync"
)

// Pool holds buffers in classes of powers of two from its smallest size,
// and a last class of its largest size. It is safe for concurrent use.
type Pool struct {
	sizes []int
	pools []sync.Pool // pools[i] holds *[]byte of capacity sizes[i]
}

// New returns a Pool whose classes run from minBytes (rounded up to a power
// of two) by doubling to maxBytes; maxBytes is the last class.
func New(minBytes, maxBytes int) *Pool {
	p := &Pool{}
	for n := 1 << bits.Len(uint(max(minBytes, 1)-1)); n < maxBytes; n *= 2 {
		p.sizes = append(p.sizes, n)
	}
	p.sizes = append(p.sizes, maxBytes)
	p.pools = make([]sync.Pool, len(p.sizes))
	return p
}

// class returns the index of the smallest class holding n, or -1.
func (p *Pool) class(n int) int {
	for i, size := range p.sizes {
		if n <= size {
			return i
		}
	}
	return -1
}

// Get returns an empty buffer of capacity at least n. Past the largest
// class it allocates one of exactly n, which Put will not keep.
func (p *Pool) Get(n int) *[]byte {
	i := p.class(n)
	if i < 0 {
		b := make([]byte, 0, n)
		return &b
	}
	if b, ok := p.pools[i].Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, p.sizes[i])
	return &b
}

// Put returns b to its class. A buffer whose capacity is not a class's
// (grown by append, or from past the largest class) is left to the GC.
func (p *Pool) Put(b *[]byte) {
	if b == nil {
		return
	}
	if i := p.class(cap(*b)); i >= 0 && p.sizes[i] == cap(*b) {
		p.pools[i].Put(b)
	}
}
