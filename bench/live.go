//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"thunder/internal/linecheck"
)

// liveResult is one live run.
type liveResult struct {
	contract      linecheck.Contract
	rate          int     // lines/s asked for, 0 = flat out
	achieved      float64 // lines/s written
	p50, p99, max time.Duration
	// ackP50, ackP99: frame read → acknowledged (durable at the processor),
	// from the collector's histogram over ackFrames frames.
	ackP50, ackP99 time.Duration
	ackFrames      uint64
	collCores      float64 // collector CPU over the writer window, fraction of a core
	procCores      float64
	lagBytes       int64 // written but not in the target at writer stop
	drain          time.Duration
	collMiB        float64
	seqErrs, lines int64
	window         time.Duration
	quiet          bool
	busy           float64
}

// Line layout of the live writers: "T <seq:12> <unix-nanoseconds:19> <pad>\n",
// 100 bytes; the timestamp is taken just before the write(2) that carries it.
const (
	tsOffset = 15
	tsDigits = 19
)

// runLive runs writers of both contracts at fixed rates and flat out, one
// write(2) per line, while a tailer reads the target file every
// millisecond and records each line's arrival minus its write time.
func (b *bench) runLive() error {
	for _, c := range []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend} {
		for _, rate := range []int{1000, 10000, 100000, 0} {
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			if err := b.liveOnce(c, rate); err != nil {
				return fmt.Errorf("%v at %s: %w", c, rateName(rate), err)
			}
		}
	}
	return nil
}

func rateName(rate int) string {
	switch {
	case rate == 0:
		return "flat out"
	case rate%1000 == 0:
		return fmt.Sprintf("%dk lines/s", rate/1000)
	}
	return fmt.Sprintf("%d lines/s", rate)
}

func (b *bench) liveOnce(c linecheck.Contract, rate int) error {
	r, err := b.liveRun(c, rate, nil)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%v %s", c, rateName(rate))
	b.live[name] = r
	b.rep.result("live", kv{"contract", c.String()}, kv{"rate", rate}, kv{"lines_per_s", r.achieved}, kv{"lines", r.lines},
		kv{"secs", r.window}, kv{"p50_ms", ms(r.p50)}, kv{"p99_ms", ms(r.p99)}, kv{"max_ms", ms(r.max)},
		kv{"ack_p50_ms", ms(r.ackP50)}, kv{"ack_p99_ms", ms(r.ackP99)}, kv{"ack_frames", r.ackFrames},
		kv{"cpu_collector_cores", r.collCores}, kv{"cpu_processor_cores", r.procCores},
		kv{"lag_at_stop_bytes", r.lagBytes}, kv{"drain_s", r.drain}, kv{"rss_collector_MiB", r.collMiB},
		kv{"order_errors", r.seqErrs}, kv{"quiet", r.quiet})
	note := fmt.Sprintf("%.0f lines/s (%.1f MiB/s); collector %.2f core, processor %.2f; lag at stop %.1f MiB, drained in %.2f s",
		r.achieved, r.achieved*lineBytes/mib, r.collCores, r.procCores, float64(r.lagBytes)/mib, r.drain.Seconds())
	if r.seqErrs != 0 {
		note += fmt.Sprintf("; %d LINES OUT OF ORDER OR MISSING", r.seqErrs)
	}
	if n := quietNote(r.quiet, r.busy); n != "" {
		note += "; " + n
	}
	b.rep.add("live write→target", name, fmt.Sprintf("p50 %.1f / p99 %.1f / max %.0f ms", ms(r.p50), ms(r.p99), ms(r.max)), "", note)
	b.rep.add("live read→acknowledged", name, fmt.Sprintf("p50 %.1f / p99 %.1f ms", ms(r.ackP50), ms(r.ackP99)), "",
		fmt.Sprintf("collector's thunder_collector_ack_seconds over %d frames: from the read of a frame to the processor's durable acknowledgement", r.ackFrames))
	return nil
}

// liveRun runs one live writer through a fresh pair whose collector gets
// collArgs, and measures it.
func (b *bench) liveRun(c linecheck.Contract, rate int, collArgs []string) (liveResult, error) {
	var r liveResult
	dir, err := b.scratch("live")
	if err != nil {
		return r, err
	}
	defer b.drop(dir)
	collArgs = append(slices.Clip(collArgs), "--admin-address=127.0.0.1:0")
	p, err := startPair(b.ctx, pairConfig{bin: b.bin, dir: dir, collArgs: collArgs})
	if err != nil {
		return r, err
	}
	defer p.kill()
	admin, err := p.coll.adminAddr()
	if err != nil {
		return r, err
	}
	acks0, _, err := scrapeAcks(admin)
	if err != nil {
		return r, err
	}
	q, busy := b.quiet()
	dst := filepath.Join(dir, "dst", "live.log")
	t := newTailer(dst)
	go t.run()
	defer t.stop()
	c0, p0, err := p.cpu()
	if err != nil {
		return r, err
	}
	start := time.Now()
	lines, err := writeLive(filepath.Join(dir, "src", "live.log"), c, rate, start.Add(b.liveFor))
	window := time.Since(start)
	if err != nil {
		return r, err
	}
	lag := lines*lineBytes - fileSize(dst)
	c1, p1, err1 := p.cpu()
	collPeak, err2 := statusKiB(p.coll.pid(), "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return r, err
	}
	stopped := time.Now()
	lat, seqErrs, err := t.wait(lines, 2*time.Minute)
	drain := time.Since(stopped)
	if err != nil {
		return r, err
	}
	acks, err := waitAcked(b.ctx, admin, uint64(lines*lineBytes))
	if err != nil {
		return r, err
	}
	if _, _, err := p.stop(); err != nil {
		return r, err
	}
	slices.Sort(lat)
	return liveResult{
		contract: c, rate: rate, achieved: float64(lines) / window.Seconds(),
		p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: pct(lat, 1),
		ackP50: acks.quantile(acks0, 0.5), ackP99: acks.quantile(acks0, 0.99), ackFrames: acks.frames(acks0),
		collCores: (c1 - c0) / window.Seconds(), procCores: (p1 - p0) / window.Seconds(),
		lagBytes: max(lag, 0), drain: drain, collMiB: float64(collPeak) / 1024, seqErrs: seqErrs, lines: lines,
		window: window, quiet: q, busy: busy,
	}, nil
}

// writeLive appends lines to path, one write(2) per line, following
// contract c, at rate lines/s (0: as fast as it can) until deadline. It
// returns how many lines it wrote.
func writeLive(path string, c linecheck.Contract, rate int, deadline time.Time) (int64, error) {
	var f *os.File
	var opened time.Time
	var sinceOpen int
	closeFile := func() error {
		if f == nil {
			return nil
		}
		err := f.Close() // releases the flock too
		f = nil
		return err
	}
	defer closeFile() // error paths only; the normal end checks it below
	line := make([]byte, lineBytes)
	copy(line, "T ")
	for i := tsOffset + tsDigits; i < lineBytes-1; i++ {
		line[i] = 'x'
	}
	line[tsOffset-1], line[tsOffset+tsDigits], line[lineBytes-1] = ' ', ' ', '\n'
	start := time.Now()
	var n int64
	for {
		now := time.Now()
		if now.After(deadline) {
			return n, closeFile()
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
			if d := due.Sub(now); d > 0 {
				time.Sleep(max(d, time.Millisecond))
				continue
			}
		}
		if f != nil && c == linecheck.LockedAppend && (sinceOpen >= linecheck.DefaultReopenEvery || now.Sub(opened) >= linecheck.DefaultReopenAfter) {
			if err := closeFile(); err != nil {
				return n, err
			}
		}
		if f == nil {
			var err error
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
				return n, err
			}
			if c == linecheck.LockedAppend {
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
					return n, err
				}
			}
			opened, sinceOpen = now, 0
		}
		putDigits(line[2:14], uint64(n))
		putDigits(line[tsOffset:tsOffset+tsDigits], uint64(time.Now().UnixNano()))
		if _, err := f.Write(line); err != nil {
			return n, err
		}
		n++
		sinceOpen++
		if c == linecheck.OpenWriteClose {
			if err := closeFile(); err != nil {
				return n, err
			}
		}
	}
}

// putDigits writes v zero-padded into dst.
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// A tailer reads a growing target file every millisecond and records, for
// each line, the time it was read minus the time it was written.
type tailer struct {
	path  string
	quit  chan struct{}
	done  chan struct{}
	want  chan int64 // lines to wait for, sent once the writer stopped
	lat   []time.Duration
	seqOK int64 // lines whose seq was the next expected one
	lines int64
	err   error
}

// maxSamples bounds the latencies kept (8 bytes each).
const maxSamples = 50_000_000

func newTailer(path string) *tailer {
	return &tailer{path: path, quit: make(chan struct{}), done: make(chan struct{}), want: make(chan int64, 1)}
}

func (t *tailer) run() {
	defer close(t.done)
	idle, closeIdle := waitWrites(filepath.Dir(t.path))
	defer closeIdle()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close() // read-only
		}
	}()
	buf := make([]byte, 1<<20)
	carry := 0
	want := int64(-1)
	for {
		select {
		case <-t.quit:
			return
		case w := <-t.want:
			want = w
		default:
		}
		if want >= 0 && t.lines >= want {
			return
		}
		if f == nil {
			var err error
			if f, err = os.Open(t.path); err != nil {
				idle()
				continue
			}
		}
		n, err := f.Read(buf[carry:])
		if err != nil && err != io.EOF {
			t.err = err
			return
		}
		if n == 0 {
			idle()
			continue
		}
		now := time.Now().UnixNano()
		data := buf[:carry+n]
		for len(data) >= lineBytes && data[lineBytes-1] == '\n' {
			seq, err1 := strconv.ParseUint(string(data[2:14]), 10, 64)
			ts, err2 := strconv.ParseInt(string(data[tsOffset:tsOffset+tsDigits]), 10, 64)
			if err1 != nil || err2 != nil {
				t.err = fmt.Errorf("corrupt line %q", data[:lineBytes])
				return
			}
			if int64(seq) == t.lines {
				t.seqOK++
			}
			t.lines++
			if len(t.lat) < maxSamples {
				t.lat = append(t.lat, time.Duration(now-ts))
			}
			data = data[lineBytes:]
		}
		if len(data) >= lineBytes {
			t.err = fmt.Errorf("corrupt line %q", data[:lineBytes])
			return
		}
		carry = copy(buf, data)
	}
}

// waitWrites returns a func that waits until something in dir is written,
// woken by inotify, not by a 1 ms poll, which would add up to a
// millisecond to every figure the tailer measures; and a func to stop.
func waitWrites(dir string) (wait, stop func()) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(dir); err != nil {
			w.Close()
		}
	}
	if err != nil {
		return func() { time.Sleep(time.Millisecond) }, func() {}
	}
	return func() {
		timer := time.NewTimer(5 * time.Millisecond) // a missed event, the quit or want channels
		defer timer.Stop()
		select {
		case <-w.Events:
		case <-w.Errors:
		case <-timer.C:
		}
	}, func() { w.Close() }
}

// wait waits until the tailer read lines lines, and returns the latencies
// and how many lines were not the next expected seq (lost, duplicated or
// out of order).
func (t *tailer) wait(lines int64, timeout time.Duration) ([]time.Duration, int64, error) {
	t.want <- lines
	select {
	case <-t.done:
	case <-time.After(timeout):
		close(t.quit)
		<-t.done
		return nil, 0, fmt.Errorf("target holds %d of %d lines after %v", t.lines, lines, timeout)
	}
	if t.err != nil {
		return nil, 0, t.err
	}
	return t.lat, t.lines - t.seqOK, nil
}

// stop ends the tailer if it still runs.
func (t *tailer) stop() {
	select {
	case <-t.done:
	default:
		close(t.quit)
		<-t.done
	}
}
