//go:build unix

package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/linecheck"
	"thunder/internal/shard"
)

// shardWindow is the collectors' --window-bytes in TestThreeProcessorsKill9:
// small, so that the documented bound on duplicates across a failover (at
// most one window per collector and failover) is tight enough to test.
const shardWindow = 256 << 10

// shardRig is three processors, optionally each behind a proxy, and two
// collectors whose writers append to six names, two ranked first on each
// processor, every name written on both collectors.
type shardRig struct {
	t       *testing.T
	procs   []*Daemon
	proxies []*Proxy // nil without proxies
	dirs    []string
	addrs   []string // as the collectors know them
	names   []string
	ca, cb  *Daemon
	srcA    string
	running []*Daemon
	w       *writers
}

func newShardRig(t *testing.T, viaProxy bool) *shardRig {
	r := &shardRig{t: t}
	for i := range 3 {
		dir := t.TempDir()
		p := startProcessor(t, dir)
		p.Name = fmt.Sprintf("processor-%d", i)
		addr := p.Addr
		if viaProxy {
			px := newProxy(t, p.Addr)
			r.proxies, addr = append(r.proxies, px), px.Addr
		}
		r.procs, r.dirs, r.addrs = append(r.procs, p), append(r.dirs, dir), append(r.addrs, addr)
	}
	targets := strings.Join(r.addrs, ",")
	srcA, srcB := t.TempDir(), t.TempDir()
	args := []string{fmt.Sprintf("--window-bytes=%d", shardWindow), "--chunk-bytes=64KiB", "--max-line-bytes=64KiB", "--admin-address=127.0.0.1:0"}
	r.ca = startCollector(t, "A", srcA, offsetsDB(t), targets, args...)
	r.cb = startCollector(t, "B", srcB, offsetsDB(t), targets, args...)
	r.srcA = srcA
	// Ports are random, so names are picked by their ranking.
	perProc := make([]int, 3)
	for i := 0; len(r.names) < 6; i++ {
		name := fmt.Sprintf("f%02d.log", i)
		if first := shard.Rank(name, r.addrs)[0]; perProc[first] < 2 {
			perProc[first]++
			r.names = append(r.names, name)
		}
	}
	var specs []writerSpec
	for i, name := range r.names {
		for j, src := range []string{srcA, srcB} {
			specs = append(specs, writerSpec{
				ID: fmt.Sprintf("%c%d", 'A'+j, i), Dir: src, Name: name,
				Contract: contracts[(2*i+j)%len(contracts)], Lines: linesPerWriter, Rate: writerRate,
			})
		}
	}
	r.w = startWriters(t, specs...)
	r.running = append([]*Daemon{r.ca, r.cb}, r.procs...)
	harness.WaitFor(t, 30*time.Second, func() error {
		for i, d := range r.dirs {
			if dirBytes(d) == 0 {
				return fmt.Errorf("processor %d has received nothing yet", i)
			}
		}
		return nil
	}, r.running...)
	return r
}

// check waits for the writers and for delivery, checks failback, stops
// everything and verifies the contract of PROTOCOL.md §11 after failovers.
func (r *shardRig) check(failovers int) {
	t := r.t
	expect := r.w.Wait()
	deadline := time.Now().Add(deliverTimeout)
	for {
		rep, err := linecheck.VerifyAll(r.dirs, expect, linecheck.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Complete() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after %v: %v\n%s", deliverTimeout, rep, problems(rep))
		}
		if err := harness.Exited(r.running...); err != nil {
			t.Fatalf("%v\nnot delivered: %v", err, rep)
		}
		pause(t, pollInterval)
	}
	expect = append(expect, r.failback()...)
	for _, d := range r.running {
		d.Stop()
	}
	rep, err := linecheck.VerifyAll(r.dirs, expect, linecheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || rep.Corrupt+rep.Partial+rep.Misplaced+rep.Unexpected+rep.Reordered != 0 {
		t.Fatalf("union of the three targets: %v\n%s", rep, problems(rep))
	}
	for i, d := range r.dirs {
		one, err := linecheck.Verify(d, expect, linecheck.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if one.Failed() || one.Partial != 0 {
			t.Errorf("processor %d alone (exactly-once per processor): %v\n%s", i, one, problems(one))
		}
	}
	bound := failovers * 2 * shardWindow / linecheck.DefaultLineBytes
	if rep.Dup > bound {
		t.Errorf("%d lines on two processors; documented bound is one window per collector and failover: %d", rep.Dup, bound)
	}
	t.Logf("figures: lines=%d processors=3 failovers=%d dup across processors=%d (bound %d) per-processor: %s",
		rep.Lines, failovers, rep.Dup, bound, perDir(r.dirs))
}

// failback waits until both collectors are connected to all three
// processors again, then writes to every name and checks that those lines
// go to the name's first choice only. It returns what it wrote.
func (r *shardRig) failback() []linecheck.Expect {
	t := r.t
	for _, c := range []*Daemon{r.ca, r.cb} {
		addr := adminAddr(t, c)
		harness.WaitFor(t, 30*time.Second, func() error {
			code, body, err := httpGet(addr, "/status")
			if err != nil || code != 200 {
				return fmt.Errorf("status: %d %v", code, err)
			}
			var st collector.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return err
			}
			for _, p := range st.Processors {
				if !p.Connected {
					return fmt.Errorf("%s: %s not connected again", c.Name, p.Addr)
				}
			}
			return nil
		}, r.running...)
	}
	var late []writerSpec
	for i, name := range r.names {
		late = append(late, writerSpec{
			ID: fmt.Sprintf("late%d", i), Dir: r.srcA, Name: name,
			Contract: linecheck.OpenWriteClose, Lines: 200, Rate: writerRate,
		})
	}
	lateExpect := startWriters(t, late...).Wait()
	harness.WaitFor(t, deliverTimeout, func() error {
		for _, e := range lateExpect {
			first := shard.Rank(e.Name, r.addrs)[0]
			for i, d := range r.dirs {
				n, err := linesOf(filepath.Join(d, e.Name), e.Writer)
				if err != nil {
					return err
				}
				switch {
				case i == first && n != int(e.Lines):
					return fmt.Errorf("processor %d (first choice of %s) holds %d of %d lines written after all were back", i, e.Name, n, e.Lines)
				case i != first && n != 0:
					t.Fatalf("processor %d holds %d lines of %s written after all were back; only processor %d should", i, n, e.Name, first)
				}
			}
		}
		return nil
	}, r.running...)
	return lateExpect
}

// TestThreeProcessorsKill9 shards two collectors' files over three
// processors and kills -9 each processor once while writers append, then
// restarts it. Checked (PROTOCOL.md §11): every line is somewhere; no
// processor holds a line twice or out of order; lines held by two
// processors are at most one window per collector and failover; once all
// are back, lines go to each name's first choice again.
func TestThreeProcessorsKill9(t *testing.T) {
	skipShort(t)
	r := newShardRig(t, false)
	r.faults(func(i int) { r.procs[i].Kill() }, func(i int) { r.procs[i].Restart() })
}

// TestThreeProcessorsPartition cuts each processor off the network for a
// while, alive: it commits what it had received, but the acknowledgements
// are lost, so the lines in flight are also sent to the next processor.
// These are the duplicates PROTOCOL.md §11 allows; the test checks their
// bound and the rest of the contract as TestThreeProcessorsKill9 does.
func TestThreeProcessorsPartition(t *testing.T) {
	skipShort(t)
	r := newShardRig(t, true)
	r.faults(func(i int) { r.proxies[i].Partition() }, func(i int) { r.proxies[i].Heal() })
}

// TestThreeProcessorsCollectorKill9 kills -9 the collectors while all
// processors are up: a restarted collector must send each name to its
// first choice again, not to whichever processor answers first, so no
// line may end up on two processors.
func TestThreeProcessorsCollectorKill9(t *testing.T) {
	skipShort(t)
	r := newShardRig(t, false)
	rnd := newRand(t)
	for k := range 4 {
		c := []*Daemon{r.ca, r.cb}[k%2]
		pause(t, between(rnd, 300*time.Millisecond, 1200*time.Millisecond))
		c.Kill()
		c.Restart()
	}
	r.check(0)
}

// TestThreeProcessorsRestart stops each processor cleanly (SIGTERM) and
// starts it again: it acknowledges everything it wrote before it exits, so
// its files fail over and come back without a line on two processors.
func TestThreeProcessorsRestart(t *testing.T) {
	skipShort(t)
	r := newShardRig(t, false)
	rnd := newRand(t)
	for _, p := range r.procs {
		pause(t, between(rnd, 300*time.Millisecond, 1200*time.Millisecond))
		p.Stop()
		pause(t, between(rnd, 300*time.Millisecond, 1000*time.Millisecond))
		p.Restart()
	}
	r.check(0)
}

// faults takes each processor down once, at random moments while the
// writers append, and back up after a random while; then checks.
func (r *shardRig) faults(down, up func(i int)) {
	rnd := newRand(r.t)
	for i := range r.procs {
		pause(r.t, between(rnd, 300*time.Millisecond, 1200*time.Millisecond))
		down(i)
		pause(r.t, between(rnd, 300*time.Millisecond, 1000*time.Millisecond))
		up(i)
	}
	r.check(len(r.procs))
}

// linesOf counts the lines of writer in the file at path (0 if none).
func linesOf(path, writer string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range bytes.Lines(b) {
		if bytes.HasPrefix(line, []byte(writer+" ")) {
			n++
		}
	}
	return n, nil
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
