package collector

import (
	"testing"
	"time"

	"thunder/internal/watch"
)

// TestAdaptPace: files growing slowly get an eighth of --linger (lines wait
// at most half a millisecond), fast ones all of it; the choice is made at most once
// per --linger, over the bytes sent meanwhile.
func TestAdaptPace(t *testing.T) {
	w, err := watch.New(watch.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const linger = 4 * time.Millisecond
	c := &Collector{cfg: Config{Linger: linger}, watch: w}
	for _, step := range []struct {
		bytes   uint64
		elapsed time.Duration
		want    time.Duration
	}{
		{1_000, 10 * time.Millisecond, linger / slowPace},          // 100 KB/s: slow
		{1 << 20, 10 * time.Millisecond, linger},                   // 100 MiB/s: fast
		{0, time.Millisecond, linger},                              // too soon to decide again
		{10_000, 10 * time.Millisecond, linger / slowPace},         // 1 MB/s: slow again
		{100_000, 10 * time.Millisecond, linger},                   // 10 MB/s: fast
		{fastRate / 90, 10 * time.Millisecond, linger},             // just above fastRate
		{fastRate / 200, 10 * time.Millisecond, linger / slowPace}, // half of it
	} {
		c.roundBytes, c.paceFrom = step.bytes, time.Now().Add(-step.elapsed)
		c.adaptPace()
		if c.pace != step.want {
			t.Errorf("%d bytes in %v: pace %v, want %v", step.bytes, step.elapsed, c.pace, step.want)
		}
	}
}
