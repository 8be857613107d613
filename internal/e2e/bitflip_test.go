//go:build unix

package e2e_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// TestBitFlips puts a link that flips bits between the daemons, in both
// directions, on plain TCP without compression: TCP's 16-bit checksum lets
// such damage through, and before frame checksums the processor wrote the
// damaged lines as they came. Every damaged frame must be refused and sent
// again: every line arrives exactly once and unaltered, and the
// processor counts what it refused.
func TestBitFlips(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target, adminArgs...)
	padm := adminAddr(t, p)
	proxy := newProxy(t, p.Addr)
	// About 40 flips per direction-megabyte up; the answers are small, so
	// they get a flip every few KiB.
	proxy.FlipEvery(25_000, 4_000)
	// 16 KiB frames: at that rate a frame passes undamaged about half the
	// time (a 64 KiB one 7 % of the time, which made a loaded box miss the
	// deadline resending it).
	c := startCollector(t, "host", src, offsetsDB(t), proxy.Addr, append(withQuick("--chunk-bytes=16KiB", "--max-line-bytes=16KiB"), adminArgs...)...)
	cadm := adminAddr(t, c)
	w := startWriters(t)
	var lws []linecheck.Writer
	for i, name := range []string{"app.log", "app.log", "sub/jobs.log"} {
		lws = append(lws, linecheck.Writer{
			ID: fmt.Sprintf("w%d", i), Path: filepath.Join(src, filepath.FromSlash(name)),
			Contract: []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend, linecheck.Unlocked}[i%3],
			Lines:    6_000, Rate: 3_000,
		})
	}
	w.addWriters(src, lws...)
	expect := w.Wait()
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	refused, err := metric(padm, "thunder_processor_checksum_errors_total")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bits flipped; the processor refused %v damaged frames; %s", proxy.Flips(), refused, r)
	if refused == 0 {
		t.Fatalf("%d bits flipped but no damaged frame refused: the test did not test", proxy.Flips())
	}
	// No damage may pass for a digest mismatch either: the damaged frames
	// were refused before they were written.
	harness.WaitFor(t, 10*time.Second, func() error {
		n, err := metric(cadm, "thunder_collector_digest_mismatches_total")
		if err != nil {
			return err
		}
		if n != 0 {
			t.Fatalf("collector reports %v digest mismatches", n)
		}
		return nil
	}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}
