package collector_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/harness"
	"thunder/internal/harness/peer"
)

// Attack 12 (missed alarm): a sealed processor that tells the stream's
// digest in Opened and then leaves it out of every Ack. A processor's
// digest never goes from known to unknown while a stream stays attached
// (PROTOCOL §13: unknown only for state older than digests, or a move to
// an acked offset without one), so an Ack without it, after Opened had
// one, is a processor that stopped vouching for what it holds. Before the
// fix the collector took every such Ack as "unknown, nothing to compare"
// and deleted the rotated file unchecked: a processor could hold anything
// and never be caught, just by omitting the field.
func TestAttack12AckWithoutDigestAfterOpened(t *testing.T) {
	st := peer.NewStore()
	f := mustStore(t, st, true, func(int) peer.Conduct { return peer.Conduct{OmitAckDigests: true} })
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	cfg.RotateSize = 16 << 10
	c := mustCollector(t, cfg)

	all := lines("x", 0, 400, 100)
	appendFile(t, filepath.Join(src, "app.log"), all)
	waitHeld(t, st, "app.log", all)
	harness.WaitFor(t, waitTimeout, func() error {
		if s := c.c.Status(); s.DigestMismatches == 0 {
			return fmt.Errorf("no digest mismatch reported for Acks without digests (deletions %d)", c.c.Stats().Deletions)
		}
		return nil
	})
	waitTicks(t, c, 2)
	if r := rotatedFiles(t, src); len(r) == 0 {
		t.Errorf("rotated file deleted although its Acks carried no digest")
	}
	if err := c.c.Healthy(); err == nil || !strings.Contains(err.Error(), "app.log") {
		t.Errorf("Healthy() = %v, want unhealthy naming app.log", err)
	}
}
