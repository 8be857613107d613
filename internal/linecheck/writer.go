package linecheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Contract is the way a [Writer] opens, locks and writes its file.
type Contract int

const (
	// OpenWriteClose opens the file with O_WRONLY|O_APPEND|O_CREATE, writes
	// and closes it for every write: contract 1 of the original README.
	OpenWriteClose Contract = iota
	// LockedAppend opens the file with O_APPEND|O_CREATE, takes
	// flock(LOCK_SH) and makes many writes before closing it: contract 2 of
	// the original README. It closes and reopens the path every
	// [Writer.ReopenEvery] lines or [Writer.ReopenAfter], whichever comes
	// first, so that a rotated file is released.
	LockedAppend
	// Unlocked is an ordinary daemon: it opens the file once with O_APPEND,
	// never locks it, and reopens the path only every [Writer.ReopenAfter].
	Unlocked
)

// String returns the contract's Go name.
func (c Contract) String() string {
	switch c {
	case OpenWriteClose:
		return "OpenWriteClose"
	case LockedAppend:
		return "LockedAppend"
	case Unlocked:
		return "Unlocked"
	}
	return fmt.Sprintf("Contract(%d)", int(c))
}

// Defaults of the [Writer] fields left zero.
const (
	DefaultBatch       = 1
	DefaultReopenEvery = 1000
	DefaultReopenAfter = time.Second
)

// maxBurst bounds how far a rate-limited writer catches up after it was
// held up (by a slow disk or a blocked flock): lines it could not write in
// time are not all written at once later.
const maxBurst = 100 * time.Millisecond

// A Writer appends the lines of one writer id to one file. A Writer is not
// safe for concurrent use; run several Writers for several writers.
type Writer struct {
	ID       string   // writer id, [A-Za-z0-9_.-]+, unique among the writers checked together
	Path     string   // file appended to; its parent directories are created if missing
	Contract Contract // how the file is opened, locked and written
	Lines    uint64   // stop after this many lines; 0 = until ctx is done
	Rate     int      // lines per second; 0 = as fast as possible

	LineBytes   int           // bytes per line including the newline; 0 = DefaultLineBytes
	Batch       int           // lines per write(2); 0 = DefaultBatch
	ReopenEvery int           // LockedAppend: reopen after this many lines; 0 = DefaultReopenEvery
	ReopenAfter time.Duration // LockedAppend, Unlocked: reopen after this long; 0 = DefaultReopenAfter
}

// Run writes lines 0, 1, 2, ... until w.Lines are written or ctx is done,
// and returns how many were written. A line counts as written only when the
// write(2) that carried it wrote it fully. Run returns a nil error when it
// stops because ctx is done; written is exact in every case, so it can be
// given to [Verify] as [Expect.Lines].
func (w *Writer) Run(ctx context.Context) (written uint64, err error) {
	c := *w
	if err := c.validate(); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return 0, fmt.Errorf("linecheck: %w", err)
	}
	h := idHash(c.ID)
	payload := payloadBytes(c.ID, c.LineBytes)
	buf := make([]byte, 0, c.Batch*c.LineBytes)
	lim := limiter{rate: c.Rate}
	defer lim.stop()
	var f *os.File
	var openedAt time.Time
	var sinceOpen int
	closeFile := func() error {
		if f == nil {
			return nil
		}
		err := f.Close() // also releases the flock
		f = nil
		if err != nil {
			return fmt.Errorf("linecheck: %w", err)
		}
		return nil
	}
	defer func() { err = errors.Join(err, closeFile()) }()

	for c.Lines == 0 || written < c.Lines {
		if ctx.Err() != nil {
			return written, nil
		}
		if !lim.wait(ctx, written) {
			return written, nil
		}
		n := uint64(c.Batch)
		if c.Lines != 0 {
			n = min(n, c.Lines-written)
		}
		if written+n-1 > MaxSeq {
			return written, fmt.Errorf("linecheck: writer %s: seq exceeds %d", c.ID, uint64(MaxSeq))
		}
		buf = buf[:0]
		for i := range n {
			buf = appendLine(buf, c.ID, h, written+i, payload)
		}

		if f != nil && c.Contract != OpenWriteClose &&
			(c.Contract == LockedAppend && sinceOpen >= c.ReopenEvery || time.Since(openedAt) >= c.ReopenAfter) {
			if err := closeFile(); err != nil {
				return written, err
			}
		}
		if f == nil {
			if f, err = c.open(); err != nil {
				return written, err
			}
			openedAt, sinceOpen = time.Now(), 0
		}
		m, werr := f.Write(buf)
		written += uint64(m / c.LineBytes)
		sinceOpen += int(n)
		if werr != nil {
			return written, fmt.Errorf("linecheck: writer %s: %w", c.ID, werr)
		}
		if c.Contract == OpenWriteClose {
			if err := closeFile(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *Writer) validate() error {
	if w.LineBytes == 0 {
		w.LineBytes = DefaultLineBytes
	}
	if w.Batch == 0 {
		w.Batch = DefaultBatch
	}
	if w.ReopenEvery == 0 {
		w.ReopenEvery = DefaultReopenEvery
	}
	if w.ReopenAfter == 0 {
		w.ReopenAfter = DefaultReopenAfter
	}
	var errs []error
	if !ValidID(w.ID) {
		errs = append(errs, fmt.Errorf("linecheck: invalid writer id %q", w.ID))
	} else if payloadBytes(w.ID, w.LineBytes) < 1 {
		errs = append(errs, fmt.Errorf("%w: id %q, %d bytes", ErrLineTooShort, w.ID, w.LineBytes))
	}
	if w.Path == "" {
		errs = append(errs, errors.New("linecheck: empty path"))
	}
	switch w.Contract {
	case OpenWriteClose, LockedAppend, Unlocked:
	default:
		errs = append(errs, fmt.Errorf("linecheck: unknown contract %v", w.Contract))
	}
	if w.Rate < 0 || w.Batch < 0 || w.ReopenEvery < 0 || w.ReopenAfter < 0 {
		errs = append(errs, errors.New("linecheck: negative Rate, Batch, ReopenEvery or ReopenAfter"))
	}
	return errors.Join(errs...)
}

// open opens w.Path as w.Contract says.
func (w *Writer) open() (*os.File, error) {
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	f, err := os.OpenFile(w.Path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("linecheck: %w", err)
	}
	if w.Contract == LockedAppend {
		if err := lockShared(f); err != nil {
			_ = f.Close() // the error that matters is flock's
			return nil, fmt.Errorf("linecheck: flock %s: %w", w.Path, err)
		}
	}
	return f, nil
}

// limiter is a token bucket measured by elapsed time: line n is due at
// start + n/rate. It sleeps at least a millisecond at a time, so at high
// rates it lets lines through in bursts rather than sleeping per line.
type limiter struct {
	rate  int
	start time.Time
	timer *time.Timer
}

// wait blocks until line n is due and reports true, or reports false if
// ctx is done first.
func (l *limiter) wait(ctx context.Context, n uint64) bool {
	if l.rate <= 0 {
		return true
	}
	now := time.Now()
	if l.start.IsZero() {
		l.start = now
	}
	due := l.start.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
	d := due.Sub(now)
	if d <= 0 {
		if -d > maxBurst {
			l.start = l.start.Add(-d - maxBurst)
		}
		return true
	}
	d = max(d, time.Millisecond)
	if l.timer == nil {
		l.timer = time.NewTimer(d)
	} else {
		l.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		return false
	case <-l.timer.C:
		return true
	}
}

func (l *limiter) stop() {
	if l.timer != nil {
		l.timer.Stop()
	}
}
