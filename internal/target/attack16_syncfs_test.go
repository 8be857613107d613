//go:build linux

package target_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// TestSyncfsErrorOfAFileNotInTheCommit: syncfs(2) reports a writeback
// error once per descriptor of the file system, whichever file it was in.
// A commit whose syncfs fails fsyncs its own files, which are fine, and
// acknowledges them; the failed file z, appended after that commit's
// snapshot, is in the next commit. That commit's syncfs then reports
// nothing (the error was taken by the last one), and z's bytes, which the
// disk never got, were acknowledged. z's own descriptor still has the
// error: its fsync must be asked.
func TestSyncfsErrorOfAFileNotInTheCommit(t *testing.T) {
	defer target.SetSyncfsMin(target.SetSyncfsMin(2))
	dir, fillBacking, freeBacking := failingExt4Free(t)
	d, logs := openLogged(t, dir)
	oa, ob, oz := &owner{"a"}, &owner{"b"}, &owner{"z"}
	sa, _, _ := mustAttach(t, d, key("a", 1), "a.log", 0, oa)
	sb, _, _ := mustAttach(t, d, key("b", 1), "b.log", 0, ob)
	sz, _, _ := mustAttach(t, d, key("z", 1), "z.log", 0, oz)
	endA := mustAppend(t, d, sa, oa, 0, lines("a", 0, 10))
	endB := mustAppend(t, d, sb, ob, 0, lines("b", 0, 10))
	zOK := lines("z", 0, 10)
	endZ := mustAppend(t, d, sz, oz, 0, zOK)
	mustCommit(t, d)

	// a and b get data whose writeback is done before the disk fills: their
	// fsyncs succeed.
	endA = mustAppend(t, d, sa, oa, endA, lines("a", 10, 10))
	mustAppend(t, d, sb, ob, endB, lines("b", 10, 10))
	flushPath(t, filepath.Join(dir, "a.log"))
	flushPath(t, filepath.Join(dir, "b.log"))
	fillBacking()
	zLost := lines(strings.Repeat("lost", 40), 10, 30000) // ~5 MiB: more than the full backing store takes
	endZLost := endZ + uint64(len(zLost))
	var zWriteback error
	fired := false
	target.SetSyncfs(t, func(fd int) error {
		if fired {
			return unix.Syncfs(fd)
		}
		fired = true
		// After the commit's snapshot, before its syncfs: z is written,
		// and its writeback (here by another descriptor, as the kernel's
		// flusher or this syncfs itself would) fails.
		mustAppend(t, d, sz, oz, endZ, zLost)
		f, err := os.Open(filepath.Join(dir, "z.log"))
		if err != nil {
			t.Fatal(err)
		}
		zWriteback = unix.Fdatasync(int(f.Fd()))
		f.Close()
		return unix.Syncfs(fd)
	})
	acks, err := d.Commit()
	if zWriteback == nil || !strings.Contains(logs.String(), "syncfs of the target file system failed") {
		t.Skipf("z's writeback did not fail (%v) or syncfs did not report it: the full backing store did not fail writes", zWriteback)
	}
	t.Logf("commit with a failed syncfs: %d acks, %v; z's writeback: %v", len(acks), err, zWriteback)
	freeBacking()

	mustAppend(t, d, sa, oa, endA, lines("a", 20, 10))
	acks, err = d.Commit()
	t.Logf("next commit: %d acks, %v", len(acks), err)
	if a, ok := ackFor(t, acks, sz); ok && a.At.Offset == endZLost {
		onDisk := readDirect(t, filepath.Join(dir, "z.log"))
		t.Errorf("z acknowledged up to %d after its writeback failed; on disk its %d bytes past the last good commit are %s",
			a.At.Offset, len(zLost), map[bool]string{true: "intact", false: "not what was written"}[strings.HasPrefix(onDisk, zOK+zLost)])
	}
}

// flushPath writes back a file's dirty pages through a descriptor of its
// own (the Dir's descriptor keeps its error state).
func flushPath(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
}

// readDirect reads a file from the disk, not the page cache (O_DIRECT).
func readDirect(t *testing.T, path string) string {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const block = 4096
	raw := make([]byte, 1<<20+block)
	off := int(block - uintptr(unsafe.Pointer(&raw[0]))%block)
	buf := raw[off : off+1<<20]
	var out []byte
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatalf("O_DIRECT read %s: %v", path, err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}
