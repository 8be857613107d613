package collector

import (
	"runtime"
	"testing"
	"time"
)

// TestProcsDecide: one P while the collector is not busy, every P once one
// is saturated, back to one only after procsDownWait below procsDownBusy.
func TestProcsDecide(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(was)
	runtime.GOMAXPROCS(1) // as newProcs leaves it
	p := procs{max: 4, cur: 1}
	t0 := time.Now()
	steps := []struct {
		busy float64
		at   time.Duration
		want int // GOMAXPROCS after the step
	}{
		{0.1, 0, 1},
		{0.79, time.Second, 1},
		{0.95, 2 * time.Second, 4}, // saturated: every P
		{0.6, 3 * time.Second, 4},  // busy enough to keep them
		{0.2, 4 * time.Second, 4},  // slow since 4 s
		{0.2, 6 * time.Second, 4},  // not long enough
		{0.7, 7 * time.Second, 4},  // busy again: the wait starts over
		{0.1, 8 * time.Second, 4},
		{0.1, 11 * time.Second, 1}, // procsDownWait below procsDownBusy
	}
	for _, s := range steps {
		p.decide(s.busy, t0.Add(s.at))
		if got := runtime.GOMAXPROCS(0); got != s.want || p.cur != s.want {
			t.Fatalf("after %.2f core at %v: GOMAXPROCS %d (cur %d), want %d", s.busy, s.at, got, p.cur, s.want)
		}
	}
	p.restore()
	if got := runtime.GOMAXPROCS(0); got != 4 {
		t.Fatalf("restore: GOMAXPROCS %d, want 4", got)
	}
}

// TestProcsOff: without AdaptProcs nothing is changed.
func TestProcsOff(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	p := newProcs(false)
	if n := p.adapt(time.Now()); n != 0 || runtime.GOMAXPROCS(0) != was {
		t.Fatalf("off: adapt = %d, GOMAXPROCS %d, want %d untouched", n, runtime.GOMAXPROCS(0), was)
	}
	p.restore()
	if runtime.GOMAXPROCS(0) != was {
		t.Fatal("restore changed GOMAXPROCS")
	}
}
