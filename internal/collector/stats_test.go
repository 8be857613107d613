package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/collector"
	"thunder/internal/harness/peer"
)

// TestStatsAckedNotAboveSent: after a restart whose offsets DB is behind
// the processor (a crash before the last acknowledged offset was saved,
// here a DB copied back), Opened acknowledges bytes an earlier process
// sent. They count as sent too: thunder status must never show more
// acknowledged than sent.
func TestStatsAckedNotAboveSent(t *testing.T) {
	st := peer.NewStore()
	f := mustStore(t, st, true, nil)
	src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
	cfg := baseConfig(t, src, db, f.addr)
	first, more := lines("a", 0, 50, 60), lines("a", 50, 100, 60)
	acked := func(n int) func(collector.Stats) error {
		return func(s collector.Stats) error {
			if s.AckedBytes != uint64(n) {
				return fmt.Errorf("acked %d, want %d", s.AckedBytes, n)
			}
			return nil
		}
	}
	c := mustCollector(t, cfg)
	appendFile(t, filepath.Join(src, "a.log"), first)
	waitStats(t, c, acked(len(first)))
	c.stop()
	behind, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	c = mustCollector(t, cfg)
	appendFile(t, filepath.Join(src, "a.log"), more)
	waitHeld(t, st, "a.log", first+more)
	waitStats(t, c, acked(len(more)))
	c.stop()
	if err := os.WriteFile(db, behind, 0o600); err != nil {
		t.Fatal(err)
	}
	c = mustCollector(t, cfg)
	waitStats(t, c, acked(len(more)))
	if s := c.c.Stats(); s.SentBytes < s.AckedBytes {
		t.Errorf("after the restart: sent %d < acknowledged %d", s.SentBytes, s.AckedBytes)
	}
	c.stop()
}
