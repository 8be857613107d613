//go:build unix

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// Every test writes a few tens of thousands of lines at a few thousand
// lines per second, so that it finishes well within a minute on a loaded
// two-core machine with -race, and injects its faults while writing.
const (
	linesPerWriter = 12_000
	writerRate     = 2_000 // lines per second per writer
	faults         = 5     // kills or restarts per test
)

var contracts = []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend, linecheck.Unlocked}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
}

// mixedWriters returns n writers into dir, one file each at increasing
// depths, cycling through the write contracts.
func mixedWriters(prefix, dir string, n int) []writerSpec {
	names := []string{"a.log", "sub/b.log", "sub/deep/c.log", "d.log", "other/e.log", "sub/f.log"}
	specs := make([]writerSpec, n)
	for i := range specs {
		specs[i] = writerSpec{
			ID: fmt.Sprintf("%s%d", prefix, i), Dir: dir, Name: names[i%len(names)],
			Contract: contracts[i%len(contracts)], Lines: linesPerWriter, Rate: writerRate,
		}
	}
	return specs
}

func offsetsDB(t *testing.T) string {
	return filepath.Join(t.TempDir(), "offsets.db")
}

// TestTwoCollectors ships two source dirs whose files partly share names,
// so lines of both collectors meet in the same target files, from files
// that exist before the collectors start and files created after.
func TestTwoCollectors(t *testing.T) {
	skipShort(t)
	target, srcA, srcB := t.TempDir(), t.TempDir(), t.TempDir()
	spec := func(id, dir, name string, c linecheck.Contract) writerSpec {
		return writerSpec{ID: id, Dir: dir, Name: name, Contract: c, Lines: linesPerWriter, Rate: writerRate}
	}
	before := []writerSpec{
		spec("A-a", srcA, "a.log", linecheck.OpenWriteClose),
		spec("A-b", srcA, "sub/b.log", linecheck.LockedAppend),
		spec("B-a", srcB, "a.log", linecheck.LockedAppend),
		spec("B-d", srcB, "other/d.log", linecheck.Unlocked),
	}
	after := []writerSpec{
		spec("A-c", srcA, "sub/deep/c.log", linecheck.Unlocked),
		spec("B-b", srcB, "sub/b.log", linecheck.OpenWriteClose), // srcB/sub does not exist yet
	}
	w := startWriters(t, before...)
	for _, s := range before {
		waitFile(t, 10*time.Second, filepath.Join(s.Dir, s.Name), 100*linecheck.DefaultLineBytes)
	}

	p := startProcessor(t, target)
	ca := startCollector(t, "A", srcA, offsetsDB(t), p.Addr)
	cb := startCollector(t, "B", srcB, offsetsDB(t), p.Addr)
	waitLines(t, 30*time.Second, target, 1, p, ca, cb)
	w.Add(after...)

	expect := w.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, ca, cb)
	ca.Stop()
	cb.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	for _, name := range []string{"a.log", "sub/b.log", "sub/deep/c.log", "other/d.log"} {
		if _, err := os.Stat(filepath.Join(target, filepath.FromSlash(name))); err != nil {
			t.Errorf("target: %v", err)
		}
	}
}

// TestCollectorKill9 kills the collector with SIGKILL at random moments
// while writers append, and restarts it each time.
func TestCollectorKill9(t *testing.T) {
	skipShort(t)
	rnd := newRand(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	w := startWriters(t, mixedWriters("w", src, 5)...)

	for range faults {
		pause(t, between(rnd, 200*time.Millisecond, 1500*time.Millisecond))
		c.Kill()
		c.Restart()
	}
	expect := w.Wait()
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: lines=%d collector kills=%d dup=%d", r.Lines, faults, r.Dup)
}

// TestProcessorKill9 kills the processor with SIGKILL at random moments
// while writers append, and restarts it on the same port and target dir.
func TestProcessorKill9(t *testing.T) {
	skipShort(t)
	rnd := newRand(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	w := startWriters(t, mixedWriters("w", src, 5)...)

	for range faults {
		pause(t, between(rnd, 200*time.Millisecond, 1500*time.Millisecond))
		p.Kill()
		p.Restart()
	}
	expect := w.Wait()
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	if !c.Running() {
		t.Fatal("collector exited while the processor restarted")
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: lines=%d processor kills=%d dup=%d", r.Lines, faults, r.Dup)
}

// TestConnectionCuts cuts every connection between collector and processor
// at random moments; the collector must reconnect, never exit.
func TestConnectionCuts(t *testing.T) {
	skipShort(t)
	const cuts = 12
	rnd := newRand(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	proxy := newProxy(t, p.Addr)
	c := startCollector(t, "host", src, offsetsDB(t), proxy.Addr)
	w := startWriters(t, mixedWriters("w", src, 5)...)

	live := 0
	for range cuts {
		pause(t, between(rnd, 100*time.Millisecond, 700*time.Millisecond))
		if proxy.CutAll() > 0 {
			live++
		}
		if !c.Running() {
			t.Fatal("collector exited after a connection cut")
		}
	}
	expect := w.Wait()
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	if !c.Running() {
		t.Fatal("collector exited after connection cuts")
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: lines=%d cuts=%d (%d of live connections) connections=%d dup=%d",
		r.Lines, cuts, live, proxy.Pairs(), r.Dup)
	if live == 0 {
		t.Error("no cut hit a live connection")
	}
}

// TestReopenOnSIGHUP rotates a target file logrotate-style (rename, then
// signal) with SIGHUP and then SIGUSR1: the processor must create a fresh
// file and stop writing to the renamed one.
func TestReopenOnSIGHUP(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	const lines = 20_000 // long enough to still be writing after two rotations
	w := startWriters(t,
		writerSpec{ID: "x", Dir: src, Name: "x.log", Contract: linecheck.LockedAppend, Lines: lines, Rate: writerRate},
		writerSpec{ID: "y", Dir: src, Name: "y.log", Contract: linecheck.OpenWriteClose, Lines: lines, Rate: writerRate},
	)
	xlog := filepath.Join(target, "x.log")
	waitFile(t, 30*time.Second, xlog, 100*linecheck.DefaultLineBytes, p, c)

	sizes := map[string]int64{} // rotated file -> size once the processor let go
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		if _, err := os.Stat(xlog + ".1"); err == nil {
			if err := os.Rename(xlog+".1", xlog+".2"); err != nil {
				t.Fatal(err)
			}
			sizes["x.log.2"] = sizes["x.log.1"]
		}
		if err := os.Rename(xlog, xlog+".1"); err != nil {
			t.Fatal(err)
		}
		p.Signal(sig)
		// The processor writes to a fresh x.log once it has reopened; from
		// then on the renamed file must not grow.
		harness.WaitFor(t, 10*time.Second, func() error {
			if fi, err := os.Stat(xlog); err != nil || fi.Size() < linecheck.DefaultLineBytes {
				return fmt.Errorf("no fresh x.log after %v (%v)\n%s", sig, err, listing(target))
			}
			return nil
		}, p, c)
		fi, err := os.Stat(xlog + ".1")
		if err != nil {
			t.Fatal(err)
		}
		sizes["x.log.1"] = fi.Size()
		t.Logf("%v: x.log reopened; x.log.1 holds %d bytes", sig, fi.Size())
	}
	expect := w.Wait()
	opt := linecheck.Options{Alias: unrotated}
	waitDelivered(t, target, expect, opt, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, opt)
	for name, size := range sizes {
		fi, err := os.Stat(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != size {
			t.Errorf("%s grew from %d to %d bytes after the reopen", name, size, fi.Size())
		}
	}
}

// TestGracefulStop stops both daemons with SIGTERM mid-stream, in both
// orders; each must exit 0, and once restarted every line arrives exactly
// once.
func TestGracefulStop(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	w := startWriters(t, mixedWriters("w", src, 4)...)

	waitLines(t, 30*time.Second, target, 1000, p, c)
	c.Stop()
	p.Stop()
	p.Restart()
	c.Restart()

	waitLines(t, 30*time.Second, target, 10_000, p, c)
	p.Stop() // the collector now reconnects until the processor is back
	c.Stop()
	p.Restart()
	c.Restart()

	expect := w.Wait()
	r := waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	t.Logf("figures: lines=%d graceful restarts=2 dup=%d", r.Lines, r.Dup)
}
