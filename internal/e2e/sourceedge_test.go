//go:build linux

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/linecheck"
)

const (
	// edgeRescan is the collector's rescan interval in the source edge
	// tests: a removed source dir is found again by a rescan.
	edgeRescan = "--rescan-interval=1s"
	// idleWindow is how long an idle collector's CPU time is measured.
	idleWindow = 3 * time.Second
	// maxIdleCPU is the CPU time an idle collector may use in idleWindow.
	maxIdleCPU = 500 * time.Millisecond
	// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on
	// every Linux architecture Go supports).
	clockTicks = 100
)

// cpuTime returns the user+system CPU time of process pid so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("cpu time: %v", err)
	}
	// The command name (field 2) may hold spaces: fields after its ")".
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("cpu time: cannot parse %q", s)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// edgeWriter is a quick writer of a few hundred lines.
func edgeWriter(id, dir, name string) writerSpec {
	return writerSpec{ID: id, Dir: dir, Name: name, Contract: linecheck.OpenWriteClose, Lines: 500, Rate: 0}
}

// TestSourceEdgeCases puts what is not a regular file into the source dir
// (a FIFO, a device node, symlinks to devices), replaces a streamed file by
// a directory, removes and recreates a subdirectory and then the source
// dir itself. The collector must skip what it cannot stream without a busy
// loop, never block or crash, keep streaming the other files throughout,
// and stream files written into the recreated directories.
func TestSourceEdgeCases(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()

	// Non-regular files, in place before the collector starts and after.
	if err := syscall.Mkfifo(filepath.Join(src, "pipe.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(src, "zero-link.log")); err != nil {
		t.Fatal(err)
	}
	p := startProcessor(t, target)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, edgeRescan)
	const keepLines = 20_000 // 10 s: streaming through every change below
	w := startWriters(t,
		writerSpec{ID: "keep", Dir: src, Name: "keep.log", Contract: linecheck.LockedAppend, Lines: keepLines, Rate: writerRate},
		writerSpec{ID: "keep-sub", Dir: src, Name: "stay/keep.log", Contract: linecheck.OpenWriteClose, Lines: keepLines, Rate: writerRate},
		edgeWriter("swap", src, "swap.log"),
		edgeWriter("gone-x", src, "gone/x.log"),
	)
	waitLines(t, 30*time.Second, target, 100, p, c)

	// A character device /dev/zero would be an endless source of zeros if
	// it were read; created after start, so found by an inotify event.
	if err := syscall.Mknod(filepath.Join(src, "zero.log"), syscall.S_IFCHR|0o666, int(mkdev(1, 5))); err != nil {
		t.Logf("no device node (mknod: %v); the symlink to /dev/zero stands in", err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "late-pipe.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(src, "null-link.log")); err != nil {
		t.Fatal(err)
	}

	// A streamed file replaced by a directory of the same name.
	waitFile(t, 30*time.Second, filepath.Join(target, "swap.log"), 500*linecheck.DefaultLineBytes, p, c)
	if err := os.Remove(filepath.Join(src, "swap.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "swap.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A file in that directory cannot reach the target, where swap.log is a
	// file: it is refused (its lines must appear nowhere: they are not
	// expected, so Verify would count them), and the rest goes on.
	inner := startWriters(t, edgeWriter("swap-inner", src, "swap.log/inner.log"))
	inner.Wait()
	waitLogRE(t, 30*time.Second, p, regexp.MustCompile(`collector refused.*code=name.*swap.log`), p, c)

	// A subdirectory removed and recreated with a new file in it.
	waitFile(t, 30*time.Second, filepath.Join(target, "gone", "x.log"), 500*linecheck.DefaultLineBytes, p, c)
	if err := os.RemoveAll(filepath.Join(src, "gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "gone"), 0o755); err != nil {
		t.Fatal(err)
	}
	w.Add(edgeWriter("gone-y", src, "gone/y.log"))

	expect := w.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)

	// Idle, with the FIFOs, device and symlinks still there and rescans
	// every second: the collector must not spin on them.
	pid := c.Pid()
	before := cpuTime(t, pid)
	pause(t, idleWindow) // a measurement window, not a wait for a condition
	used := cpuTime(t, pid) - before
	t.Logf("collector CPU time over %v idle: %v (%v before)", idleWindow, used, before)
	if used > maxIdleCPU {
		t.Errorf("collector used %v of CPU in %v idle, want < %v: busy loop?", used, idleWindow, maxIdleCPU)
	}

	// The source dir itself removed and recreated: files written into the
	// new one must arrive.
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	waitLogRE(t, 30*time.Second, c, regexp.MustCompile(`source dir disappeared|source dir scan incomplete`), p, c)
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	w.Add(edgeWriter("reborn", src, "reborn.log"), edgeWriter("reborn-sub", src, "sub/reborn.log"))
	expect = w.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	waitLogRE(t, 30*time.Second, c, regexp.MustCompile(`source dir found again`), p, c)

	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	for _, name := range []string{"pipe.log", "late-pipe.log", "zero.log", "zero-link.log", "null-link.log"} {
		if _, err := os.Lstat(filepath.Join(target, name)); err == nil {
			t.Errorf("target holds %s, which is not a regular file in the source dir", name)
		}
	}
	if re := regexp.MustCompile(`(?i)not a regular file|skip.*(fifo|device|pipe)`); !re.MatchString(c.LogText()) {
		t.Log("note: the collector skipped the non-regular files without logging it")
	}
}

// mkdev returns the device number of major:minor, as Linux encodes it.
func mkdev(major, minor uint32) uint64 {
	return uint64(major&0xfff)<<8 | uint64(minor&0xff) | uint64(minor&^0xff)<<12 | uint64(major&^0xfff)<<32
}
