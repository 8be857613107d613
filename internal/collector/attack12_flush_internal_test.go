package collector

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/digest"
	"thunder/internal/offsets"
	"thunder/internal/tail"
)

// Attack 12 (false alarm): a rotated file whose writer keeps leaving half
// lines that are flushed (more than offsets.MaxFlushes of them). The
// record keeps only the first MaxFlushes flush points, so a replay of the
// file (after a restart, or before deleting a file whose digest was taken
// from the processor) missed the later added newlines and computed another
// digest than the one sent: a false mismatch, the file kept for ever and
// /healthz unhealthy. Such a record is now marked, and not replayed.
func TestAttack12TooManyFlushesNoFalseMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	c := &Collector{cfg: Config{ChunkBytes: 4096, MaxLineBytes: 100}, log: slog.New(slog.DiscardHandler)}
	s := &source{f: file, state: stateRotated}
	buf := make([]byte, 4096+2)
	var sent uint32 // the digest of what was sent
	var off int64
	for i := range offsets.MaxFlushes + 5 {
		if _, err := fmt.Fprintf(w, "rest %d\nhalf %d", i, i); err != nil { // the previous half line completed, a new one left half
			t.Fatal(err)
		}
		for {
			payload, next, res, _, err := tail.Read(file, off, buf, 100, true)
			if err != nil || res == tail.Nothing {
				t.Fatalf("tail.Read at %d: %v, %v", off, res, err)
			}
			sent = digest.Update(sent, payload)
			c.advance(s, next, res, false)
			off = next
			if res == tail.Flushed {
				break
			}
		}
	}
	s.rec.Acked, s.rec.Digest, s.rec.HasDigest, s.rec.Adopted = uint64(off), sent, true, true
	if d, ok := c.replay(s, mark{}, uint64(off), 1<<20); ok && d != sent {
		t.Fatalf("replay of a file with %d flushes (record keeps %d) = %08x, sent %08x: a false mismatch", offsets.MaxFlushes+5, len(s.rec.Flushes), d, sent)
	}
	if !c.provenForDelete(s) || s.rec.Mismatch != nil {
		t.Errorf("provenForDelete = false or mismatch %+v, want the file deletable without an alarm", s.rec.Mismatch)
	}
}
