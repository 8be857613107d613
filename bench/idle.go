//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"thunder/internal/linecheck"
)

// idleFiles is the number of files of the idle and files scenarios.
const idleFiles = 10_000

// idleResult is the idle scenario.
type idleResult struct {
	collCores, procCores float64
	collMiB              float64
	deliver              time.Duration
}

// runIdle puts 10,000 small files in the source dir, starts the daemons,
// waits until every file is delivered, lets them settle and measures the
// collector's and processor's CPU over a window (one rescan of the source
// dir falls in a 10 s window) and their resident set.
func (b *bench) runIdle() error {
	dir, err := b.scratch("idle")
	if err != nil {
		return err
	}
	defer b.drop(dir)
	cfg := pairConfig{bin: b.bin, dir: dir}
	const linesPerFile = 10
	if err := writeFiles(cfg.src(), idleFiles, linesPerFile, 10, 16); err != nil {
		return err
	}
	start := time.Now()
	p, err := startPair(b.ctx, cfg)
	if err != nil {
		return err
	}
	defer p.kill()
	want := int64(idleFiles * linesPerFile * lineBytes)
	if err := waitTree(cfg.dst(), idleFiles, want, 30*time.Second, 10*time.Minute); err != nil {
		return err
	}
	deliver := time.Since(start)
	time.Sleep(2 * time.Second) // acks recorded, offsets saved, files closed
	q, busy := b.quiet()
	c0, p0, err1 := p.cpu()
	time.Sleep(b.idleFor)
	c1, p1, err2 := p.cpu()
	rss, err3 := statusKiB(p.coll.pid(), "VmRSS")
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	if _, _, err := p.stop(); err != nil {
		return err
	}
	r := idleResult{collCores: (c1 - c0) / b.idleFor.Seconds(), procCores: (p1 - p0) / b.idleFor.Seconds(),
		collMiB: float64(rss) / 1024, deliver: deliver}
	b.idle = r
	b.rep.result("idle", kv{"files", idleFiles}, kv{"window_s", b.idleFor}, kv{"cpu_collector_cores", r.collCores},
		kv{"cpu_processor_cores", r.procCores}, kv{"rss_collector_MiB", r.collMiB}, kv{"startup_delivery_s", deliver}, kv{"quiet", q})
	b.rep.add("idle, 10,000 files", fmt.Sprintf("collector CPU over %v", b.idleFor), fmt.Sprintf("%.2f%% of a core", 100*r.collCores), "",
		fmt.Sprintf("processor %.2f%%; collector RSS %.0f MiB %s", 100*r.procCores, r.collMiB, quietNote(q, busy)))
	b.rep.add("idle, 10,000 files", "startup with 10,000 files waiting → all delivered", fmt.Sprintf("%.2f s", deliver.Seconds()), "", "")
	return nil
}

// writeFiles writes n files f00000.log… of lines linecheck lines each,
// writer id = file stem, with workers goroutines, writesPerFile write(2)s
// per file (open O_APPEND, write, close each time: contract 1).
func writeFiles(dir string, n, lines, writesPerFile, workers int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	jobs := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var buf []byte
			for i := range jobs {
				id := fileID(i)
				path := filepath.Join(dir, id+".log")
				per := max(lines/writesPerFile, 1)
				for seq := 0; seq < lines; seq += per {
					buf = buf[:0]
					for s := seq; s < min(seq+per, lines); s++ {
						var err error
						if buf, err = linecheck.AppendLine(buf, id, uint64(s), lineBytes); err != nil {
							errc <- err
							return
						}
					}
					if err := appendFile(path, buf); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	var err error
	for i := range n {
		select {
		case jobs <- i:
			continue
		case err = <-errc:
		}
		break
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errc:
	default:
	}
	return err
}

func fileID(i int) string { return fmt.Sprintf("f%05d", i) }

func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Close())
}

// waitTree polls dir (outside .thunder) every 100 ms until it holds files
// regular files with bytes bytes in all. It fails when the total has not
// changed for stall or timeout has passed.
func waitTree(dir string, files int, bytes int64, stall, timeout time.Duration) error {
	start := time.Now()
	last, lastChange := int64(-1), start
	for {
		n, size := treeSize(dir)
		if n >= files && size >= bytes {
			return nil
		}
		now := time.Now()
		if size != last {
			last, lastChange = size, now
		}
		if now.Sub(lastChange) > stall || now.Sub(start) > timeout {
			return fmt.Errorf("%s holds %d files, %d of %d bytes after %v", dir, n, size, bytes, now.Sub(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func treeSize(dir string) (files int, bytes int64) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file that vanished is not counted
		}
		if d.IsDir() && d.Name() == linecheck.StateDir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				files++
				bytes += fi.Size()
			}
		}
		return nil
	})
	return files, bytes
}
