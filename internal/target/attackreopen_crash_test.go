//go:build linux

package target_test

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// TestAttackReopenSameFileCrashDuringItsSync: SIGHUP without a rotation
// (logrotate reopens every file, rotated or not). The Reopen commit takes
// x.log's descriptor, with L2 in it not yet recorded, and leaves the name
// to be opened afresh. An append during that commit's sync opened the
// same file again and recorded it before writing, at its length then, L2
// included, under the same key (name, inode) as the committed record: the
// committed length was gone from the state. A kill -9 before the commit's
// record: recovery cut to L1+L2 while the stream was committed at L1, and
// the collector's resend of L2 duplicated it. (Found by an independent
// attacker, 7 Dec.)
func TestAttackReopenSameFileCrashDuringItsSync(t *testing.T) {
	defer target.SetSyncfsMin(target.SetSyncfsMin(1))
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if !target.WritesBehind(d) {
		t.Skip("no syncfs on this file system")
	}
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	l1, l2, l3 := "L1 committed\n", "L2 in the Reopen commit\n", "L3 after it\n"
	end := mustAppend(t, d, s, o, 0, l1)
	mustCommit(t, d)
	end = mustAppend(t, d, s, o, end, l2)
	var snap stateSnapshot
	fired := false
	appended := make(chan error, 1)
	target.SetSyncfs(t, func(fd int) error {
		if !fired {
			fired = true
			// A session's append, during the Reopen commit's sync: give
			// it the time it takes to open and record the name, then
			// kill -9 (snap). It may wait for the commit instead.
			go func() { appended <- s.Append(o, chunk(end, end+uint64(len(l3)), []byte(l3))) }()
			select {
			case err := <-appended:
				appended <- err
			case <-time.After(time.Second):
			}
			snap = snapshotState(t, dir)
		}
		return unix.Syncfs(fd)
	})
	if err := d.Reopen(); err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("the Reopen commit did not use syncfs")
	}
	if err := <-appended; err != nil {
		t.Fatalf("the append during the Reopen commit: %v", err)
	}
	mustCommit(t, d)
	if got, want := readFile(t, filepath.Join(dir, "x.log")), l1+l2+l3; got != want {
		t.Fatalf("x.log = %q, want %q", got, want)
	}
	mustClose(t, d)

	restoreState(t, dir, snap)
	d2 := mustOpen(t, dir)
	o2 := &owner{"again"}
	s2, at, _ := mustAttach(t, d2, key("c", 1), "x.log", 0, o2)
	got := readFile(t, filepath.Join(dir, "x.log"))
	if at != uint64(len(l1)) || got != l1 {
		// What the collector does: resend from the committed offset.
		if at <= uint64(len(got)) {
			mustAppend(t, d2, s2, o2, at, (l1 + l2 + l3)[at:])
			mustCommit(t, d2)
		}
		t.Fatalf("after a kill -9 during the Reopen commit the stream resumes at %d with x.log = %q (want %d, %q); after the resend x.log = %q, want %q",
			at, got, len(l1), l1, readFile(t, filepath.Join(dir, "x.log")), l1+l2+l3)
	}
	mustClose(t, d2)
}
