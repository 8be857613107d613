package target_test

import (
	"errors"
	"path/filepath"
	"testing"

	"thunder/internal/target"
)

// TestMove: a stream moved to another name continues there from the end of
// what the old name got, which keeps it; the old stream takes no more
// appends; and once a newer connection took the stream, the old owner can
// no longer move it.
func TestMove(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	k, o := key("web-1", 1), new(owner)
	s, _, _ := mustAttach(t, d, k, "web-1/2026-12-02/a.log", 0, o)
	end := mustAppend(t, d, s, o, 0, "one\n")
	mustCommit(t, d)
	ns, err := s.Move(o, mustName(t, "web-1/2026-12-03/a.log"))
	if err != nil {
		t.Fatalf("Move = %v", err)
	}
	if ns.Offset() != end || ns.Committed().Offset != end {
		t.Fatalf("moved stream at %d, committed %d; want both %d", ns.Offset(), ns.Committed().Offset, end)
	}
	end2 := mustAppend(t, d, ns, o, end, "two\n")
	if err := s.Append(o, chunk(end2, end2+4, []byte("old\n"))); !errors.Is(err, target.ErrNotOwner) {
		t.Errorf("Append to the stream moved away = %v, want ErrNotOwner", err)
	}
	mustCommit(t, d)
	for name, want := range map[string]string{"2026-12-02/a.log": "one\n", "2026-12-03/a.log": "two\n"} {
		if got := readFile(t, filepath.Join(dir, "web-1", name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	mustAttach(t, d, k, "web-1/2026-12-03/a.log", end2, new(owner)) // the collector reconnected
	if _, err := ns.Move(o, mustName(t, "web-1/2026-12-04/a.log")); !errors.Is(err, target.ErrNotOwner) {
		t.Errorf("Move by an owner that lost the stream = %v, want ErrNotOwner", err)
	}
	mustClose(t, d)
}
