//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ceilings are the same-run physical limits the figures are compared with.
type ceilings struct {
	pipe      float64 // MiB/s: file → loopback TCP → file + fsync
	pipeNoSyn float64 // MiB/s: the same, the time before the fsync
	read      float64 // MiB/s: page-cache read of the corpus
	fsyncP50  time.Duration
	fsyncP99  time.Duration
}

// measureCeilings measures, in this process: page-cache read speed of the
// corpus, the corpus through one loopback TCP connection into a file with an
// fsync at the end (median of runs), and the latency of a 4 KiB append +
// fdatasync in dir.
func (b *bench) measureCeilings() error {
	c := &b.ceil
	var reads, pipes, nosync []float64
	// One unmeasured pass first: on this VM the first write to page-cache
	// pages never used before is several times slower (the host backs guest
	// memory on first touch), and the daemons' target files reuse the pages
	// the ceiling freed, so the ceiling must not be the only one to pay it.
	if _, _, err := loopbackCopy(b.corpus, filepath.Join(b.work, "ceiling.out")); err != nil {
		return err
	}
	for range b.runs {
		b.quiet()
		t := time.Now()
		n, err := readAll(b.corpus, 1<<20)
		if err != nil {
			return err
		}
		reads = append(reads, mibps(n, time.Since(t)))
		b.quiet()
		total, beforeSync, err := loopbackCopy(b.corpus, filepath.Join(b.work, "ceiling.out"))
		if err != nil {
			return err
		}
		pipes = append(pipes, mibps(b.corpusBytes, total))
		nosync = append(nosync, mibps(b.corpusBytes, beforeSync))
	}
	c.read, c.pipe, c.pipeNoSyn = median(reads), median(pipes), median(nosync)
	q, busy := b.quiet()
	p50, p99, ops, err := fsyncLatency(filepath.Join(b.work, "fsync.dat"), 4096, 2*time.Second)
	if err != nil {
		return err
	}
	c.fsyncP50, c.fsyncP99 = p50, p99
	b.rep.result("ceiling", kv{"what", "file-tcp-file-fsync"}, kv{"MiBps", c.pipe}, kv{"MiBps_before_fsync", c.pipeNoSyn},
		kv{"runs", fmt.Sprint(pipes)}, kv{"bytes", b.corpusBytes})
	b.rep.result("ceiling", kv{"what", "read-pagecache"}, kv{"MiBps", c.read}, kv{"runs", fmt.Sprint(reads)})
	b.rep.result("ceiling", kv{"what", "fdatasync-4KiB"}, kv{"p50_ms", ms(p50)}, kv{"p99_ms", ms(p99)}, kv{"ops_per_s", ops}, kv{"quiet", q})
	b.rep.add("ceiling", "loopback TCP → file + fsync (Go, read/write 256 KiB)", fmt.Sprintf("%.0f MiB/s", c.pipe), "1.00×",
		fmt.Sprintf("median of %d; %.0f MiB/s before the fsync", b.runs, c.pipeNoSyn))
	b.rep.add("ceiling", "page-cache read of the corpus", fmt.Sprintf("%.0f MiB/s", c.read), ratio(c.read, c.pipe), "")
	b.rep.add("ceiling", "append 4 KiB + fdatasync", fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", ms(p50), ms(p99)), "",
		fmt.Sprintf("%.0f ops/s; the floor of any commit %s", ops, quietNote(q, busy)))
	return nil
}

// loopbackCopy sends src through one loopback TCP connection, reader
// goroutine → conn → writer goroutine → dst, then fsyncs dst. It returns
// the time until the fsync returned and until the last write returned.
func loopbackCopy(src, dst string) (total, beforeSync time.Duration, err error) {
	defer os.Remove(dst)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close() // one connection only
	out, err := os.Create(dst)
	if err != nil {
		return 0, 0, err
	}
	defer out.Close() // closed below on success; this is for errors
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close() // read-only
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			errc <- err
			return
		}
		// Plain read/write with a user buffer (the struct hides ReadFrom, so
		// no sendfile): what a shipper that looks at its bytes must do.
		_, err = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{in}, make([]byte, 256<<10))
		errc <- errors.Join(err, c.Close())
	}()
	conn, err := ln.Accept()
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close() // read side
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{conn}, make([]byte, 256<<10)); err != nil {
		return 0, 0, err
	}
	beforeSync = time.Since(start)
	if err := out.Sync(); err != nil {
		return 0, 0, err
	}
	total = time.Since(start)
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	return total, beforeSync, out.Close()
}

// fsyncLatency appends bs bytes and fdatasyncs, for d, and returns the p50
// and p99 latency of one append+sync and the rate.
func fsyncLatency(path string, bs int, d time.Duration) (p50, p99 time.Duration, opsPerSec float64, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(path)
	defer f.Close() // scratch file
	buf := make([]byte, bs)
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d && len(lat) < 1e6 {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, 0, 0, err
		}
		if err := fdatasync(f); err != nil {
			return 0, 0, 0, err
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	return pct(lat, 0.50), pct(lat, 0.99), float64(len(lat)) / time.Since(start).Seconds(), nil
}

// pct returns the p-quantile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
