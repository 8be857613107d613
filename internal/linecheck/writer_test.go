//go:build unix

package linecheck_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

var contracts = []linecheck.Contract{linecheck.OpenWriteClose, linecheck.LockedAppend, linecheck.Unlocked}

// runWriter starts w in a goroutine and returns a channel that receives its
// result.
type result struct {
	written uint64
	err     error
}

func runWriter(ctx context.Context, w *linecheck.Writer) <-chan result {
	ch := make(chan result, 1)
	go func() {
		n, err := w.Run(ctx)
		ch <- result{n, err}
	}()
	return ch
}

// await returns the writer's result, failing the test if it takes longer
// than timeout.
func await(t *testing.T, ch <-chan result, timeout time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("writer still running after %v", timeout)
		return result{}
	}
}

func TestContractString(t *testing.T) {
	for c, want := range map[linecheck.Contract]string{
		linecheck.OpenWriteClose: "OpenWriteClose",
		linecheck.LockedAppend:   "LockedAppend",
		linecheck.Unlocked:       "Unlocked",
		linecheck.Contract(9):    "Contract(9)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Contract(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func TestWriterContracts(t *testing.T) {
	for _, c := range contracts {
		for _, batch := range []int{1, 7} {
			t.Run(fmt.Sprintf("%v/batch=%d", c, batch), func(t *testing.T) {
				dir := t.TempDir()
				w := &linecheck.Writer{
					ID: "w." + c.String(), Path: filepath.Join(dir, "sub", "deep", "a.log"),
					Contract: c, Lines: 2000, Batch: batch, LineBytes: 64, ReopenEvery: 100,
				}
				n, err := w.Run(t.Context())
				if err != nil || n != w.Lines {
					t.Fatalf("Run = %d, %v; want %d, nil", n, err, w.Lines)
				}
				fi, err := os.Stat(w.Path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() != int64(w.Lines)*64 {
					t.Errorf("size = %d, want %d", fi.Size(), w.Lines*64)
				}
				r, err := linecheck.Verify(dir, []linecheck.Expect{{Writer: w.ID, Name: "sub/deep/a.log", Lines: n}}, linecheck.Options{})
				if err != nil || !r.OK() {
					t.Errorf("Verify = %v, %v; problems %q", r, err, r.Problems)
				}
			})
		}
	}
}

// TestWritersShareFile runs writers of every contract into one file at once:
// O_APPEND keeps their lines whole.
func TestWritersShareFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shared.log")
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		expect []linecheck.Expect
	)
	for i, c := range contracts {
		for j := range 2 {
			w := &linecheck.Writer{ID: fmt.Sprintf("w%d-%d", i, j), Path: path, Contract: c, Lines: 3000, Batch: 1 + j*4, ReopenEvery: 50}
			wg.Go(func() {
				n, err := w.Run(t.Context())
				if err != nil {
					t.Errorf("writer %s: %v", w.ID, err)
				}
				mu.Lock()
				expect = append(expect, linecheck.Expect{Writer: w.ID, Name: "shared.log", Lines: n})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	r, err := linecheck.Verify(dir, expect, linecheck.Options{})
	if err != nil || !r.OK() || r.Lines != 6*3000 {
		t.Errorf("Verify = %v, %v; want OK with %d lines; problems %q", r, err, 6*3000, r.Problems)
	}
}

func TestWriterInvalid(t *testing.T) {
	dir := t.TempDir()
	for name, w := range map[string]*linecheck.Writer{
		"bad id":         {ID: "a b", Path: filepath.Join(dir, "a")},
		"no path":        {ID: "w"},
		"line too short": {ID: "w", Path: filepath.Join(dir, "a"), LineBytes: 10},
		"contract":       {ID: "w", Path: filepath.Join(dir, "a"), Contract: 7},
		"negative rate":  {ID: "w", Path: filepath.Join(dir, "a"), Rate: -1},
	} {
		if n, err := w.Run(t.Context()); err == nil || n != 0 {
			t.Errorf("Run(%s) = %d, %v; want 0 and an error", name, n, err)
		}
	}
	w := &linecheck.Writer{ID: "w", Path: filepath.Join(dir, "a"), LineBytes: 10}
	if _, err := w.Run(t.Context()); !errors.Is(err, linecheck.ErrLineTooShort) {
		t.Errorf("Run(LineBytes 10) = %v, want ErrLineTooShort", err)
	}
}

// TestWriterRate checks that a rate-limited writer never runs ahead of its
// rate and stops promptly, with an exact count, when its context is done.
func TestWriterRate(t *testing.T) {
	for _, c := range contracts {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			const rate = 200
			w := &linecheck.Writer{ID: "w", Path: filepath.Join(dir, "a.log"), Contract: c, Lines: 1 << 40, Rate: rate}
			start := time.Now()
			ch := runWriter(ctx, w)
			harness.WaitFor(t, 5*time.Second, func() error {
				fi, err := os.Stat(w.Path)
				if err != nil || fi.Size() < 10*linecheck.DefaultLineBytes {
					return fmt.Errorf("fewer than 10 lines in %s (%v)", w.Path, err)
				}
				return nil
			})
			cancel()
			r := await(t, ch, 5*time.Second)
			elapsed := time.Since(start)
			if r.err != nil {
				t.Fatalf("Run after cancel: %v", r.err)
			}
			// Line n is due n/rate after start, so in elapsed at most
			// elapsed*rate+1 lines can have been written.
			if limit := uint64(elapsed.Seconds()*rate) + 1; r.written > limit {
				t.Errorf("Run wrote %d lines in %v, more than %d at %d lines/s", r.written, elapsed, limit, rate)
			}
			fi, err := os.Stat(w.Path)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(r.written) * linecheck.DefaultLineBytes; fi.Size() != want {
				t.Errorf("size = %d, want %d for %d lines", fi.Size(), want, r.written)
			}
			rep, err := linecheck.Verify(dir, []linecheck.Expect{{Writer: "w", Name: "a.log", Lines: r.written}}, linecheck.Options{})
			if err != nil || !rep.OK() {
				t.Errorf("Verify = %v, %v; problems %q", rep, err, rep.Problems)
			}
		})
	}
}

func TestWriterCanceledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w := &linecheck.Writer{ID: "w", Path: filepath.Join(t.TempDir(), "a.log"), Lines: 100}
	if n, err := w.Run(ctx); n != 0 || err != nil {
		t.Errorf("Run(canceled) = %d, %v; want 0, nil", n, err)
	}
}

// probeExclusive reports whether flock(LOCK_EX|LOCK_NB) on path succeeds,
// releasing the lock at once, as the collector's in-use probe does.
func probeExclusive(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // read-only
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return true
	case errors.Is(err, syscall.EWOULDBLOCK):
		return false
	}
	t.Fatalf("flock %s: %v", path, err)
	return false
}

// TestLockedAppendHoldsLock checks that a LockedAppend writer holds
// LOCK_SH while it writes, and releases a rotated file within ReopenAfter.
func TestLockedAppendHoldsLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &linecheck.Writer{ID: "w", Path: path, Contract: linecheck.LockedAppend, Rate: 50, ReopenAfter: 200 * time.Millisecond}
	ch := runWriter(ctx, w)
	harness.WaitFor(t, 5*time.Second, func() error {
		if _, err := os.Stat(path); err != nil {
			return err
		}
		if probeExclusive(t, path) {
			return errors.New("flock(LOCK_EX|LOCK_NB) succeeded while the writer runs")
		}
		return nil
	})

	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if !probeExclusive(t, rotated) {
			return errors.New("rotated file still locked")
		}
		if _, err := os.Stat(path); err != nil {
			return err
		}
		return nil
	})
	cancel()
	r := await(t, ch, 5*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	rep, err := linecheck.Verify(dir, []linecheck.Expect{{Writer: "w", Name: "a.log", Lines: r.written}},
		linecheck.Options{Alias: rotatedAlias})
	if err != nil || !rep.OK() {
		t.Errorf("Verify = %v, %v; problems %q", rep, err, rep.Problems)
	}
}

// TestOtherContractsDoNotLock checks that OpenWriteClose and Unlocked writers
// never hold a lock.
func TestOtherContractsDoNotLock(t *testing.T) {
	for _, c := range []linecheck.Contract{linecheck.OpenWriteClose, linecheck.Unlocked} {
		t.Run(c.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.log")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w := &linecheck.Writer{ID: "w", Path: path, Contract: c, Rate: 1000}
			ch := runWriter(ctx, w)
			harness.WaitFor(t, 5*time.Second, func() error {
				_, err := os.Stat(path)
				return err
			})
			for range 20 {
				if !probeExclusive(t, path) {
					t.Fatalf("%v writer holds a lock", c)
				}
			}
			cancel()
			if r := await(t, ch, 5*time.Second); r.err != nil {
				t.Fatal(r.err)
			}
		})
	}
}
