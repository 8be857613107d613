package tail_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/tail"
)

// BenchmarkRead cuts 1 MiB of 100-byte lines (page cache) into the complete
// lines the collector sends, as its loop does for every chunk: ReadAt into
// a 1 MiB buffer and find the last newline.
func BenchmarkRead(b *testing.B) {
	const chunk = 1 << 20
	line := append(bytes.Repeat([]byte("x"), 99), '\n')
	p := filepath.Join(b.TempDir(), "lines.log")
	if err := os.WriteFile(p, bytes.Repeat(line, 4*chunk/len(line)), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, chunk+1)                     // Read keeps one byte for an added newline
	b.SetBytes(int64(chunk / len(line) * len(line))) // whole lines per read
	var off int64
	for b.Loop() {
		payload, next, res, _, err := tail.Read(f, off, buf, chunk, false)
		if err != nil || res != tail.Lines {
			b.Fatalf("Read(%d) = %v, %v; want lines", off, res, err)
		}
		if len(payload) != chunk/len(line)*len(line) {
			b.Fatalf("Read(%d) cut %d bytes", off, len(payload))
		}
		off = next
		if off >= 3*chunk {
			off = 0
		}
	}
}
