//go:build linux

package target_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/target"
)

// failingExt4 mounts an ext4 without a journal on a loop device whose
// backing file lives on a small tmpfs; filling that tmpfs makes the ext4's
// writeback, hence fsync, fail while writes and truncates (page cache)
// still succeed. The state dir gets a healthy tmpfs of its own. It returns
// the target dir and a func that fills the backing store.
func failingExt4(t *testing.T) (string, func()) {
	t.Helper()
	dir, fillBacking, _ := failingExt4Free(t)
	return dir, fillBacking
}

// failingExt4Free is failingExt4 that can also free the backing store
// again (remove the filler), so writeback works after the fault.
func failingExt4Free(t *testing.T) (dir string, fillBacking, freeBacking func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	back := harness.MountTmpfs(t, "64m")
	img := filepath.Join(back, "img")
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Skipf("%s %v: %v %s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", "48m", img)
	run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", img)
	loop := run("losetup", "-f", "--show", img)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	mnt := t.TempDir()
	run("mount", "-o", "errors=continue", loop, mnt)
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	dir = filepath.Join(mnt, "target")
	if err := os.MkdirAll(filepath.Join(dir, ".thunder"), 0o700); err != nil {
		t.Fatal(err)
	}
	run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", filepath.Join(dir, ".thunder"))
	t.Cleanup(func() { _ = syscall.Unmount(filepath.Join(dir, ".thunder"), syscall.MNT_DETACH) })
	filler := filepath.Join(back, "filler")
	return dir, func() { fill(t, filler) }, func() { _ = os.Remove(filler) }
}

// RT5: Reopen (SIGHUP) with dirty data takes the descriptor away from the
// file in its snapshot (f.fd = nil, f.committed = -1). An append during the
// commit's fsync opens the name again; with no rotation that is the same
// inode, recorded with its current length (including the bytes being
// synced). If the fsync then fails, commit.go cuts the old descriptor to
// the committed length, then rewindLocked cuts f's *new* descriptor, same
// inode, to f.committed = the length at the reopen: that extends the file
// with NUL bytes.
func TestRTReopenFsyncFailZeros(t *testing.T) {
	dir, fillBacking := failingExt4(t)
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	a := lines("committed", 0, 200)
	end := mustAppend(t, d, s, o, 0, a)
	mustCommit(t, d)
	fillBacking()
	b := lines(strings.Repeat("dirty", 20), 0, 40000) // ~200 KiB in the page cache
	end = mustAppend(t, d, s, o, end, b)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var reopened int
	wg.Add(1)
	go func() {
		defer wg.Done()
		off := end
		p := []byte("during the reopen commit\n")
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := s.Append(o, chunk(off, off+uint64(len(p)), p))
			if err != nil {
				if !errors.Is(err, target.ErrNotOwner) && !errors.Is(err, target.ErrStorage) {
					t.Errorf("append: %v", err)
				}
				t.Logf("appender stopped: %v", err)
				return
			}
			off += uint64(len(p))
			reopened++
			time.Sleep(10 * time.Microsecond)
		}
	}()
	err := d.Reopen()
	close(stop)
	wg.Wait()
	t.Logf("Reopen() = %v; %d appends ran alongside", err, reopened)
	if err == nil {
		t.Skip("fsync did not fail on the full backing store")
	}
	got, rerr := os.ReadFile(filepath.Join(dir, "x.log"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if n := bytes.Count(got, []byte{0}); n > 0 {
		t.Errorf("x.log = %d bytes after the failed Reopen commit, %d of them NUL (committed length %d)", len(got), n, len(a))
	} else if !bytes.HasPrefix(got, []byte(a)) {
		t.Errorf("x.log lost committed bytes: %d bytes", len(got))
	} else {
		t.Logf("x.log = %d bytes, no NUL", len(got))
	}
}

func fdsOn(t *testing.T, path string) int {
	n := 0
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && p == path {
			n++
		}
	}
	return n
}

// RT11: the twin of RT5 through a failed state transaction instead of a
// failed fsync: Reopen's commit took the descriptor, an append reopened the
// same inode (recorded at its current length), then the state transaction
// fails; unrecorded() cuts the old descriptor to the committed length and
// marks the file broken; the next commit's rewindLocked "cuts" the new
// descriptor to the length at the reopen, which extends the file with NULs.
// Since appends wait for the Reopen commit (7 Dec), none opens x.log again
// while it runs: that is what this checks first.
func TestRTReopenStateFailZeros(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chattr needs root")
	}
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	a := lines("committed", 0, 200)
	end := mustAppend(t, d, s, o, 0, a)
	mustCommit(t, d)
	block := lines(strings.Repeat("dirty", 200), 0, 1000) // ~1 MB
	for i := 0; i < 300; i++ {
		end = mustAppend(t, d, s, o, end, block)
	}
	name := filepath.Join(dir, "x.log")
	reopenErr := make(chan error, 1)
	reopened := make(chan struct{})
	go func() { err := d.Reopen(); reopenErr <- err; close(reopened) }()
	p := []byte("during the reopen commit\n")
	off := end
	deadline := time.Now().Add(10 * time.Second)
	locked := false
	for time.Now().Before(deadline) {
		select {
		case <-reopened:
			deadline = time.Time{} // over: nothing more to look for
			continue
		default:
		}
		if err := s.Append(o, chunk(off, off+uint64(len(p)), p)); err != nil {
			t.Logf("append: %v", err)
			break
		}
		off += uint64(len(p))
		if fdsOn(t, name) >= 2 {
			if out, err := exec.Command("chattr", "+i", statePath(dir)).CombinedOutput(); err != nil {
				t.Skipf("chattr: %v %s", err, out)
			}
			locked = true
			break
		}
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", statePath(dir)).Run() })
	err := <-reopenErr
	t.Logf("Reopen() = %v (state locked during it: %v)", err, locked)
	_ = exec.Command("chattr", "-i", statePath(dir)).Run()
	if !locked {
		// Appends wait for the Reopen commit before they open the name
		// again (errReopening): no second descriptor on x.log while it
		// runs, so the window is gone.
		t.Logf("no append opened x.log again during the Reopen commit (%d bytes appended meanwhile)", off-end)
		return
	}
	if err == nil {
		t.Skip("did not hit the window: the reopen commit's state transaction succeeded")
	}
	_, cerr := d.Commit()
	t.Logf("next Commit() = %v", cerr)
	got, rerr := os.ReadFile(name)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if n := bytes.Count(got, []byte{0}); n > 0 {
		t.Errorf("x.log = %d bytes, %d of them NUL (committed length %d): the rewind through the reopened descriptor extended the file", len(got), n, len(a))
	}
}
