package collector_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/collector"
	"thunder/internal/harness"
)

// TestRotationWithoutProc runs on Linux the collector of macOS and FreeBSD,
// which cannot see which processes hold a file open: a rotated file that
// is delivered and unlocked is still kept while it was written to within
// the quiet period, and the fallback is logged once, not per file.
func TestRotationWithoutProc(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	var logs harness.LockedBuffer
	cfg.Logger = logTo(t, &logs)
	cfg.RotateSize = 16 << 10
	c, err := collector.NewWithoutProc(cfg)
	if err != nil {
		t.Fatal(err)
	}
	col := mustRun(t, c)

	// Two rotations: 20 KB each time, after the last one rotated.
	all := lines("np", 0, 400, 100)
	path := filepath.Join(src, "app.log")
	for i, half := range []string{all[:len(all)/2], all[len(all)/2:]} {
		appendFile(t, path, half)
		harness.WaitFor(t, waitTimeout, func() error {
			if st := col.c.Stats(); st.Rotations < uint64(i+1) {
				return fmt.Errorf("Stats() rotations %d, want %d", st.Rotations, i+1)
			}
			return nil
		})
	}
	waitTargets(t, p.dir, map[string]string{"app.log": all})
	// The warning comes where Linux with /proc would delete the file: both
	// are delivered and unlocked, and nothing holds them.
	const warning = "cannot see which processes hold files open"
	harness.WaitFor(t, waitTimeout, func() error {
		if !strings.Contains(logs.String(), warning) {
			return fmt.Errorf("no %q in the log yet", warning)
		}
		return nil
	})
	if st := col.c.Stats(); st.Deletions != 0 || len(rotatedFiles(t, src)) != 2 {
		t.Errorf("without /proc: %d deletions, rotated files left %v; want both kept for the quiet period", st.Deletions, rotatedFiles(t, src))
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%q logged %d times, want once", warning, n)
	}
}
