//go:build linux

package target_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"thunder/internal/stream"
	"thunder/internal/target"
)

// maxOwner records the highest offset acknowledged to a collector's
// stream, whichever of its connections it came on.
type maxOwner struct {
	mu  *sync.Mutex
	max *uint64
}

func (o *maxOwner) Committed(m stream.Mark) {
	o.mu.Lock()
	*o.max = max(*o.max, m.Offset)
	o.mu.Unlock()
}

// TestAttack2ConcurrentRotations: collectors append to more files than
// descriptors while Run commits, idle and dirty files are closed, and
// logrotate renames files (with and without create) and sends SIGHUP;
// a collector whose stream fails re-attaches and resends from where the
// processor says. Afterwards the files of each name hold the stream once,
// in order, and all that was acknowledged.
func TestAttack2ConcurrentRotations(t *testing.T) {
	dir := t.TempDir()
	const files, rounds = 24, 300
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger(), MaxOpenFiles: 6})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	name := func(i int) string { return fmt.Sprintf("c%d/f%02d.log", i%3, i) }
	var mu sync.Mutex
	acked := make([]uint64, files)
	done := make(chan struct{})
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		rng := rand.New(rand.NewPCG(1, 2))
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			d.CloseIdle(rng.IntN(6))
			if n%3 == 0 {
				i := rng.IntN(files)
				p := filepath.Join(dir, name(i))
				_ = os.Rename(p, fmt.Sprintf("%s.%06d", p, n))
				if rng.IntN(2) == 0 {
					_ = os.WriteFile(p, nil, 0o644)
				}
				if rng.IntN(4) == 0 {
					_ = d.Reopen()
				}
			}
		}
	}()
	errs := make(chan error, files)
	for i := range files {
		go func() {
			var s *target.Stream
			var o *maxOwner
			var at uint64
			attach := func() error {
				o = &maxOwner{&mu, &acked[i]}
				var err error
				s, at, _, err = attachAt(d, key("r", i), mustName(t, name(i)), 0, o)
				return err
			}
			if err := attach(); err != nil {
				errs <- err
				return
			}
			for r := 0; r < rounds; r++ {
				var b strings.Builder
				first := int(at / modelLineLen)
				for k := range 1 + r%3 {
					b.WriteString(modelLine(i, first+k))
				}
				end := at + uint64(b.Len())
				err := s.Append(o, chunk(at, end, []byte(b.String())))
				switch {
				case err == nil:
					at = end
				case errors.Is(err, target.ErrNotOwner), errors.Is(err, target.ErrStorage):
					if err := attach(); err != nil {
						errs <- err
						return
					}
				default:
					errs <- fmt.Errorf("%s: %w", name(i), err)
					return
				}
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
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	mustClose(t, d)
	rotatedAll, _ := filepath.Glob(filepath.Join(dir, "c*", "*.log.*"))
	t.Logf("%d files rotated", len(rotatedAll))
	for i := range files {
		p := filepath.Join(dir, name(i))
		rotated, _ := filepath.Glob(p + ".*")
		var got strings.Builder
		for _, n := range append(rotated, p) { // Glob sorts
			b, _ := os.ReadFile(n)
			got.Write(b)
		}
		var want strings.Builder
		for k := range got.Len() / modelLineLen {
			want.WriteString(modelLine(i, k))
		}
		if got.String() != want.String() {
			t.Errorf("%s: files hold %q, not the stream once in order", name(i), got.String())
		}
		if uint64(got.Len()) < acked[i] {
			t.Errorf("%s: files hold %d bytes, %d acknowledged", name(i), got.Len(), acked[i])
		}
	}
}
