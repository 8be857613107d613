package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"thunder/internal/linecheck"
)

// TestRetentionThenRestart is the attack's first defect with real
// processes and no attacker: a retention job deletes the target files
// logrotate moved aside after a SIGHUP, new target files get their inodes
// (ext4 reuses them at once), and later restarts, SIGTERM and kill -9, must
// not cut the new, fully acknowledged files back.
func TestRetentionThenRestart(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)

	const files = 8
	var old []writerSpec
	for i := range files {
		old = append(old, writerSpec{ID: fmt.Sprintf("old%d", i), Dir: src, Name: fmt.Sprintf("old-%d.log", i),
			Contract: linecheck.OpenWriteClose, Lines: 1, Rate: writerRate})
	}
	waitDelivered(t, target, startWriters(t, old...).Wait(), linecheck.Options{}, p, c)

	// logrotate moves the files aside and signals; the retention job then
	// deletes them once the processor let go of them.
	freed := map[uint64]string{}
	for _, s := range old {
		name := filepath.Join(target, s.Name)
		freed[inode(t, name)] = s.Name
		if err := os.Rename(name, name+".1"); err != nil {
			t.Fatal(err)
		}
	}
	p.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() error {
		if n := openFilesUnder(t, p, target); n != 0 {
			return fmt.Errorf("processor still holds %d target files after SIGHUP", n)
		}
		return nil
	}, p, c)
	// The new source files exist before the old target files go, so the
	// inodes freed are there for the target files the processor creates.
	c.Stop()
	var fresh []writerSpec
	for i := range files {
		fresh = append(fresh, writerSpec{ID: fmt.Sprintf("new%d", i), Dir: src, Name: fmt.Sprintf("new-%d.log", i),
			Contract: contracts[i%len(contracts)], Lines: 500, Rate: writerRate})
	}
	w := startWriters(t, fresh...)
	for _, s := range fresh {
		waitFile(t, 10*time.Second, filepath.Join(src, s.Name), 1)
	}
	for _, s := range old {
		if err := os.Remove(filepath.Join(target, s.Name+".1")); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart()
	expect := w.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	reused := 0
	for _, s := range fresh {
		if was, ok := freed[inode(t, filepath.Join(target, s.Name))]; ok {
			t.Logf("%s has the inode %s had", s.Name, was)
			reused++
		}
	}
	if reused == 0 {
		t.Skip("the file system of the target dir did not reuse any freed inode; this test needs one that does (ext4)")
	}

	p.Stop()
	p.Restart()
	finalCheckRunning(t, target, expect, "after SIGTERM and restart", p, c)
	p.Kill()
	p.Restart()
	finalCheckRunning(t, target, expect, "after kill -9 and restart", p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}

// finalCheckRunning checks, once a restarted processor is up again, that
// every expected line is still there exactly once.
func finalCheckRunning(t *testing.T, dir string, expect []linecheck.Expect, when string, running ...*Daemon) {
	t.Helper()
	r, err := linecheck.Verify(dir, expect, linecheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("%s: %v\n%s%s", when, r, problems(r), listing(dir))
	}
	if err := exited(running); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// openFilesUnder counts the descriptors d's process holds on files under
// dir, outside the state dir.
func openFilesUnder(t *testing.T, d *Daemon, dir string) int {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", d.pid())
	ents, err := os.ReadDir(fds)
	if err != nil {
		t.Skipf("cannot read %s: %v", fds, err)
	}
	n := 0
	for _, e := range ents {
		p, err := os.Readlink(filepath.Join(fds, e.Name()))
		if err == nil && filepath.Dir(p) == dir {
			n++
		}
	}
	return n
}
