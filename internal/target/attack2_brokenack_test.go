//go:build linux

package target_test

import (
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

const fsAppendFL = 0x20 // FS_APPEND_FL, linux/fs.h

// setAppendOnly sets or clears the append-only attribute (chattr +a) of
// path; such a file can be appended to but not truncated.
func setAppendOnly(t *testing.T, path string, on bool) error {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsAppendFL
	} else {
		flags &^= fsAppendFL
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}

// TestAttack2BrokenDuringItsCommitKeepsAcked: an append during a commit
// fails half-way (the file size limit) and its bytes cannot be cut (the
// file is append-only for a moment), so the file is broken. The commit
// still records the file's length and acknowledges what it synced; the
// rewind that follows cut the file back to the length before that
// commit (committedLocked kept f.committed for a broken file, as it did
// for a file closed dirty, TestAttackBehindReplacedDuringItsCommit):
// acknowledged lines gone.
func TestAttack2BrokenDuringItsCommitKeepsAcked(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chattr +a)")
	}
	defer target.SetSyncfsMin(target.SetSyncfsMin(1)) // the hook below runs in every commit
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if !target.WritesBehind(d) {
		t.Skip("commits use no syncfs here")
	}
	path := filepath.Join(dir, "a.log")
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "a.log", 0, o)
	a := lines(strings.Repeat("a", 40), 0, 20000) // larger than the state store
	end := mustAppend(t, d, s, o, 0, a)
	mustCommit(t, d)
	b := lines("acked", 0, 10)
	end = mustAppend(t, d, s, o, end, b)
	if err := setAppendOnly(t, path, false); err != nil {
		t.Skipf("no file attributes here: %v", err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var appendErr error
	fired := false
	target.SetSyncfs(t, func(fd int) error {
		if !fired {
			fired = true
			if err := setAppendOnly(t, path, true); err != nil {
				t.Fatal(err)
			}
			var old unix.Rlimit
			if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
			lim := old
			lim.Cur = uint64(len(a)+len(b)) + 4096
			if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
				t.Fatal(err)
			}
			c := strings.Repeat("c", 8191) + "\n"
			appendErr = s.Append(o, chunk(end, end+uint64(len(c)), []byte(c)))
			if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
			if err := setAppendOnly(t, path, false); err != nil {
				t.Fatal(err)
			}
		}
		return unix.Syncfs(fd)
	})
	acks := mustCommit(t, d)
	if !fired {
		t.Fatal("the commit used no syncfs")
	}
	t.Logf("append during the commit: %v", appendErr)
	if appendErr == nil {
		t.Fatal("the append during the commit did not fail")
	}
	if ack, ok := ackFor(t, acks, s); !ok || ack.At.Offset != end {
		t.Fatalf("ack %+v (%v), want %d", ack.At, ok, end)
	}
	_, _ = d.Commit() // rewinds the broken file
	if got := readFile(t, path); got != a+b {
		t.Fatalf("a.log holds %d bytes, %d acknowledged (%q at its end)", len(got), len(a)+len(b), got[max(0, len(got)-40):])
	}
	o2 := &owner{"c2"}
	if _, off, _ := mustAttach(t, d, key("c", 1), "a.log", 0, o2); off != end {
		t.Fatalf("re-attached at %d, want the acknowledged %d", off, end)
	}
	mustClose(t, d)
}

// TestAttack2BrokenByAnAppendIsRewound: the first append after a commit
// fails half-way and its bytes cannot be cut. The file is broken, but the
// append did not queue it for a commit (it was clean), so no commit ever
// rewound it: every append of its streams, after re-attaching too,
// failed with a storage error for ever, and the half line stayed in the
// file.
func TestAttack2BrokenByAnAppendIsRewound(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chattr +a)")
	}
	dir := t.TempDir()
	d := mustOpen(t, dir)
	path := filepath.Join(dir, "a.log")
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "a.log", 0, o)
	a := lines(strings.Repeat("a", 40), 0, 20000) // larger than the state store
	end := mustAppend(t, d, s, o, 0, a)
	mustCommit(t, d)
	if err := setAppendOnly(t, path, true); err != nil {
		t.Skipf("no file attributes here: %v", err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(len(a)) + 4096
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	c := strings.Repeat("c", 8191) + "\n"
	err := s.Append(o, chunk(end, end+uint64(len(c)), []byte(c)))
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := setAppendOnly(t, path, false); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatal("the append did not fail")
	}
	_, _ = d.Commit() // rewinds the broken file
	o2 := &owner{"c2"}
	s2, off, _ := mustAttach(t, d, key("c", 1), "a.log", 0, o2)
	if off != end {
		t.Fatalf("re-attached at %d, want the committed %d", off, end)
	}
	if err := s2.Append(o2, chunk(end, end+uint64(len(c)), []byte(c))); err != nil {
		t.Fatalf("the resend after the rewind: %v", err)
	}
	mustCommit(t, d)
	if got := readFile(t, path); got != a+c {
		t.Fatalf("a.log holds %d bytes, want %d", len(got), len(a)+len(c))
	}
	mustClose(t, d)
}
