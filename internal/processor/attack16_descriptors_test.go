//go:build linux

package processor_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"thunder/internal/target"
)

// TestDescriptorLimitBelowMaxOpenFiles: a descriptor limit that does not
// hold --max-open-files and the reserve (ulimit -n 1024 with the default
// 4,096 target files; a hard limit of 4,096, common, does the same) left
// room for one connection: the processor served one collector at a time,
// the others waited in the backlog for as long as it stayed. The target
// files must share the limit with the connections instead.
func TestDescriptorLimitBelowMaxOpenFiles(t *testing.T) {
	const limit, collectors = 1024, 20
	addr, _, budget := startLimitedChild(t, limit, target.DefaultMaxOpenFiles)
	t.Logf("connection budget %d under ulimit -n %d with --max-open-files %d", budget, limit, target.DefaultMaxOpenFiles)
	release := make(chan struct{})
	in := make(chan int, collectors)
	errs := make(chan error, collectors)
	var wg sync.WaitGroup
	defer func() {
		close(release)
		if !t.Failed() { // else some still wait to get in
			wg.Wait()
		}
	}()
	for i := range collectors {
		wg.Go(func() {
			if err := limitedCollector(addr, i, in, release); err != nil {
				errs <- fmt.Errorf("collector %d: %w", i, err)
			}
		})
	}
	deadline := time.After(waitTimeout)
	for got := 0; got < collectors; got++ {
		select {
		case <-in:
		case err := <-errs:
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("%d of %d collectors in at once within %v (connection budget %d)", got, collectors, waitTimeout, budget)
		}
	}
}
