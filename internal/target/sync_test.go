//go:build linux

package target_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"thunder/internal/target"
)

// TestSyncfsFailure: a commit that syncs its files with one syncfs(2) and
// sees it fail acknowledges only the files whose own fsync then succeeds
// (syncfs reports the failure of any file on the file system), rewinds the
// others, keeps what was committed, and delivers once the file system
// recovers.
func TestSyncfsFailure(t *testing.T) {
	defer target.SetSyncfsMin(target.SetSyncfsMin(1))
	dir, fillBacking, freeBacking := failingExt4Free(t)
	d, logs := openLogged(t, dir)
	const files = 20
	type st struct {
		s     *target.Stream
		o     *owner
		end   uint64
		ok    string // committed content
		dirty string
	}
	ss := make([]*st, files)
	for i := range ss {
		o := &owner{fmt.Sprintf("c%d", i)}
		s, _, _ := mustAttach(t, d, key(o.name, 1), fmt.Sprintf("f%02d.log", i), 0, o)
		a := lines("committed", 0, 100)
		ss[i] = &st{s: s, o: o, end: mustAppend(t, d, s, o, 0, a), ok: a}
	}
	if acks := mustCommit(t, d); len(acks) != files {
		t.Fatalf("first commit: %d acks, want %d", len(acks), files)
	}
	fillBacking()
	for _, x := range ss {
		x.dirty = lines(strings.Repeat("dirty", 40), 0, 2000) // ~400 KiB each: more than the full backing store holds
		mustAppend(t, d, x.s, x.o, x.end, x.dirty)
	}
	acks, err := d.Commit()
	// Without syncfs (the portable tree, Windows's: no write-behind either)
	// each file's own fsync fails, and the rest of the test holds the same.
	if target.WritesBehind(d) && !strings.Contains(logs.String(), "syncfs of the target file system failed") {
		t.Errorf("the commit did not see syncfs fail; log:\n%s", logs.String())
	}
	if err == nil {
		t.Skip("the commit did not fail on the full backing store")
	}
	t.Logf("Commit() = %d acks of %d, %v", len(acks), files, firstLine(err))
	if len(acks) == files {
		t.Errorf("every stream acknowledged after a failed sync")
	}
	for _, a := range acks {
		for _, x := range ss {
			if x.s == a.Stream {
				x.end, x.ok = a.At.Offset, x.ok+x.dirty
			}
		}
	}
	freeBacking()
	for i, x := range ss {
		s, at, _ := mustAttach(t, d, key(x.o.name, 1), fmt.Sprintf("f%02d.log", i), 0, x.o)
		if at != x.end {
			t.Fatalf("f%02d: resumes at %d, want the committed %d", i, at, x.end)
		}
		more := lines("after", 0, 10)
		mustAppend(t, d, s, x.o, at, more)
		x.ok += more
	}
	mustCommit(t, d)
	for i, x := range ss {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%02d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != x.ok {
			t.Errorf("f%02d.log: %d bytes, want exactly the %d committed", i, len(got), len(x.ok))
		}
	}
}

// openLogged opens a Dir on dir whose log is returned, closed at the end
// of the test.
func openLogged(t *testing.T, dir string) (*target.Dir, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	d, err := target.Open(target.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, logs
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func TestKernelVersion(t *testing.T) {
	for _, c := range []struct {
		release      string
		major, minor int
		ok           bool
	}{{"6.18.44-fc-v1045", 6, 18, true}, {"5.8.0", 5, 8, true}, {"4.19-rc1", 4, 19, true}, {"5.10+", 5, 10, true}, {"garbage", 0, 0, false}, {"x.1", 0, 1, false}} {
		major, minor, ok := target.KernelVersion(c.release)
		if ok != c.ok || ok && (major != c.major || minor != c.minor) {
			t.Errorf("kernelVersion(%q) = %d, %d, %v; want %d, %d, %v", c.release, major, minor, ok, c.major, c.minor, c.ok)
		}
	}
}
