package target_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"thunder/internal/harness"
	"thunder/internal/target"
)

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// TestDiskFull: a write that runs out of space fails with ErrStorage and is
// cut back (no partial line), the stream stays where it was, nothing past
// the good data is acknowledged, and once space is free the same data goes
// through.
func TestDiskFull(t *testing.T) {
	mnt := harness.MountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "target")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dir)
	o := &owner{"c"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "sub/x.log", 0, o)
	good := lines("good", 0, 100)
	end := mustAppend(t, d, s, o, 0, good)
	mustCommit(t, d)
	name := filepath.Join(dir, "sub", "x.log")

	// Leave exactly 16 KiB free, less than the next payload.
	writeFile(t, filepath.Join(mnt, "gap"), strings.Repeat("g", 16<<10))
	fill(t, filepath.Join(mnt, "filler"))
	if err := os.Remove(filepath.Join(mnt, "gap")); err != nil {
		t.Fatal(err)
	}

	// What fits still goes in.
	mid := lines("mid", 0, 20)
	end = mustAppend(t, d, s, o, end, mid)
	good += mid

	big := lines(strings.Repeat("b", 90), 0, 1000) // ~100 KiB: a partial write
	err := s.Append(o, chunk(end, end+uint64(len(big)), []byte(big)))
	if !errors.Is(err, target.ErrStorage) {
		t.Fatalf("Append(100 KiB) on a full disk = %v, want ErrStorage", err)
	}
	if got := fileSize(t, name); got != int64(len(good)) {
		t.Errorf("file size after failed append = %d, want %d (partial write not cut back)", got, len(good))
	}
	if got := d.DirtyBytes(); got != int64(len(mid)) {
		t.Errorf("DirtyBytes() after failed append = %d, want %d", got, len(mid))
	}
	// The stream did not move: the same offset is still expected.
	if err := s.Append(o, chunk(end+uint64(len(big)), end+uint64(len(big))+2, []byte("z\n"))); !errors.Is(err, target.ErrOffset) {
		t.Errorf("Append past the failed data = %v, want ErrOffset", err)
	}
	// The state store may or may not find room; either way nothing past the
	// good data is acknowledged.
	acks, err := d.Commit()
	ackedMid := false
	for _, a := range acks {
		if a.At.Offset > end {
			t.Errorf("Commit() on a full disk acked %s at %d, past the good data at %d (err %v)", a.Stream.Key, a.At.Offset, end, err)
		}
		ackedMid = ackedMid || a.At.Offset == end
	}
	if err != nil && !errors.Is(err, target.ErrStorage) {
		t.Errorf("Commit() on a full disk = %v, want nil or ErrStorage", err)
	}
	t.Logf("Commit() on a full disk: %d acks, err %v", len(acks), err)

	// Free space: the same data goes through and is acknowledged.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	s, off, _ := mustAttach(t, d, k, "sub/x.log", 0, o)
	if off != end {
		t.Fatalf("Attach after disk full = %d, want %d", off, end)
	}
	if !ackedMid {
		if a, ok := ackFor(t, mustCommit(t, d), s); !ok || a.At.Offset != end {
			t.Errorf("Commit() after freeing space = %+v, want ack at %d", a, end)
		}
	}
	end = mustAppend(t, d, s, o, off, big)
	acks = mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end {
		t.Errorf("Commit() = %v, want ack at %d", acks, end)
	}
	mustClose(t, d)
	if got := readFile(t, name); got != good+big {
		t.Errorf("file = %d bytes, want %d (good+big)", len(got), len(good)+len(big))
	}
	d = mustOpen(t, dir)
	if _, off, _ := mustAttach(t, d, k, "sub/x.log", 0, o); off != end {
		t.Errorf("Attach after reopen = %d, want %d", off, end)
	}
}

// TestDiskFullNewFile: no space even for a new file's first bytes.
func TestDiskFullNewFile(t *testing.T) {
	mnt := harness.MountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "target")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dir)
	mustCommit(t, d)
	fill(t, filepath.Join(mnt, "filler"))
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	p := lines("x", 0, 10)
	if err := s.Append(o, chunk(0, uint64(len(p)), []byte(p))); !errors.Is(err, target.ErrStorage) {
		t.Fatalf("Append on a full disk = %v, want ErrStorage", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "x.log")); err == nil && st.Size() != 0 {
		t.Errorf("x.log has %d bytes after failed append", st.Size())
	}
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, d, s, o, 0, p)
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "x.log")); got != p {
		t.Errorf("x.log = %q, want %q", got, p)
	}
}
