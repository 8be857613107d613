package watch_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/watch"
)

// started is a Watcher whose Run goroutine the test owns.
type started struct {
	*watch.Watcher
	dir string
}

// mustStart watches dir with the given rescan interval; cleanup cancels Run,
// checks it returned nil, and closes the watcher.
func mustStart(t *testing.T, dir string, interval time.Duration) started {
	t.Helper()
	w := mustNew(t, dir, interval)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return started{w, w.Dir()}
}

func mustNew(t *testing.T, dir string, interval time.Duration) *watch.Watcher {
	t.Helper()
	w, err := watch.New(watch.Config{
		Dir:            dir,
		RescanInterval: interval,
		Logger:         slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatalf("New(%s) = %v", dir, err)
	}
	return w
}

// waitEvent reads events until one matches, failing after a deadline. It
// returns the events read before the match.
func waitEvent(t *testing.T, w *watch.Watcher, what string, match func(watch.Event) bool) []watch.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	var seen []watch.Event
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("Events closed while waiting for %s; saw %v", what, seen)
			}
			if match(ev) {
				return seen
			}
			seen = append(seen, ev)
		case <-deadline:
			t.Fatalf("no %s within 5s; saw %v", what, seen)
		}
	}
}

func waitOp(t *testing.T, w *watch.Watcher, path string, op watch.Op) []watch.Event {
	t.Helper()
	return waitEvent(t, w, fmt.Sprintf("%v %s", op, path), func(ev watch.Event) bool {
		return ev.Path == path && ev.Op&op != 0
	})
}

func isRescan(ev watch.Event) bool { return ev.Op == watch.Rescan && ev.Path == "" }

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	mustWrite(t, file, "")
	tests := []struct {
		name, dir string
	}{
		{"missing", filepath.Join(dir, "missing")},
		{"not a dir", file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := watch.New(watch.Config{Dir: tt.dir})
			if err == nil {
				_ = w.Close()
				t.Fatalf("New(%s) = nil error", tt.dir)
			}
			if !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("New(%s) = %v, want error naming the dir", tt.dir, err)
			}
		})
	}
}

func TestFileEvents(t *testing.T) {
	w := mustStart(t, t.TempDir(), time.Hour)
	a, b := filepath.Join(w.dir, "a.log"), filepath.Join(w.dir, "b.log")

	mustWrite(t, a, "")
	waitOp(t, w.Watcher, a, watch.Create)
	mustWrite(t, a, "line\n")
	waitOp(t, w.Watcher, a, watch.Write)
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, a, watch.Rename)
	waitOp(t, w.Watcher, b, watch.Create)
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, b, watch.Remove)
}

func TestExistingSubdirs(t *testing.T) {
	dir := t.TempDir()
	deep := filepath.Join(dir, "x", "y", "z")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, dir, time.Hour)
	f := filepath.Join(w.dir, "x", "y", "z", "f.log")
	mustWrite(t, f, "")
	waitOp(t, w.Watcher, f, watch.Create)
}

func TestNewSubdirPopulatedAtOnce(t *testing.T) {
	w := mustStart(t, t.TempDir(), time.Hour)
	sub := filepath.Join(w.dir, "sub")
	deep := filepath.Join(sub, "deep")
	// Files are created before the watcher can have watched sub: it must
	// find them by walking sub.
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(sub, "a.log"), filepath.Join(deep, "b.log")
	mustWrite(t, a, "1\n")
	mustWrite(t, b, "1\n")

	waitOp(t, w.Watcher, sub, watch.Create)
	want := map[string]bool{a: true, b: true}
	waitEvent(t, w.Watcher, "Create of a.log and b.log", func(ev watch.Event) bool {
		if ev.Op&watch.Create != 0 {
			delete(want, ev.Path)
		}
		return len(want) == 0
	})
	// Now both directories are watched.
	mustWrite(t, b, "2\n")
	waitOp(t, w.Watcher, b, watch.Write)
	c := filepath.Join(deep, "c.log")
	mustWrite(t, c, "")
	waitOp(t, w.Watcher, c, watch.Create)
}

func TestRenamedSubdir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "old", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, dir, time.Hour)
	oldDir, newDir := filepath.Join(w.dir, "old"), filepath.Join(w.dir, "new")
	if err := os.Rename(oldDir, newDir); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, newDir, watch.Create)
	// Events under the moved tree carry the new name, not the old one.
	f := filepath.Join(newDir, "inner", "f.log")
	mustWrite(t, f, "")
	seen := waitOp(t, w.Watcher, f, watch.Create)
	for _, ev := range seen {
		if strings.HasPrefix(ev.Path, oldDir+"/") {
			t.Errorf("event %v names the old directory", ev)
		}
	}
}

func TestRemovedSubdir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, dir, time.Hour)
	sub := filepath.Join(w.dir, "sub")
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, sub, watch.Remove)
	// Recreated under the same name, it is watched again.
	if err := os.MkdirAll(filepath.Join(sub, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, filepath.Join(sub, "inner"), watch.Create)
	f := filepath.Join(sub, "inner", "f.log")
	mustWrite(t, f, "")
	mustWrite(t, f, "x")
	waitOp(t, w.Watcher, f, watch.Write)
}

func TestSymlinkedDirNotFollowed(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, dir, time.Hour)
	late := filepath.Join(w.dir, "late")
	if err := os.Symlink(outside, late); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, late, watch.Create)
	mustWrite(t, filepath.Join(outside, "f.log"), "x")
	// inotify reports events in order: once the marker is seen, an event
	// from the symlinked directory would have been seen before it.
	marker := filepath.Join(w.dir, "marker")
	mustWrite(t, marker, "")
	for _, ev := range waitOp(t, w.Watcher, marker, watch.Create) {
		if strings.HasPrefix(ev.Path, filepath.Join(w.dir, "link")+"/") || strings.HasPrefix(ev.Path, late+"/") {
			t.Errorf("event %v from a symlinked directory", ev)
		}
	}
}

func TestOverflowCoalesces(t *testing.T) {
	w := mustStart(t, t.TempDir(), time.Hour)
	// Without reading, create more files than the channel holds.
	for i := range watch.EventsCapacity + 100 {
		mustWrite(t, filepath.Join(w.dir, fmt.Sprint(i)), "")
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if !watch.Overflowed(w.Watcher) {
			return fmt.Errorf("not overflowed; %d events queued", len(w.Events()))
		}
		return nil
	})
	seen := waitEvent(t, w.Watcher, "Rescan", isRescan)
	if len(seen) != watch.EventsCapacity {
		t.Errorf("read %d events before Rescan, want %d", len(seen), watch.EventsCapacity)
	}
	// Only one Rescan is owed; afterwards events flow again.
	after := filepath.Join(w.dir, "after")
	mustWrite(t, after, "")
	for _, ev := range waitOp(t, w.Watcher, after, watch.Create) {
		if isRescan(ev) {
			t.Errorf("second Rescan before %s", after)
		}
	}
}

func TestPeriodicRescan(t *testing.T) {
	w := mustStart(t, t.TempDir(), 20*time.Millisecond)
	for range 3 {
		waitEvent(t, w.Watcher, "Rescan", isRescan)
	}
}

func TestDirRemovedAndBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, dir, 20*time.Millisecond)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	waitOp(t, w.Watcher, dir, watch.Remove)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, w.Watcher, "Rescan", isRescan)
	// The rescan after it came back watches it again; poll, as a rescan
	// may have run before the Mkdir.
	f := filepath.Join(dir, "f.log")
	harness.WaitFor(t, 5*time.Second, func() error {
		mustWrite(t, f, "x")
		for {
			select {
			case ev := <-w.Events():
				if ev.Path == f && ev.Op&watch.Write != 0 {
					return nil
				}
			default:
				return fmt.Errorf("no Write %s", f)
			}
		}
	})
}

func TestRunStops(t *testing.T) {
	before := runtime.NumGoroutine()
	w := mustNew(t, t.TempDir(), time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitEvent(t, w, "Rescan", isRescan)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for range w.Events() {
		// Drain: the channel must be closed.
	}
	if err := w.Run(context.Background()); !errors.Is(err, watch.ErrRunning) {
		t.Errorf("second Run = %v, want %v", err, watch.ErrRunning)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, want %d", n, before)
		}
		return nil
	})
}

func TestRunAfterClose(t *testing.T) {
	w := mustNew(t, t.TempDir(), time.Hour)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); !errors.Is(err, watch.ErrClosed) {
		t.Errorf("Run after Close = %v, want %v", err, watch.ErrClosed)
	}
}
