//go:build thunder_portable && linux

package target_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"thunder/internal/target"
)

// TestPortableNoWriteBehind: the os.Root tree is Windows's, which has no
// syncfs(2), so an append to a target file closed idle is never buffered
// (behind.go): it opens the file again within the budget, and each commit
// fsyncs its files one by one. The same appends on the openat tree of a
// kernel with syncfs are buffered (TestWriteBehind).
func TestPortableNoWriteBehind(t *testing.T) {
	const budget, files = 4, 12
	dir := t.TempDir()
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger(), MaxOpenFiles: budget})
	if err != nil {
		t.Fatal(err)
	}
	if target.WritesBehind(d) {
		t.Fatal("the portable tree writes behind: it has no syncfs(2) to sync the files it closed")
	}
	o := &owner{"c"}
	streams, ends, want := make([]*target.Stream, files), make([]uint64, files), make([]string, files)
	name := func(i int) string { return fmt.Sprintf("d%d/f%02d.log", i%2, i) }
	for i := range files {
		streams[i], _, _ = mustAttach(t, d, key("c", i), name(i), 0, o)
	}
	for r := range 3 {
		for i := range files {
			p := fmt.Sprintf("round %d of file %02d\n", r, i)
			ends[i] = mustAppend(t, d, streams[i], o, ends[i], p)
			want[i] += p
			if n := target.BehindBytes(d); n != 0 {
				t.Fatalf("round %d, %s: %d bytes buffered, want none", r, name(i), n)
			}
			if n := fdsUnder(dir); n > budget {
				t.Fatalf("round %d, %s: %d target descriptors open, budget %d", r, name(i), n, budget)
			}
			if i%(budget-1) == budget-2 {
				mustCommit(t, d) // the open files become idle: room for the next
			}
		}
		acks := mustCommit(t, d)
		for i, s := range streams {
			if a, ok := ackFor(t, acks, s); ok && a.At.Offset != ends[i] {
				t.Fatalf("round %d, %s: ack at %d, want %d", r, name(i), a.At.Offset, ends[i])
			}
		}
	}
	mustClose(t, d)
	for i := range files {
		if got := readFile(t, filepath.Join(dir, name(i))); got != want[i] {
			t.Errorf("%s = %q, want %q", name(i), got, want[i])
		}
	}
}
