package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{-1, 0}, {0, 0}, {1, 100 * time.Millisecond}, {2, 400 * time.Millisecond}, {7, 4900 * time.Millisecond}, {8, 5 * time.Second}, {1 << 40, 5 * time.Second}} {
		if got := p.Delay(c.n); got != c.want {
			t.Errorf("Delay(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

func TestJitterStaysInBand(t *testing.T) {
	p := Policy{Min: time.Second, Max: time.Minute, Jitter: true}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Delay(3)
		if d < 9*time.Second*3/4 || d > 9*time.Second*5/4 {
			t.Fatalf("Delay(3) = %v, outside 9 s ± 25%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatalf("200 jittered delays were all %v", seen)
	}
}

// TestSleepStopsWithContext: Sleep runs to its end after exactly d, and
// stops at the moment its context is done (synctest's clock: no real wait).
func TestSleepStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(t.Context(), time.Hour) {
			t.Fatal("Sleep of an hour did not run to its end")
		}
		if got := time.Since(start); got != time.Hour {
			t.Errorf("Sleep(1h) took %v", got)
		}

		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Minute, cancel)
		start = time.Now()
		if Sleep(ctx, time.Hour) {
			t.Fatal("Sleep ran to its end although its context was cancelled")
		}
		if got := time.Since(start); got != 10*time.Minute {
			t.Errorf("Sleep returned %v after the start, want 10m0s (the cancel)", got)
		}
		if Sleep(ctx, time.Hour) || Sleep(ctx, 0) {
			t.Fatal("Sleep on a done context ran to its end")
		}
	})
}

// TestWaitTakesDelay: Wait(n) sleeps Delay(n), n² × Min up to Max.
func TestWaitTakesDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}
		for n, want := range []time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond, 1600 * time.Millisecond, 2500 * time.Millisecond, 3600 * time.Millisecond, 4900 * time.Millisecond, 5 * time.Second} {
			start := time.Now()
			if !p.Wait(t.Context(), n) {
				t.Fatalf("Wait(%d) stopped early", n)
			}
			if got := time.Since(start); got != want {
				t.Errorf("Wait(%d) took %v, want %v", n, got, want)
			}
		}
	})
}
