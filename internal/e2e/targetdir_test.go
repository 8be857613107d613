//go:build unix

package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
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
	harness.WaitFor(t, 10*time.Second, func() error {
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
	if err := harness.Exited(running...); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// openFilesUnder counts the descriptors d's process holds on files under
// dir, outside the state dir.
func openFilesUnder(t *testing.T, d *Daemon, dir string) int {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", d.Pid())
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

// TestLinksInTargetDir: links planted in the target dir (a symlink to a
// directory inside it, links into the state dir; a hard link to a target
// file is TestOneFileTwoNames in internal/target) never make one file be written under two names or data reach the
// state, and restarts (SIGTERM, kill -9) cut no acknowledged byte and leave
// the state intact. The names the links make are refused; the rest streams.
func TestLinksInTargetDir(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	good := writerSpec{ID: "good", Dir: src, Name: "sub/a.log", Contract: linecheck.LockedAppend, Lines: 3000, Rate: writerRate}
	w := startWriters(t, good)
	waitFile(t, 30*time.Second, filepath.Join(target, "sub", "a.log"), 10*linecheck.DefaultLineBytes, p, c)

	state := filepath.Join(target, ".thunder")
	plant := []struct{ name, to string }{
		{"alias", "sub"},                       // symlink to a directory inside
		{"x", ".thunder"},                      // symlink to the state dir
		{"db.log", ".thunder/state.db"},        // symlink to the state store
		{"b.log", "sub/a.log"},                 // hard link to a target file
		{"statelink.log", ".thunder/state.db"}, // hard link to the state store
	}
	for i, l := range plant {
		var err error
		if i < 3 { // symlinks, then hard links
			err = os.Symlink(l.to, filepath.Join(target, l.name))
		} else {
			err = os.Link(filepath.Join(target, l.to), filepath.Join(target, l.name))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var evil []writerSpec
	for i, name := range []string{"alias/a.log", "x/state.db", "x/new.log", "db.log", "statelink.log"} {
		evil = append(evil, writerSpec{ID: fmt.Sprintf("evil%d", i), Dir: src, Name: name, Contract: linecheck.OpenWriteClose, Lines: 200, Rate: writerRate})
	}
	startWriters(t, evil...).Wait()
	expect := w.Wait()
	// The links make the target dir unfit for the verifier (db.log shows
	// the state store): check a copy of the good file.
	only := func() string {
		dir := t.TempDir()
		b, err := os.ReadFile(filepath.Join(target, "sub", "a.log"))
		if err == nil {
			err = os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "sub", "a.log"), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	delivered := func() {
		t.Helper()
		harness.WaitFor(t, deliverTimeout, func() error {
			r, err := linecheck.Verify(only(), expect, linecheck.Options{})
			if err != nil || !r.OK() {
				return fmt.Errorf("sub/a.log: %v %v", r, err)
			}
			return nil
		}, p, c)
	}
	delivered()
	for range 2 {
		p.Kill()
		p.Restart()
		delivered()
		p.Stop()
		p.Restart()
		delivered()
	}
	c.Stop()
	p.Stop()
	for _, l := range plant {
		if err := os.Remove(filepath.Join(target, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	finalCheck(t, target, expect, linecheck.Options{})
	ents, err := os.ReadDir(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(state, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("evil")) {
			t.Errorf("state dir file %s holds lines written through a link", e.Name())
		}
	}
}
