package target_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDescriptorBudgetConcurrent: appends of many sessions at once (one
// goroutine per file, as one per connection) hold no more than
// MaxOpenFiles target descriptors either. Past the first try an append
// opened its file whatever the count, so every appender that had waited
// for room opened at once: the budget was the budget plus the number of
// sessions, and the descriptors the processor counts on for connections
// were taken.
func TestDescriptorBudgetConcurrent(t *testing.T) {
	const budget, files, rounds = 16, 200, 5
	dir := t.TempDir()
	_, o, streams, stop := runWithStreams(t, dir, budget, files, func(i int) string { return fmt.Sprintf("f%03d.log", i) })
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				if n := int64(fdsUnder(dir)); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, files)
	for i, s := range streams {
		wg.Go(func() {
			var end uint64
			for r := range rounds {
				p := []byte(fmt.Sprintf("round %d file %d\n", r, i))
				if errs[i] = s.Append(o, chunk(end, end+uint64(len(p)), p)); errs[i] != nil {
					return
				}
				end += uint64(len(p))
			}
		})
	}
	wg.Wait()
	close(done)
	stop()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("f%03d: %v", i, err)
		}
	}
	t.Logf("%d files × %d rounds at once: at most %d target descriptors open (budget %d)", files, rounds, peak.Load(), budget)
	if peak.Load() > budget {
		t.Errorf("%d target descriptors open at once, budget %d", peak.Load(), budget)
	}
}
