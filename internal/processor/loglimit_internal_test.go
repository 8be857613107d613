package processor

import (
	"testing"
	"time"
)

func TestLogLimit(t *testing.T) {
	var l logLimit
	allowed := 0
	for range 3 * logBurst {
		if ok, _ := l.allow(); ok {
			allowed++
		}
	}
	if allowed < logBurst || allowed > logBurst+5 {
		t.Fatalf("allowed %d of a burst of %d, want about %d", allowed, 3*logBurst, logBurst)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, dropped := l.allow()
		if ok {
			if dropped < 2*logBurst-5 {
				t.Errorf("reported %d dropped lines, want about %d", dropped, 2*logBurst)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no line allowed again after 5s")
		}
		time.Sleep(time.Millisecond) // polling for the refill
	}
}
