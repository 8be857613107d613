//go:build unix

package e2e_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

const (
	// pollInterval is how often waitDelivered looks again.
	pollInterval = 25 * time.Millisecond
	// deliverTimeout bounds the wait for every line to reach the target
	// while none arrives; deliverCap bounds it while lines keep arriving
	// (a loaded 2-core box delivers 10,000 files under -race in 40–110 s).
	deliverTimeout = 90 * time.Second
	deliverCap     = 5 * time.Minute
	// writersTimeout bounds the wait for the writers to finish.
	writersTimeout = 60 * time.Second
	// progressEvery is how often waitDelivered logs its progress.
	progressEvery = 5 * time.Second
)

// pause waits d, a deliberately random moment of a fault schedule (not a
// wait for a condition: use waitFor for those).
func pause(t *testing.T, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Context().Done():
		t.Fatal("test done during pause")
	case <-timer.C:
	}
}

// newRand returns a random source for a fault schedule, seeded from
// THUNDER_E2E_SEED if set, and logs the seed so a failure can be replayed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("THUNDER_E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("THUNDER_E2E_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay with THUNDER_E2E_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x5eed))
}

// between returns a random duration in [lo, hi).
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// A writerSpec is a linecheck writer of one source file: it appends to
// filepath.Join(dir, name), and its lines must reach the target under name.
type writerSpec struct {
	ID       string
	Dir      string // source dir
	Name     string // slash-separated path relative to Dir and to the target dir
	Contract linecheck.Contract
	Lines    uint64
	Rate     int
}

// writers runs linecheck writers and collects what they wrote.
type writers struct {
	t      *testing.T
	ctx    context.Context // the writers' lifetime: the test's, cut short by Wait's timeout
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	expect []linecheck.Expect
	errs   []error
}

// startWriters starts a set of writers; more may be added with add. They
// stop when the test ends.
func startWriters(t *testing.T, specs ...writerSpec) *writers {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &writers{t: t, ctx: ctx, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		w.wg.Wait()
	})
	w.Add(specs...)
	return w
}

// Add starts more writers.
func (w *writers) Add(specs ...writerSpec) {
	for _, s := range specs {
		lw := &linecheck.Writer{
			ID: s.ID, Path: filepath.Join(s.Dir, filepath.FromSlash(s.Name)),
			Contract: s.Contract, Lines: s.Lines, Rate: s.Rate,
		}
		w.wg.Go(func() {
			n, err := lw.Run(w.ctx)
			w.mu.Lock()
			defer w.mu.Unlock()
			w.expect = append(w.expect, linecheck.Expect{Writer: s.ID, Name: s.Name, Lines: n})
			if err != nil {
				w.errs = append(w.errs, fmt.Errorf("writer %s: %w", s.ID, err))
			} else if n != s.Lines {
				w.errs = append(w.errs, fmt.Errorf("writer %s: wrote %d of %d lines", s.ID, n, s.Lines))
			}
		})
	}
}

// Wait waits for every writer to finish and returns what they wrote,
// failing the test if one failed or they take longer than writersTimeout.
func (w *writers) Wait() []linecheck.Expect {
	w.t.Helper()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(writersTimeout):
		w.cancel()
		<-done
		w.t.Fatalf("writers still running after %v", writersTimeout)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, err := range w.errs {
		w.t.Error(err)
	}
	if w.t.Failed() {
		w.t.FailNow()
	}
	var total uint64
	for _, e := range w.expect {
		total += e.Lines
	}
	w.t.Logf("writers: %d wrote %d lines", len(w.expect), total)
	return w.expect
}

// waitFile waits until path holds at least n bytes.
func waitFile(t *testing.T, timeout time.Duration, path string, n int64, running ...*Daemon) {
	t.Helper()
	harness.WaitFor(t, timeout, func() error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Size() < n {
			return fmt.Errorf("%s: %d bytes, want %d", path, fi.Size(), n)
		}
		return nil
	}, running...)
}

// waitLines waits until the target dir holds at least n complete lines,
// good or bad: a sign that data flows.
func waitLines(t *testing.T, timeout time.Duration, dir string, n int, running ...*Daemon) {
	t.Helper()
	harness.WaitFor(t, timeout, func() error {
		r, err := linecheck.Verify(dir, nil, linecheck.Options{})
		if err != nil {
			return err
		}
		if r.Lines < n {
			return fmt.Errorf("%s: %d lines, want %d", dir, r.Lines, n)
		}
		return nil
	}, running...)
}

// waitDelivered polls the target dir until every expected line is there,
// failing at once on a problem that waiting cannot repair (duplicate,
// corrupt, reordered, misplaced, unexpected line) or if one of running
// has exited.
func waitDelivered(t *testing.T, dir string, expect []linecheck.Expect, opt linecheck.Options, running ...*Daemon) linecheck.Report {
	t.Helper()
	start := time.Now()
	deadline := start.Add(deliverTimeout)
	nextLog := start.Add(progressEvery)
	var lines int
	for polls := 1; ; polls++ {
		r, err := linecheck.Verify(dir, expect, opt)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if r.Lines > lines { // progress: a stall is timed from here
			lines = r.Lines
			deadline = time.Now().Add(deliverTimeout)
			if limit := start.Add(deliverCap); deadline.After(limit) {
				deadline = limit
			}
		}
		if r.Failed() {
			t.Fatalf("verify after %v: %v\n%s%s", time.Since(start).Round(time.Millisecond), r, problems(r), listing(dir))
		}
		if r.Complete() {
			t.Logf("delivered after %v (%d polls): %v", time.Since(start).Round(time.Millisecond), polls, r)
			return r
		}
		if err := harness.Exited(running...); err != nil {
			t.Fatalf("%v\nnot delivered: %v\n%s%s", err, r, problems(r), listing(dir))
		}
		now := time.Now()
		if now.After(deadline) {
			t.Fatalf("not delivered after %v (nothing new for %v, or %v in all): %v\n%s%s",
				now.Sub(start).Round(time.Second), deliverTimeout, deliverCap, r, problems(r), listing(dir))
		}
		if now.After(nextLog) {
			t.Logf("waiting for delivery: %v", r)
			nextLog = now.Add(progressEvery)
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test done while waiting for delivery")
		case <-time.After(pollInterval):
		}
	}
}

// finalCheck verifies the target dir once the daemons have stopped:
// every line exactly once, whole, in order, under its name.
func finalCheck(t *testing.T, dir string, expect []linecheck.Expect, opt linecheck.Options) {
	t.Helper()
	r, err := linecheck.Verify(dir, expect, opt)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !r.OK() {
		t.Fatalf("final check: %v\n%s%s", r, problems(r), listing(dir))
	}
	t.Logf("final check: %v", r)
}

func problems(r linecheck.Report) string {
	var s string
	for _, p := range r.Problems {
		s += "\t" + p + "\n"
	}
	return s
}

// listing describes the files under dir, for failure messages.
func listing(dir string) string {
	s := "files in " + dir + ":\n"
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a listing for humans: skip what cannot be read
		}
		rel, _ := filepath.Rel(dir, path)
		size := int64(-1)
		if fi, err := d.Info(); err == nil {
			size = fi.Size()
		}
		s += fmt.Sprintf("\t%s %d bytes\n", filepath.ToSlash(rel), size)
		return nil
	})
	return s
}

// rotatedRE matches the numeric suffix logrotate adds.
var rotatedRE = regexp.MustCompile(`\.[0-9]+$`)

// unrotated is a linecheck alias: "x.log.1" counts as "x.log".
func unrotated(rel string) string {
	return rotatedRE.ReplaceAllString(rel, "")
}
