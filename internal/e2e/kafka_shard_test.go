//go:build unix

package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"thunder/internal/linecheck"
	"thunder/internal/shard"
)

// TestKafkaTwoProcessorsKill9 shards one collector's files over two
// Kafka-only processors writing to the same cluster, and kills -9 each in
// turn. PROTOCOL.md §11.5: a read_committed consumer reads every line;
// copies, if a failover made any, carry the (stream, offset) headers of
// the first, and there are at most one window per failover.
func TestKafkaTwoProcessorsKill9(t *testing.T) {
	skipShort(t)
	c := startKafka(t)
	var procs []*Daemon
	var addrs []string
	for i := range 2 {
		p := startKafkaProcessor(t, c, "", fmt.Sprintf("--name=kp%d", i))
		p.Name = fmt.Sprintf("processor-%d", i)
		procs, addrs = append(procs, p), append(addrs, p.Addr)
	}
	src := t.TempDir()
	col := startCollector(t, "host", src, offsetsDB(t), strings.Join(addrs, ","),
		fmt.Sprintf("--window-bytes=%d", shardWindow), "--chunk-bytes=64KiB", "--max-line-bytes=64KiB")
	// Two names ranked first on each processor.
	var specs []writerSpec
	perProc := make([]int, 2)
	for i := 0; len(specs) < 4; i++ {
		name := fmt.Sprintf("k%02d.log", i)
		if first := shard.Rank(name, addrs)[0]; perProc[first] < 2 {
			perProc[first]++
			specs = append(specs, writerSpec{ID: fmt.Sprintf("w%d", len(specs)), Dir: src, Name: name,
				Contract: contracts[len(specs)%len(contracts)], Lines: linesPerWriter, Rate: writerRate})
		}
	}
	w := startWriters(t, specs...)
	r := newKafkaReader(t, c, true, true, writerNames(specs)...)
	running := append([]*Daemon{col}, procs...)

	rnd := newRand(t)
	const kills = 4
	for k := range kills {
		p := procs[k%2]
		pause(t, between(rnd, 300*time.Millisecond, 1200*time.Millisecond))
		p.Kill()
		pause(t, between(rnd, 200*time.Millisecond, 800*time.Millisecond)) // its files fail over meanwhile
		p.Restart()
	}
	expect := w.Wait()
	r.waitDelivered(expect, running...)
	for _, d := range running {
		d.Stop()
	}
	rep := r.finalCheck(expect)
	bound := kills * shardWindow / linecheck.DefaultLineBytes
	if r.Dups > bound {
		t.Errorf("%d lines read twice; documented bound is one window per failover: %d", r.Dups, bound)
	}
	t.Logf("figures: lines=%d records=%d processors=2 kills=%d copies by (stream, offset)=%d (bound %d)", rep.Lines, r.Recs, kills, r.Dups, bound)
}
