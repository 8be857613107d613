package target_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/target"
)

// TestDescriptorBudget: with more target files than MaxOpenFiles, appends
// to all of them, round after round, never hold more than MaxOpenFiles
// descriptors and never fail: a file without one waits for an idle file to
// be closed, or for a commit that makes one idle.
func TestDescriptorBudget(t *testing.T) {
	const budget, files, rounds = 16, 200, 5
	dir := t.TempDir()
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger(), MaxOpenFiles: budget})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	o := &owner{"c"}
	streams := make([]*target.Stream, files)
	ends := make([]uint64, files)
	for i := range streams {
		streams[i], _, _ = mustAttach(t, d, key("c", i), fmt.Sprintf("f%03d.log", i), 0, o)
	}
	peak := 0
	for r := range rounds {
		for i, s := range streams {
			ends[i] = mustAppend(t, d, s, o, ends[i], fmt.Sprintf("round %d file %d\n", r, i))
			peak = max(peak, fdsUnder(dir))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustClose(t, d)
	t.Logf("%d files × %d rounds: at most %d target descriptors open (budget %d)", files, rounds, peak, budget)
	if peak > budget {
		t.Errorf("%d target descriptors open at once, budget %d", peak, budget)
	}
	for i := range files {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%03d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(got), "\n"); n != rounds {
			t.Fatalf("f%03d.log holds %d lines, want %d", i, n, rounds)
		}
	}
}

// fdsUnder counts this process's descriptors of files in dir, outside the
// state dir.
func fdsUnder(dir string) int {
	n := 0
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(p, dir+"/") && !strings.HasPrefix(p, filepath.Join(dir, ".thunder")) {
			n++
		}
	}
	return n
}
