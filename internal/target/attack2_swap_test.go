//go:build linux

package target_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"thunder/internal/relpath"
	"thunder/internal/target"
)

// TestAttack2SwapRace: while a stream's file is opened again and again by
// name (closed idle after each commit), a component of its name, or the
// name itself, is swapped atomically (renameat2 RENAME_EXCHANGE) with a
// symbolic link to another file: a file beside it, one in another
// directory, the state store. Whatever the timing, nothing the stream
// writes may reach any of them. (Both trees: openat and os.Root.)
func TestAttack2SwapRace(t *testing.T) {
	for _, tc := range []struct {
		name, stream, swap, link string // swap is exchanged with a link to link
	}{
		{"leaf to a sibling", "a/x.log", "a/x.log", "y.log"},
		{"leaf to the state", "x.log", "x.log", relpath.StateDir + "/state.db"},
		{"leaf out of its directory", "a/x.log", "a/x.log", "../b/x.log"},
		{"directory to another", "a/x.log", "a", "b"},
		{"directory to the state dir", "a/state.db", "a", relpath.StateDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, p := range []string{"a/y.log", "b/x.log", "x.log", "a/x.log", "a/state.db"} {
				if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, p), []byte("victim\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d := mustOpen(t, dir)
			swap, tmp := filepath.Join(dir, tc.swap), filepath.Join(dir, tc.swap+".swap")
			if err := os.Symlink(tc.link, tmp); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := unix.Renameat2(unix.AT_FDCWD, swap, unix.AT_FDCWD, tmp, unix.RENAME_EXCHANGE); err != nil {
						t.Error(err)
						return
					}
				}
			})
			o := &owner{"c"}
			s, at, _, err := attachAt(d, key("s", 1), mustName(t, tc.stream), 0, o)
			if err != nil {
				t.Fatal(err)
			}
			var wrote, refused int
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && wrote < 150; {
				p := []byte(fmt.Sprintf("stream line %06d\n", at/19))
				err := s.Append(o, chunk(at, at+uint64(len(p)), p))
				switch {
				case err == nil:
					at += uint64(len(p))
					wrote++
				case errors.Is(err, target.ErrName), errors.Is(err, target.ErrStorage), errors.Is(err, target.ErrNotOwner):
					refused++
					o = &owner{"c"}
					if s, at, _, err = attachAt(d, key("s", 1), mustName(t, tc.stream), 0, o); err != nil {
						t.Fatal(err)
					}
				default:
					t.Fatal(err)
				}
				_, _ = d.Commit()
				d.CloseIdle(0)
			}
			close(stop)
			wg.Wait()
			mustClose(t, d)
			t.Logf("%d appends, %d refused", wrote, refused)
			for _, p := range []string{"a/y.log", "b/x.log", relpath.StateDir + "/state.db"} {
				if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil && bytes.Contains(b, []byte("stream line")) {
					t.Errorf("%s got the stream's bytes", p)
				}
			}
		})
	}
}
