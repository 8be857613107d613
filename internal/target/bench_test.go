package target_test

import (
	"bytes"
	"fmt"
	"testing"

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

// BenchmarkCommitManyFiles commits one 1 KiB append to each of 100 files,
// the shape of a commit on a processor with many collectors: its cost is
// the fsyncs, run one at a time ("serial") or several at once.
func BenchmarkCommitManyFiles(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
	}{{"serial", 1}, {"parallel", 32}} {
		b.Run(bc.name, func(b *testing.B) {
			defer target.SetParallelSyncs(target.SetParallelSyncs(bc.n))
			const files = 100
			d := mustOpen(b, b.TempDir())
			o := &owner{"bench"}
			streams := make([]*target.Stream, files)
			for i := range streams {
				streams[i], _, _ = mustAttach(b, d, key("bench", i), fmt.Sprintf("f%03d.log", i), 0, o)
			}
			p := payload(1 << 10)
			var off uint64
			for b.Loop() {
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
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/files, "µs/file")
		})
	}
}
