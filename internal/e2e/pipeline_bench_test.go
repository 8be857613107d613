//go:build unix

package e2e_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"thunder/internal/collector"
	"thunder/internal/linecheck"
	"thunder/internal/processor"
)

// BenchmarkPipeline ships a file of 100-byte lines through an in-process
// collector and processor on loopback, from the file's appearance until the
// processor acknowledged every byte (fsync and state record included). It
// measures the code, not process start-up; `make bench` runs the
// real-binary suite.
func BenchmarkPipeline(b *testing.B) {
	const fileBytes = (256 << 20) / 100 * 100 // whole 100-byte lines
	src := filepath.Join(b.TempDir(), "corpus.log")
	writeCorpus(b, src, fileBytes)
	b.SetBytes(fileBytes)
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		srcDir, dstDir := filepath.Join(root, "src"), filepath.Join(root, "dst")
		for _, d := range []string{srcDir, dstDir} {
			if err := os.Mkdir(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		pcfg := processor.DefaultConfig()
		pcfg.TargetDir, pcfg.Logger = dstDir, log
		p, err := processor.New(pcfg)
		if err != nil {
			b.Fatal(err)
		}
		ccfg := collector.DefaultConfig()
		ccfg.Name, ccfg.SourceDir, ccfg.OffsetsDB = "bench", srcDir, filepath.Join(root, "offsets.db")
		ccfg.Targets, ccfg.Logger, ccfg.RotateSize = []string{ln.Addr().String()}, log, 0
		c, err := collector.New(ccfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		pdone, cdone := make(chan error, 1), make(chan error, 1)
		go func() { pdone <- p.Serve(ctx, ln) }()
		go func() { cdone <- c.Run(ctx) }()
		for !c.Stats().Connected {
			time.Sleep(time.Millisecond)
		}
		if err := os.Link(src, filepath.Join(srcDir, "bulk.log")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for c.Stats().AckedBytes < fileBytes {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		if err := <-cdone; err != nil {
			b.Fatal(err)
		}
		if err := <-pdone; err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		_ = p.Close()
		b.StartTimer()
	}
}

func writeCorpus(b *testing.B, path string, size int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 0, 1<<20)
	for seq, n := uint64(0), 0; n < size; seq++ {
		if buf, err = linecheck.AppendLine(buf, "bench", seq, 100); err != nil {
			b.Fatal(err)
		}
		n += 100
		if len(buf) >= 1<<20-100 || n >= size {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	runtime.GC() // the benchmark measures the pipeline, not this
}
