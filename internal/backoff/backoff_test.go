package backoff

import (
	"context"
	"testing"
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

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on a done context ran to its end")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of 1 ms did not run to its end")
	}
}
