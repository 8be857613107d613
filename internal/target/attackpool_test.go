//go:build linux

package target_test

import (
	"fmt"
	"testing"

	"thunder/internal/target"
)

// TestBehindPoolCapacity: the write-behind buffers hold about what they
// were given, which is what maxBehind counts. A pooled 4 KiB per buffered
// file (tried on 7 Dec) held 4 KiB for each short line: 30,000 files of
// one 100-byte frame, ~3 MiB counted and ~120 MiB held.
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
		t.Errorf("write-behind buffers hold %d bytes for %d buffered (%.0fx): maxBehind bounds bytes, not memory", c, n, float64(c)/float64(n))
	}
	mustCommit(t, fx.d)
	fx.check(t, "after commit", func(i int) string { return fx.want[i] })
}
