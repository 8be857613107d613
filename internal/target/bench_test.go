package target_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"thunder/internal/target"
)

// payload returns size bytes of 100-byte lines.
func payload(size int) []byte {
	line := append(bytes.Repeat([]byte("x"), 99), '\n')
	return bytes.Repeat(line, size/len(line))
}

func BenchmarkAppend(b *testing.B) {
	d := mustOpen(b, b.TempDir())
	o := &owner{"bench"}
	s, _, _ := mustAttach(b, d, key("bench", 1), "bench.log", 0, o)
	p := payload(1 << 20)
	b.SetBytes(int64(len(p)))
	var off uint64
	for b.Loop() {
		end := off + uint64(len(p))
		if err := s.Append(o, chunk(off, end, p)); err != nil {
			b.Fatal(err)
		}
		off = end
	}
}

func BenchmarkAppendCommit(b *testing.B) {
	d := mustOpen(b, b.TempDir())
	o := &owner{"bench"}
	s, _, _ := mustAttach(b, d, key("bench", 1), "bench.log", 0, o)
	p := payload(1 << 20)
	b.SetBytes(8 * int64(len(p)))
	var off uint64
	for b.Loop() {
		for range 8 {
			end := off + uint64(len(p))
			if err := s.Append(o, chunk(off, end, p)); err != nil {
				b.Fatal(err)
			}
			off = end
		}
		acks, err := d.Commit()
		if err != nil || len(acks) != 1 || acks[0].At.Offset != off {
			b.Fatalf("Commit() = %v, %v; want one ack at %d", acks, err, off)
		}
	}
}

// BenchmarkCommitManyFiles commits one 1 KiB append to each of n files,
// the shape of a commit on a processor with many collectors: its cost is
// making the files durable, with an fsync each, one at a time ("serial")
// or 32 at once ("parallel"), or with one syncfs(2) of the file system.
func BenchmarkCommitManyFiles(b *testing.B) {
	for _, files := range []int{10, 100, 1000, 10000} {
		for _, bc := range []struct {
			name      string
			parallel  int
			syncfsMin int
		}{{"serial", 1, 1 << 30}, {"parallel", 32, 1 << 30}, {"syncfs", 32, 1}} {
			if bc.name == "serial" && files > 1000 {
				continue // minutes per iteration
			}
			b.Run(fmt.Sprintf("files=%d/%s", files, bc.name), func(b *testing.B) {
				defer target.SetParallelSyncs(target.SetParallelSyncs(bc.parallel))
				defer target.SetSyncfsMin(target.SetSyncfsMin(bc.syncfsMin))
				commitManyFiles(b, files)
			})
		}
	}
}

func commitManyFiles(b *testing.B, files int) {
	d := mustOpen(b, b.TempDir())
	o := &owner{"bench"}
	streams := make([]*target.Stream, files)
	for i := range streams {
		streams[i], _, _ = mustAttach(b, d, key("bench", i), fmt.Sprintf("d%02d/f%05d.log", i%100, i), 0, o)
	}
	p := payload(1 << 10)
	var off uint64
	appendAll := func() {
		end := off + uint64(len(p))
		for _, s := range streams {
			if err := s.Append(o, chunk(off, end, p)); err != nil {
				b.Fatal(err)
			}
		}
		off = end
		if acks, err := d.Commit(); err != nil || len(acks) != files {
			b.Fatalf("Commit() = %d acks, %v; want %d", len(acks), err, files)
		}
	}
	appendAll() // opens (creates) every file: not what is measured
	var syncs, records time.Duration
	for b.Loop() {
		appendAll()
		s, r := d.LastCommitTimings()
		syncs, records = syncs+s, records+r
	}
	perFile := func(t time.Duration) float64 { return float64(t.Microseconds()) / float64(b.N) / float64(files) }
	b.ReportMetric(perFile(b.Elapsed()), "µs/file")
	b.ReportMetric(perFile(syncs), "sync-µs/file")
	b.ReportMetric(perFile(records), "record-µs/file")
}
