package e2e_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"thunder/internal/linecheck"
	"thunder/internal/shard"
)

// shardWindow is the collectors' --window-bytes in TestThreeProcessorsKill9:
// small, so that the documented bound on duplicates across a failover (at
// most one window per collector and failover) is tight enough to test.
const shardWindow = 256 << 10

// TestThreeProcessorsKill9 shards two collectors' files over three
// processors and kills -9 each processor once while writers append, then
// restarts it. Checked (PROTOCOL.md §11): every line is somewhere; no
// processor holds a line twice or out of order; lines held by two
// processors are at most one window per collector and failover; a
// restarted processor gets its files back.
func TestThreeProcessorsKill9(t *testing.T) {
	skipShort(t)
	rnd := newRand(t)
	var procs []*Daemon
	var dirs, addrs []string
	for i := range 3 {
		dir := t.TempDir()
		p := startProcessor(t, dir)
		p.name = fmt.Sprintf("processor-%d", i)
		procs, dirs, addrs = append(procs, p), append(dirs, dir), append(addrs, p.Addr)
	}
	targets := strings.Join(addrs, ",")
	srcA, srcB := t.TempDir(), t.TempDir()
	args := []string{fmt.Sprintf("--window-bytes=%d", shardWindow), "--chunk-bytes=64KiB", "--max-line-bytes=64KiB"}
	ca := startCollector(t, "A", srcA, offsetsDB(t), targets, args...)
	cb := startCollector(t, "B", srcB, offsetsDB(t), targets, args...)
	// Two names per processor (ports are random, so names are picked by
	// their ranking), each written on both collectors.
	var names []string
	perProc := make([]int, 3)
	for i := 0; len(names) < 6; i++ {
		name := fmt.Sprintf("f%02d.log", i)
		if first := shard.Rank(name, addrs)[0]; perProc[first] < 2 {
			perProc[first]++
			names = append(names, name)
		}
	}
	var specs []writerSpec
	for i, name := range names {
		for j, src := range []string{srcA, srcB} {
			specs = append(specs, writerSpec{
				ID: fmt.Sprintf("%c%d", 'A'+j, i), Dir: src, Name: name,
				Contract: contracts[(2*i+j)%len(contracts)], Lines: linesPerWriter, Rate: writerRate,
			})
		}
	}
	w := startWriters(t, specs...)
	running := append([]*Daemon{ca, cb}, procs...)
	waitFor(t, 30*time.Second, func() error {
		for i, d := range dirs {
			if dirBytes(d) == 0 {
				return fmt.Errorf("processor %d has received nothing yet", i)
			}
		}
		return nil
	}, running...)

	const kills = 3
	for k := range kills {
		p, dir := procs[k%3], dirs[k%3]
		pause(t, between(rnd, 300*time.Millisecond, 1200*time.Millisecond))
		p.Kill()
		pause(t, between(rnd, 300*time.Millisecond, 1000*time.Millisecond))
		p.Restart()
		// Its files come back: what it holds grows again (after recovery cut
		// its uncommitted tail).
		before := dirBytes(dir)
		waitFor(t, 30*time.Second, func() error {
			if n := dirBytes(dir); n <= before {
				return fmt.Errorf("%s holds %d bytes, %d at its restart: its files did not come back", p.name, n, before)
			}
			return nil
		}, running...)
	}
	expect := w.Wait()

	deadline := time.Now().Add(deliverTimeout)
	var r linecheck.Report
	for {
		var err error
		if r, err = linecheck.VerifyAll(dirs, expect, linecheck.Options{}); err != nil {
			t.Fatal(err)
		}
		if r.Complete() || time.Now().After(deadline) {
			break
		}
		if err := exited(running); err != nil {
			t.Fatalf("%v\nnot delivered: %v", err, r)
		}
		pause(t, pollInterval)
	}
	for _, d := range running {
		d.Stop()
	}
	if r, _ = linecheck.VerifyAll(dirs, expect, linecheck.Options{}); !r.Complete() || r.Corrupt+r.Partial+r.Misplaced+r.Unexpected+r.Reordered != 0 {
		t.Fatalf("union of the three targets: %v\n%s", r, problems(r))
	}
	for i, d := range dirs {
		one, err := linecheck.Verify(d, expect, linecheck.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if one.Failed() || one.Partial != 0 {
			t.Errorf("processor %d alone (exactly-once per processor): %v\n%s", i, one, problems(one))
		}
	}
	bound := kills * 2 * shardWindow / linecheck.DefaultLineBytes
	if r.Dup > bound {
		t.Errorf("%d lines on two processors; documented bound is one window per collector and failover: %d", r.Dup, bound)
	}
	t.Logf("figures: lines=%d processors=3 kills=%d dup across processors=%d (bound %d) per-processor: %s",
		r.Lines, kills, r.Dup, bound, perDir(dirs))
}

// dirBytes is the size of the regular files under dir, state excluded.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file may vanish meanwhile; count what is there
		}
		if d.IsDir() && d.Name() == linecheck.StateDir {
			return filepath.SkipDir
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func perDir(dirs []string) string {
	var parts []string
	for i, d := range dirs {
		parts = append(parts, fmt.Sprintf("p%d=%dKiB", i, dirBytes(d)>>10))
	}
	return strings.Join(parts, " ")
}
