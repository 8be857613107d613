package collector_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/collector"
	"thunder/internal/digest"
	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/offsets"
)

// The tests of PROTOCOL.md §13 against peer.Store, a fake processor that
// checks every trailer and computes the stream digests from the data it
// got.

// mustStore starts a fake processor on st whose n-th connection behaves as
// conduct(n) says; crc32c says whether it speaks §13.
func mustStore(t *testing.T, st *peer.Store, crc32c bool, conduct func(n int) peer.Conduct) *fake {
	t.Helper()
	return mustStoreWith(t, st, peer.Options{WriteTimeout: waitTimeout, CRC32C: crc32c}, conduct)
}

func mustStoreWith(t *testing.T, st *peer.Store, opts peer.Options, conduct func(n int) peer.Conduct) *fake {
	t.Helper()
	p := peer.ListenWith(t, opts, func(n int, c *peer.Conn) {
		var cd peer.Conduct
		if conduct != nil {
			cd = conduct(n)
		}
		st.Serve(c, cd)
	})
	return &fake{Processor: p, addr: p.Addr}
}

// logTo returns a logger that writes to the test's output and to buf.
func logTo(t *testing.T, buf *harness.LockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), buf), &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "collector")
}

// gather returns the value of each metric of reg, summed over its series.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			}
		}
	}
	return got
}

// waitHeld waits until the Store's stream named name holds exactly want,
// failing at once on anything the Store calls bad.
func waitHeld(t *testing.T, st *peer.Store, name, want string) {
	t.Helper()
	harness.WaitFor(t, waitTimeout, func() error {
		if err := st.Bad(); err != nil {
			t.Fatal(err)
		}
		h, ok := st.Named(name)
		switch {
		case !ok:
			return fmt.Errorf("no data for %s yet", name)
		case !strings.HasPrefix(want, string(h.Bytes)):
			t.Fatalf("%s: the fake holds %d bytes that are not the file's first bytes", name, len(h.Bytes))
		case len(h.Bytes) != len(want):
			return fmt.Errorf("%s: the fake holds %d bytes, want %d", name, len(h.Bytes), len(want))
		}
		return nil
	})
}

// waitDeleted waits until the source dir holds no rotated file and c
// counted deletions.
func waitDeleted(t *testing.T, c *col, src string, deletions uint64) {
	t.Helper()
	harness.WaitFor(t, waitTimeout, func() error {
		if r := rotatedFiles(t, src); len(r) > 0 {
			return fmt.Errorf("rotated files left: %v", r)
		}
		if st := c.c.Stats(); st.Deletions < deletions {
			return fmt.Errorf("Stats().Deletions = %d, want %d", st.Deletions, deletions)
		}
		return nil
	})
}

// waitTicks waits until c published n more status updates: every file's
// life went on by n ticks (deletions are tried at each).
func waitTicks(t *testing.T, c *col, n int) {
	t.Helper()
	for range n {
		u := c.c.Status().Updated
		harness.WaitFor(t, waitTimeout, func() error {
			if !c.c.Status().Updated.After(u) {
				return errors.New("no status update yet")
			}
			return nil
		})
	}
}

func noMismatch(t *testing.T, c *col) {
	t.Helper()
	if st := c.c.Status(); st.DigestMismatches != 0 || st.MismatchFiles != 0 || len(st.Mismatched) != 0 {
		t.Errorf("Status: %d digest mismatches, %d files %v; want none", st.DigestMismatches, st.MismatchFiles, st.Mismatched)
	}
	if err := c.c.Healthy(); err != nil {
		t.Errorf("Healthy() = %v, want nil", err)
	}
}

// TestDigestsMatchSealed: a processor that speaks §13 gets every frame
// sealed (the fake checks each trailer and counts unsealed ones), its
// digests match the collector's, and the rotated file is deleted as
// before; with zstd too, whose trailer covers the payload as appended.
func TestDigestsMatchSealed(t *testing.T) {
	for _, zstd := range []bool{false, true} {
		t.Run(fmt.Sprintf("zstd=%v", zstd), func(t *testing.T) { testDigestsMatchSealed(t, zstd) })
	}
}

func testDigestsMatchSealed(t *testing.T, zstd bool) {
	st := peer.NewStore()
	f := mustStoreWith(t, st, peer.Options{WriteTimeout: waitTimeout, CRC32C: true, Zstd: zstd}, nil)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	cfg.RotateSize = 16 << 10
	if zstd {
		cfg.Compression = "zstd"
	}
	c := mustCollector(t, cfg)

	all := lines("ok", 0, 400, 100)
	appendFile(t, filepath.Join(src, "app.log"), all)
	waitHeld(t, st, "app.log", all)
	waitDeleted(t, c, src, 1)
	sealed, unsealed, _ := st.Frames()
	if sealed == 0 || unsealed != 0 {
		t.Errorf("fake got %d sealed and %d unsealed frames, want all sealed", sealed, unsealed)
	}
	if n := st.Compressed(); zstd != (n > 0) {
		t.Errorf("fake got %d compressed frames, zstd %v", n, zstd)
	}
	if h, _ := st.Named("app.log"); h.Digest != digest.Checksum([]byte(all)) {
		t.Errorf("fake's digest %08x, want the file's CRC-32C %08x", h.Digest, digest.Checksum([]byte(all)))
	}
	noMismatch(t, c)
}

// TestDigestMismatchKeepsFile: a processor that reports wrong digests for
// one file. The collector logs an error naming the file, the digests and
// the processor, counts it, turns unhealthy naming the file, shows it in
// its status, goes on delivering, and never deletes that file: not while
// an honest file rotated after it is deleted, and not after a restart,
// which still reports it.
func TestDigestMismatchKeepsFile(t *testing.T) {
	st := peer.NewStore()
	lying := true
	f := mustStore(t, st, true, func(n int) peer.Conduct {
		if !lying {
			return peer.Conduct{}
		}
		return peer.Conduct{LieFrom: 1, LieName: "bad.log"}
	})
	src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
	var logs harness.LockedBuffer
	cfg := baseConfig(t, src, db, f.addr)
	cfg.Logger = logTo(t, &logs)
	cfg.RotateSize = 16 << 10
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c := mustCollector(t, cfg)

	bad := lines("bad", 0, 400, 100)
	appendFile(t, filepath.Join(src, "bad.log"), bad)
	waitHeld(t, st, "bad.log", bad) // delivery goes on
	waitStats(t, c, func(s collector.Stats) error {
		if s.DigestMismatches != 1 || s.MismatchFiles != 1 || s.Rotations < 1 || s.AckedBytes != uint64(len(bad)) {
			return fmt.Errorf("Stats: %d mismatches, %d files, %d rotations, %d acked; want 1, 1, ≥ 1, %d", s.DigestMismatches, s.MismatchFiles, s.Rotations, s.AckedBytes, len(bad))
		}
		return nil
	})
	metrics := gather(t, reg)
	for name, want := range map[string]float64{
		"thunder_collector_digest_mismatches_total": 1,
		"thunder_collector_digest_mismatch_files":   1,
		"thunder_collector_checksum_errors_total":   0,
	} {
		if v, ok := metrics[name]; !ok || v != want {
			t.Errorf("%s = %v (gathered: %v), want %v", name, v, ok, want)
		}
	}
	log := logs.String()
	i := strings.Index(log, "processor's digest of a file differs")
	if i < 0 {
		t.Fatalf("no mismatch logged")
	}
	line := log[strings.LastIndex(log[:i], "\n")+1:]
	line = line[:strings.IndexByte(line, '\n')]
	for _, want := range []string{"level=ERROR", "bad.log", "addr=" + f.addr, "digest=", "processor_digest=", "offset="} {
		if !strings.Contains(line, want) {
			t.Errorf("mismatch log line %q lacks %q", line, want)
		}
	}

	// An honest file rotated after it is deleted; the mismatched one stays.
	good := lines("good", 0, 400, 100)
	appendFile(t, filepath.Join(src, "good.log"), good)
	waitHeld(t, st, "good.log", good)
	harness.WaitFor(t, waitTimeout, func() error {
		if st := c.c.Stats(); st.Deletions < 1 {
			return fmt.Errorf("Stats().Deletions = %d, want the honest file deleted", st.Deletions)
		}
		return nil
	})
	waitTicks(t, c, 1)
	checkKept := func() {
		t.Helper()
		r := rotatedFiles(t, src)
		if len(r) != 1 || !strings.HasPrefix(r[0], "bad.log.") {
			t.Fatalf("rotated files %v, want bad.log's kept (and good.log's deleted)", r)
		}
		err := c.c.Healthy()
		if err == nil || !strings.Contains(err.Error(), "bad.log") {
			t.Errorf("Healthy() = %v, want unhealthy naming bad.log", err)
		}
		s := c.c.Status()
		if len(s.Mismatched) != 1 || s.Mismatched[0].Name != "bad.log" || s.Mismatched[0].Addr != f.addr || s.Mismatched[0].Digest == s.Mismatched[0].ProcessorDigest {
			t.Errorf("Status().Mismatched = %+v, want bad.log with both digests and the processor", s.Mismatched)
		}
	}
	checkKept()
	if got := c.c.Stats().Deletions; got != 1 {
		t.Errorf("Stats().Deletions = %d, want 1", got)
	}

	// After a restart, against an honest processor now: still reported,
	// still kept.
	c.stop()
	lying = false
	cfg.Logger = testLogger(t).With("side", "collector", "run", 2)
	cfg.Registerer = nil
	c = mustCollector(t, cfg)
	waitStats(t, c, func(s collector.Stats) error {
		if !s.Connected || s.MismatchFiles != 1 {
			return fmt.Errorf("Stats: connected %v, %d files in mismatch; want connected, 1", s.Connected, s.MismatchFiles)
		}
		return nil
	})
	waitTicks(t, c, 2)
	checkKept()
}

// TestDigestsOldProcessor: a processor that does not list crc32c gets
// unsealed frames, as before; the collector warns once that it does not
// checksum, delivers exactly and deletes the rotated file.
func TestDigestsOldProcessor(t *testing.T) {
	st := peer.NewStore()
	f := mustStore(t, st, false, nil)
	src := t.TempDir()
	var logs harness.LockedBuffer
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	cfg.Logger = logTo(t, &logs)
	cfg.RotateSize = 16 << 10
	c := mustCollector(t, cfg)

	all := lines("old", 0, 400, 100)
	appendFile(t, filepath.Join(src, "app.log"), all)
	waitHeld(t, st, "app.log", all)
	waitDeleted(t, c, src, 1)
	if sealed, unsealed, _ := st.Frames(); sealed != 0 || unsealed == 0 {
		t.Errorf("old fake got %d sealed and %d unsealed frames, want none sealed", sealed, unsealed)
	}
	if log := logs.String(); strings.Count(log, "processor does not checksum frames") != 1 || !strings.Contains(log, "level=WARN msg=\"processor does not checksum") {
		t.Errorf("want one warning that the processor does not checksum frames, got log:\n%s", log)
	}
	noMismatch(t, c)
}

// TestDamagedAckTrailer: the first Ack's trailer is damaged on the way. The
// collector drops the connection, counts a checksum error, reconnects and
// resumes where Opened says: nothing lost or duplicated, no mismatch.
func TestDamagedAckTrailer(t *testing.T) {
	st := peer.NewStore()
	f := mustStore(t, st, true, func(n int) peer.Conduct { return peer.Conduct{BadAckTrailer: n == 0} })
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	c := mustCollector(t, cfg)

	first := lines("a", 0, 100, 100)
	appendFile(t, filepath.Join(src, "app.log"), first)
	waitStats(t, c, func(s collector.Stats) error {
		if s.ChecksumErrors != 1 || s.Connects < 2 {
			return fmt.Errorf("Stats: %d checksum errors, %d connects; want 1, ≥ 2", s.ChecksumErrors, s.Connects)
		}
		return nil
	})
	more := lines("a", 100, 300, 100)
	appendFile(t, filepath.Join(src, "app.log"), more)
	waitHeld(t, st, "app.log", first+more)
	waitStats(t, c, func(s collector.Stats) error {
		if s.AckedBytes != uint64(len(first+more)) {
			return fmt.Errorf("Stats().AckedBytes = %d, want %d", s.AckedBytes, len(first+more))
		}
		return nil
	})
	noMismatch(t, c)
}

// TestChecksumErrorFromProcessor: the processor finds a data frame damaged
// and says so with Error code checksum. The collector reconnects and
// resends from Opened's offset: every byte exactly once.
func TestChecksumErrorFromProcessor(t *testing.T) {
	st := peer.NewStore()
	f := mustStore(t, st, true, func(n int) peer.Conduct { return peer.Conduct{ChecksumErrorAt: map[int]int{0: 2}[n]} })
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	cfg.ChunkBytes, cfg.MaxLineBytes = 4096, 4096 // several frames
	c := mustCollector(t, cfg)

	all := lines("e", 0, 500, 100)
	appendFile(t, filepath.Join(src, "app.log"), all)
	waitHeld(t, st, "app.log", all)
	if _, _, n := st.Frames(); n != 1 {
		t.Errorf("fake sent %d checksum errors, want 1", n)
	}
	if s := c.c.Stats(); s.Connects < 2 {
		t.Errorf("Stats().Connects = %d, want ≥ 2", s.Connects)
	}
	noMismatch(t, c)
}

// TestRestartReplaysUnacked: a collector sends a file, long lines split,
// to a processor that appends it but has committed none of it when the
// collector stops. The next collector process finds the processor ahead
// of its offsets DB (Opened offset > acked): it replays that range from
// the file to check the processor's digest, which matches (no false
// mismatch) and delivers the rest exactly once. A processor that lies
// about that range is caught by the same replay.
func TestRestartReplaysUnacked(t *testing.T) {
	for _, lie := range []bool{false, true} {
		t.Run(fmt.Sprintf("lie=%v", lie), func(t *testing.T) {
			st := peer.NewStore()
			f := mustStore(t, st, true, func(n int) peer.Conduct {
				if n == 0 {
					return peer.Conduct{NoAck: true}
				}
				if lie {
					return peer.Conduct{LieFrom: 1}
				}
				return peer.Conduct{}
			})
			src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
			cfg := baseConfig(t, src, db, f.addr)
			cfg.ChunkBytes, cfg.MaxLineBytes = 4096, 100
			c := mustCollector(t, cfg)

			long := strings.Repeat("L", 350)
			first := lines("r", 0, 50, 60) + long + "\n" + lines("r", 50, 100, 60)
			held := lines("r", 0, 50, 60) + long[:100] + "\n" + long[100:200] + "\n" + long[200:300] + "\n" + long[300:] + "\n" + lines("r", 50, 100, 60)
			path := filepath.Join(src, "app.log")
			appendFile(t, path, first)
			waitHeld(t, st, "app.log", held)
			c.stop()
			if s := c.c.Stats(); s.AckedBytes != 0 {
				t.Fatalf("first run: Stats().AckedBytes = %d, want 0 (the fake commits nothing)", s.AckedBytes)
			}

			var logs harness.LockedBuffer
			cfg.Logger = logTo(t, &logs)
			c = mustCollector(t, cfg)
			more := lines("r", 100, 200, 60)
			appendFile(t, path, more)
			waitHeld(t, st, "app.log", held+more)
			waitStats(t, c, func(s collector.Stats) error {
				if s.AckedBytes != uint64(len(first+more)) { // from the offsets DB's 0
					return fmt.Errorf("Stats().AckedBytes = %d, want %d", s.AckedBytes, len(first+more))
				}
				return nil
			})
			if !strings.Contains(logs.String(), "digest replayed from the file") {
				t.Errorf("the second run did not replay the range its offsets DB lacks")
			}
			if !lie {
				noMismatch(t, c)
				return
			}
			s := c.c.Status()
			if s.DigestMismatches != 1 || len(s.Mismatched) != 1 || s.Mismatched[0].Offset != uint64(len(first)) {
				t.Errorf("lying processor: %d mismatches, %+v; want 1 at offset %d (Opened)", s.DigestMismatches, s.Mismatched, len(first))
			}
		})
	}
}

// TestOldRecordWithoutDigest: an offsets DB written by an older collector
// has no digests. The collector replays the acknowledged part of the file
// to know its digest there, so a processor's is checked all the same: an
// honest one matches, a lying one is caught.
func TestOldRecordWithoutDigest(t *testing.T) {
	for _, lie := range []bool{false, true} {
		t.Run(fmt.Sprintf("lie=%v", lie), func(t *testing.T) {
			st := peer.NewStore()
			f := mustStore(t, st, true, func(n int) peer.Conduct {
				// The Open of the restarted collector carries the digest
				// it replayed, not a guess.
				return peer.Conduct{LieFrom: map[bool]uint64{true: 1}[n > 0 && lie], CheckAckedDigest: true}
			})
			src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
			cfg := baseConfig(t, src, db, f.addr)
			c := mustCollector(t, cfg)
			path := filepath.Join(src, "app.log")
			first := lines("o", 0, 100, 80)
			appendFile(t, path, first)
			waitHeld(t, st, "app.log", first)
			waitStats(t, c, func(s collector.Stats) error {
				if s.AckedBytes != uint64(len(first)) {
					return fmt.Errorf("Stats().AckedBytes = %d, want %d", s.AckedBytes, len(first))
				}
				return nil
			})
			c.stop()
			stripDigests(t, db)

			var logs harness.LockedBuffer
			cfg.Logger = logTo(t, &logs)
			c = mustCollector(t, cfg)
			more := lines("o", 100, 200, 80)
			appendFile(t, path, more)
			waitHeld(t, st, "app.log", first+more)
			waitStats(t, c, func(s collector.Stats) error {
				if s.AckedBytes != uint64(len(more)) {
					return fmt.Errorf("Stats().AckedBytes = %d, want %d", s.AckedBytes, len(more))
				}
				return nil
			})
			if !strings.Contains(logs.String(), "digest replayed from the file") {
				t.Errorf("the record without digest was not replayed")
			}
			if !lie {
				noMismatch(t, c)
				return
			}
			if s := c.c.Status(); len(s.Mismatched) != 1 || s.Mismatched[0].Offset != uint64(len(first)) {
				t.Errorf("lying processor: mismatches %+v, want one at offset %d", s.Mismatched, len(first))
			}
		})
	}
}

// stripDigests makes the offsets DB at path look written by a collector
// that knew no digests.
func stripDigests(t *testing.T, path string) {
	t.Helper()
	db, err := offsets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.Load()
	if err != nil || len(recs) == 0 {
		t.Fatalf("Load = %d records, %v", len(recs), err)
	}
	for i := range recs {
		recs[i].Digest, recs[i].HasDigest = 0, false
	}
	if err := db.Put(recs, nil); err != nil {
		t.Fatal(err)
	}
}

// TestAdoptedDigestProvenBeforeDelete: an offsets DB without digests whose
// acknowledged part is too long to replay at once (before Open, and at
// Opened: more than two windows).
// The collector takes the processor's digest, and before it deletes the
// file once rotated it replays the whole file: an honest processor's
// digest is proven and the file deleted; a lying one is caught and the
// file kept.
func TestAdoptedDigestProvenBeforeDelete(t *testing.T) {
	for _, lie := range []bool{false, true} {
		t.Run(fmt.Sprintf("lie=%v", lie), func(t *testing.T) {
			st := peer.NewStore()
			f := mustStore(t, st, true, func(n int) peer.Conduct {
				if n > 0 && lie {
					return peer.Conduct{LieFrom: 1}
				}
				return peer.Conduct{}
			})
			src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
			cfg := baseConfig(t, src, db, f.addr)
			cfg.ChunkBytes, cfg.MaxLineBytes, cfg.WindowBytes = 4096, 4096, 4096
			cfg.RotateSize = 0
			c := mustCollector(t, cfg)
			path := filepath.Join(src, "app.log")
			first := lines("p", 0, 300, 100) // 30,000 bytes: past two windows
			appendFile(t, path, first)
			waitHeld(t, st, "app.log", first)
			waitStats(t, c, func(s collector.Stats) error {
				if s.AckedBytes != uint64(len(first)) {
					return fmt.Errorf("Stats().AckedBytes = %d, want %d", s.AckedBytes, len(first))
				}
				return nil
			})
			c.stop()
			stripDigests(t, db)

			var logs harness.LockedBuffer
			cfg.Logger = logTo(t, &logs)
			cfg.RotateSize = 16 << 10
			cc, err := collector.NewWithMaxOpenReplay(cfg, 8<<10) // the 30,000 bytes are too long to replay before Open
			if err != nil {
				t.Fatal(err)
			}
			c = mustRun(t, cc)
			more := lines("p", 300, 310, 100)
			appendFile(t, path, more) // sent, then the file is rotated
			waitHeld(t, st, "app.log", first+more)
			if lie {
				waitStats(t, c, func(s collector.Stats) error {
					if s.MismatchFiles != 1 {
						return fmt.Errorf("Stats().MismatchFiles = %d, want 1", s.MismatchFiles)
					}
					return nil
				})
				waitTicks(t, c, 3)
				if r := rotatedFiles(t, src); len(r) != 1 {
					t.Errorf("rotated files %v, want the mismatched one kept", r)
				}
			} else {
				waitDeleted(t, c, src, 1)
				if !strings.Contains(logs.String(), "proven by a replay of the file") {
					t.Errorf("the digest taken from the processor was not proven by a replay before the deletion")
				}
				noMismatch(t, c)
			}
			if !strings.Contains(logs.String(), "proven by frame checksums only") {
				t.Errorf("the digest was not taken from the processor: the test proves nothing")
			}
		})
	}
}
