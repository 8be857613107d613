//go:build linux

package target_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// TestAttackBehindMixed: rounds of appends to files with and without
// descriptors, closes of idle and dirty files, Reopens and commits; after
// each commit verify finds every file as committed, and a crash after a
// commit's flush and syncfs, before its record, leaves each file as the
// last recorded commit had it.
func TestAttackBehindMixed(t *testing.T) {
	for seed := range 6 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			fx := newBehindFixture(t)
			rng := rand.New(rand.NewPCG(uint64(seed), 1))
			acked := append([]string(nil), fx.want...)
			for r := 1; r < 6; r++ {
				for i := range behindFiles {
					if rng.IntN(3) > 0 {
						fx.add(t, i, r)
					}
					if rng.IntN(10) == 0 {
						fx.d.CloseIdle(rng.IntN(behindBudget))
					}
				}
				if rng.IntN(4) == 0 {
					if _, err := target.ReopenAcks(fx.d); err != nil {
						t.Fatal(err)
					}
					acked = append([]string(nil), fx.want...)
					continue
				}
				acks := mustCommit(t, fx.d)
				for i, s := range fx.streams {
					if a, ok := ackFor(t, acks, s); ok {
						if a.At.Offset != fx.ends[i] {
							t.Fatalf("ack %d want %d", a.At.Offset, fx.ends[i])
						}
					}
				}
				acked = append([]string(nil), fx.want...)
				res, err := fx.d.Verify(t.Context(), nil, func(r target.FileResult) {
					if r.Verdict != target.VerdictOK {
						t.Errorf("verify %+v", r)
					}
				})
				if err != nil || !res.OK() {
					t.Fatalf("verify %+v %v", res, err)
				}
			}
			// A crash in the middle of a commit that flushes.
			for i := range behindFiles {
				fx.add(t, i, 9)
			}
			fx.d.CloseIdle(0)
			var snap stateSnapshot
			target.SetSyncfs(t, func(fd int) error {
				if snap.db == nil {
					snap = snapshotState(t, fx.dir)
				}
				return unix.Syncfs(fd)
			})
			mustCommit(t, fx.d)
			if snap.db == nil {
				t.Fatal("no syncfs")
			}
			mustClose(t, fx.d)
			restoreState(t, fx.dir, snap)
			d := mustOpen(t, fx.dir)
			for i := range behindFiles {
				if got := readFile(t, filepath.Join(fx.dir, behindName(i))); got != acked[i] {
					t.Fatalf("%s after crash = %q want %q", behindName(i), got, acked[i])
				}
			}
			mustClose(t, d)
		})
	}
}

// TestAttackBehindConcurrent: appenders to more files than descriptors,
// with Run committing and idle and dirty files closed and Reopen run
// meanwhile (-race): no append fails, every file ends up whole.
func TestAttackBehindConcurrent(t *testing.T) {
	dir := t.TempDir()
	const files, rounds = 60, 30
	d, o, streams, stop := runWithStreams(t, dir, 8, files, func(i int) string { return fmt.Sprintf("d%d/f%02d.log", i%3, i) })
	done := make(chan struct{})
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			d.CloseIdle(n % 8)
			if n%50 == 0 {
				_ = d.Reopen()
			}
		}
	}()
	errs := make(chan error, files)
	want := make([]string, files)
	for i, s := range streams {
		go func() {
			var end uint64
			for r := range rounds {
				p := fmt.Sprintf("round %d of %d\n", r, i)
				if err := s.Append(o, chunk(end, end+uint64(len(p)), []byte(p))); err != nil {
					errs <- fmt.Errorf("f%d r%d: %w", i, r, err)
					return
				}
				end += uint64(len(p))
				want[i] += p
			}
			errs <- nil
		}()
	}
	for range files {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(done)
	<-bg
	stop()
	for i := range files {
		if got := readFile(t, filepath.Join(dir, fmt.Sprintf("d%d/f%02d.log", i%3, i))); got != want[i] {
			t.Errorf("f%d = %q want %q", i, got, want[i])
		}
	}
}
