// Package backoff holds the one retry schedule every loop that waits after
// a failure uses: quadratic growth from a minimum to a cap, with optional
// jitter.
//
// Invariant: the n-th wait is min(n² × Min, Max), scaled by a factor in
// [0.75, 1.25) when Jitter is set, and 0 for n ≤ 0.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a retry schedule.
type Policy struct {
	Min, Max time.Duration
	// Jitter spreads waits by ±25% so that many clients that failed
	// together do not retry in step.
	Jitter bool
}

// Delay is the wait after n consecutive failures.
func (p Policy) Delay(n int) time.Duration {
	if n <= 0 || p.Min <= 0 {
		return 0
	}
	d := p.Max
	if n < 1<<15 { // n² × Min cannot overflow before it passes any sane Max
		d = min(time.Duration(n*n)*p.Min, p.Max)
	}
	if p.Jitter && d > 0 {
		d = d*3/4 + rand.N(d/2+1)
	}
	return d
}

// Wait sleeps Delay(n), or until ctx is done; it reports whether the wait
// ran to its end.
func (p Policy) Wait(ctx context.Context, n int) bool {
	return Sleep(ctx, p.Delay(n))
}

// Sleep waits d, or until ctx is done; it reports whether the wait ran to
// its end.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
