//go:build linux

package target_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// TestRecoverCutsSyncedOnce: a restart that cuts many files back makes the
// cuts durable with syncfs(2), not an fsync each (issue 16: 7,782 cuts
// took 5.4 s of a reconnect storm's restart). A syncfs that fails (it also
// reports a write error of the file system no one saw yet, maybe not of
// ours) has each file fsynced instead: the start goes on, files cut.
func TestRecoverCutsSyncedOnce(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(map[bool]string{false: "syncfs", true: "failing syncfs"}[failing], func(t *testing.T) {
			testRecoverCutsSynced(t, failing)
		})
	}
}

func testRecoverCutsSynced(t *testing.T, failing bool) {
	const n = 20
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if !target.WritesBehind(d) {
		t.Skip("commits cannot use syncfs(2) here: every cut is fsynced")
	}
	o := &owner{"c"}
	kept := lines("kept", 0, 3)
	names := make([]string, n)
	streams := make([]*target.Stream, n)
	ends := make([]uint64, n)
	for i := range n {
		names[i] = filepath.Join("h", fmt.Sprintf("f%02d.log", i))
		streams[i], _, _ = mustAttach(t, d, key("c", i), names[i], 0, o)
		ends[i] = mustAppend(t, d, streams[i], o, 0, kept)
	}
	mustCommit(t, d)
	for i, s := range streams {
		mustAppend(t, d, s, o, ends[i], lines("lost", 3, 2))
	}
	crash(t, d, dir) // kill -9 here

	if recs := fileRecords(t, dir); len(recs) != n {
		t.Fatalf("%d file records after the crash, want %d", len(recs), n)
	}
	var calls atomic.Int64
	target.SetSyncfs(t, func(fd int) error {
		calls.Add(1)
		if failing {
			return syscall.EIO
		}
		return unix.Syncfs(fd)
	})
	d = mustOpen(t, dir)
	if calls.Load() == 0 {
		t.Errorf("recovery cut %d files back without syncfs; want them synced at once", n)
	}
	mustClose(t, d)
	for _, name := range names {
		if got := readFile(t, filepath.Join(dir, name)); got != kept {
			t.Errorf("%s after recovery = %q, want %q", name, got, kept)
		}
	}
}

// TestRecoverFallbackMissesAFile: when the restart's syncfs fails and a
// file it cut is gone from where it was found by the time it is to be
// fsynced alone (moved to another directory between), the start fails
// naming it and keeps the records: its cut may not be on disk, and a start
// that dropped the records would never cut it again.
func TestRecoverFallbackMissesAFile(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if !target.WritesBehind(d) {
		t.Skip("commits cannot use syncfs(2) here: every cut is fsynced")
	}
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "h/a.log", 0, o)
	end := mustAppend(t, d, s, o, 0, lines("kept", 0, 3))
	mustCommit(t, d)
	mustAppend(t, d, s, o, end, lines("lost", 3, 2))
	crash(t, d, dir) // kill -9 here
	target.SetSyncfs(t, func(int) error {
		if err := os.MkdirAll(filepath.Join(dir, "elsewhere"), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.Rename(filepath.Join(dir, "h/a.log"), filepath.Join(dir, "elsewhere/a.log")); err != nil {
			t.Error(err)
		}
		return syscall.EIO
	})
	if d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()}); err == nil {
		_ = d.Close()
		t.Fatal("Open succeeded though a file it cut could not be fsynced after syncfs failed")
	} else if !strings.Contains(err.Error(), "h/a.log") {
		t.Errorf("Open = %v; want an error naming h/a.log", err)
	}
	if recs := fileRecords(t, dir); len(recs) != 1 {
		t.Errorf("%d file records after a start that failed, want the 1 kept", len(recs))
	}
}
