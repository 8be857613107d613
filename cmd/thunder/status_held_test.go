package main

import (
	"strings"
	"testing"
	"time"

	"thunder/internal/collector"
)

// TestStatusHeld: a rotated file still written by a program that does not
// reopen its log is shown with its pids, what was written since the
// rotation and what to do; the collector stays healthy.
func TestStatusHeld(t *testing.T) {
	st := collectorStatus(1 << 20)
	st.HeldFiles, st.HeldBytes = 1, 3<<20
	st.Held = []collector.HeldFile{{
		Name: "app/py.log", Path: "app/py.log.20261124T115434.123456789Z.rotated", PIDs: []int{4242, 4343},
		Since: time.Now().Add(-2 * time.Minute), BytesAfterRotation: 3 << 20,
	}}
	c := startFake(t, st)
	out, _, err := runCmd(t, "status", "--admin-address="+c.addr)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, w := range []string{"held rotated files:", "1, still written by programs that do not reopen", "SIGHUP", "HELD NAME", "app/py.log.20261124T115434.123456789Z.rotated", "4242,4343", "3.0 MiB", "2m0s"} {
		if !strings.Contains(out, w) {
			t.Errorf("status output lacks %q:\n%s", w, out)
		}
	}
}
