//go:build linux

package target_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"thunder/internal/target"
)

// loopFS is an ext4 image mounted through a loop device: remount moves it to
// another loop device, as a reboot that numbers block devices differently
// (NVMe's 259:N, device-mapper's dm-N, btrfs' anonymous devices) does.
type loopFS struct {
	t        *testing.T
	img, mnt string
	dev      string
}

func newLoopFS(t *testing.T) *loopFS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root for losetup and mount")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: needs %s: %v", tool, err)
		}
	}
	base := t.TempDir()
	l := &loopFS{t: t, img: filepath.Join(base, "img"), mnt: filepath.Join(base, "mnt")}
	f, err := os.Create(l.img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "mkfs.ext4", "-q", "-F", l.img)
	if err := os.Mkdir(l.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// No loop device (a container without /dev/loop-control): skip.
	out, err := exec.Command("losetup", "-f", "--show", l.img).CombinedOutput()
	if err != nil {
		t.Skipf("SKIP: cannot attach a loop device here: %v: %s", err, out)
	}
	l.dev = strings.TrimSpace(string(out))
	t.Cleanup(l.detach)
	run(t, "mount", l.dev, l.mnt)
	return l
}

func (l *loopFS) detach() {
	if l.dev == "" {
		return
	}
	_ = exec.Command("umount", l.mnt).Run()
	_ = exec.Command("losetup", "-d", l.dev).Run()
	l.dev = ""
}

// reboot remounts the file system on another loop device, the old one kept
// busy so the numbers differ.
func (l *loopFS) reboot() {
	old := l.dev
	run(l.t, "umount", l.mnt)
	// Take a new loop device before letting the old one go.
	l.dev = strings.TrimSpace(run(l.t, "losetup", "-f", "--show", l.img))
	run(l.t, "losetup", "-d", old)
	run(l.t, "mount", l.dev, l.mnt)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

func stDev(t *testing.T, path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}

// A power cut, and the next boot numbers the target's block device
// differently: the same file system, the same inodes, handles and birth
// times, only st_dev changed. Replay found no recorded file (fileID.sameFile
// compares Dev), wrote nothing back, and deleted the segments: the
// journaled, acknowledged bytes were gone. Now the records are renumbered
// (devnum.go) and the segments read through the old number.
func TestAttackJournalReplayAfterDevRenumber(t *testing.T) {
	l := newLoopFS(t)
	target.SetJournal(t, 4, "boot-1")
	dir := filepath.Join(l.mnt, "target")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := journalCrash(t, dir, 8)
	// What the disk kept of the journaled files: nothing (the page cache
	// is gone).
	for name := range want {
		mustTruncate(t, filepath.Join(dir, name), 0)
	}
	before := stDev(t, dir)
	l.reboot()
	if after := stDev(t, dir); after == before {
		t.Fatalf("st_dev did not change (%x)", after)
	}
	target.SetJournal(t, 4, "boot-2")
	d := mustOpen(t, dir)
	mustClose(t, d)
	lost := 0
	for name, p := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != p {
			lost++
			t.Errorf("%s after replay = %d bytes, want the %d acknowledged", name, len(got), len(p))
		}
	}
	if n := segmentsIn(t, dir); lost > 0 && n == 0 {
		t.Errorf("and the journal segments holding them were deleted")
	}
}

// The same without the journal: a tail written past the last commit was not
// cut after the renumbering, so the collectors' resend duplicated it.
func TestAttackCutAfterDevRenumber(t *testing.T) {
	l := newLoopFS(t)
	dir := filepath.Join(l.mnt, "target")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 0), "h/app.log", 0, o)
	kept := lines("kept", 0, 3)
	end := mustAppend(t, d, s, o, 0, kept)
	mustCommit(t, d)
	mustAppend(t, d, s, o, end, lines("tail", 3, 2))
	crash(t, d, dir)
	l.reboot()
	d = mustOpen(t, dir)
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "h/app.log")); got != kept {
		t.Errorf("after restart = %q, want %q: the uncommitted tail stays and its resend lands twice", got, kept)
	}
}
