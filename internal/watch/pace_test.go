package watch_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"thunder/internal/watch"
)

// TestPace: with pacing on, a hot file's many writes arrive as few events,
// and the writes of many files are all still reported.
func TestPace(t *testing.T) {
	dir := t.TempDir()
	w, err := watch.New(watch.Config{Dir: dir, Pace: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		w.Close()
	})

	const files = 200
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.log", i)), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hot := filepath.Join(dir, "hot.log")
	f, err := os.OpenFile(hot, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	const writes = 20_000
	for range writes {
		if _, err := f.Write([]byte("line\n")); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	seen := make(map[string]bool)
	hotEvents := 0
	deadline := time.After(10 * time.Second)
	for len(seen) < files+1 {
		select {
		case ev := <-w.Events():
			if ev.Op&watch.Write != 0 {
				seen[ev.Path] = true
				if ev.Path == hot {
					hotEvents++
				}
			}
		case <-deadline:
			t.Fatalf("after 10s: write events for %d of %d files", len(seen), files+1)
		}
	}
	if hotEvents > writes/4 {
		t.Errorf("%d write events for %d writes to one file: pacing merged too few", hotEvents, writes)
	}
	t.Logf("%d writes to one file reported as %d events", writes, hotEvents)
}
