//go:build linux

package target_test

import (
	"fmt"
	"testing"

	"thunder/internal/target"
)

// TestBehindPoolCapacity: every buffered file holds at least a pooled 4 KiB
// whatever it got, so the memory held is 4 KiB per buffered file, not what
// behindBytes (and maxBehind) counts. 30,000 files of one 100-byte frame:
// ~3 MiB counted, ~120 MiB held; past 32,768 files maxBehind is exceeded
// with nothing near it counted.
func TestBehindPoolCapacity(t *testing.T) {
	fx := newBehindFixture(t)
	for i := range behindFiles {
		p := fmt.Sprintf("short line %02d\n", i)
		fx.ends[i] = mustAppend(t, fx.d, fx.streams[i], fx.o, fx.ends[i], p)
		fx.want[i] += p
	}
	n, c := target.BehindBytes(fx.d), target.BehindCap(fx.d)
	t.Logf("buffered %d bytes in buffers of %d bytes capacity", n, c)
	if n == 0 {
		t.Skip("nothing buffered")
	}
	if c > 2*n+1024 {
		t.Errorf("write-behind buffers hold %d bytes for %d buffered (%.0fx): maxBehind bounds len, not memory", c, n, float64(c)/float64(n))
	}
	mustCommit(t, fx.d)
	fx.check(t, "after commit", func(i int) string { return fx.want[i] })
}
