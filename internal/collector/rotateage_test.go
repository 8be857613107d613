package collector_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"thunder/internal/harness"
)

// TestRotateAge: a slowly growing file is rotated once it is older than
// RotateAge, and the rotated part deleted once delivered.
func TestRotateAge(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.RotateSize = 0
	cfg.RotateAge = 300e6 // 300ms
	c := mustCollector(t, cfg)

	path := filepath.Join(src, "slow.log")
	first := lines("age", 0, 5, 40)
	appendFile(t, path, first)
	harness.WaitFor(t, waitTimeout, func() error {
		if st := c.c.Stats(); st.Rotations < 1 || st.Deletions < 1 {
			return fmt.Errorf("Stats() rotations %d, deletions %d; want the old file rotated and deleted", st.Rotations, st.Deletions)
		}
		return nil
	})
	more := lines("age", 5, 10, 40)
	appendFile(t, path, more)
	waitTargets(t, p.dir, map[string]string{"slow.log": first + more})
}
