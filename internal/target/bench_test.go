package target_test

import (
	"bytes"
	"testing"
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
		if err := s.Append(d, o, off, end, p); err != nil {
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
			if err := s.Append(d, o, off, end, p); err != nil {
				b.Fatal(err)
			}
			off = end
		}
		acks, err := d.Commit()
		if err != nil || len(acks) != 1 || acks[0].Offset != off {
			b.Fatalf("Commit() = %v, %v; want one ack at %d", acks, err, off)
		}
	}
}
