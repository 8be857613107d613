// Package lograte keeps repeated failures from flooding a log: the one
// rate limit every daemon uses for lines a peer or a fault can repeat at
// will (hostile connections, a misbehaving processor, an unreachable
// broker).
//
// Invariant: a line held back is never lost silently: it is counted, and
// the count is reported with the next line let through.
package lograte

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit lets a burst of lines through, then one per interval. The zero
// Limit is not usable; make one with New. It is safe for concurrent use.
type Limit struct {
	lim  *rate.Limiter
	mu   sync.Mutex
	held int
}

// New returns a Limit of burst lines, then one every interval.
func New(every time.Duration, burst int) *Limit {
	return &Limit{lim: rate.NewLimiter(rate.Every(every), burst)}
}

// Allow reports whether a line may be logged now and, if so, how many
// were held back since the last one let through.
func (l *Limit) Allow() (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lim.Allow() {
		l.held++
		return false, 0
	}
	held, l.held = l.held, 0
	return true, held
}
