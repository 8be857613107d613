//go:build linux

package target_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// behindFixture is a Dir with a budget of 16 descriptors and 40 files, each
// written and committed once (round 0), so most are closed idle.
type behindFixture struct {
	dir     string
	d       *target.Dir
	o       *owner
	streams []*target.Stream
	ends    []uint64
	want    []string // what each file must hold once all is committed
}

const behindBudget, behindFiles = 16, 40

func behindName(i int) string { return fmt.Sprintf("h%d/f%02d.log", i%3, i) }

func newBehindFixture(t *testing.T) *behindFixture {
	t.Helper()
	dir := t.TempDir()
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger(), MaxOpenFiles: behindBudget})
	if err != nil {
		t.Fatal(err)
	}
	if !target.WritesBehind(d) {
		t.Skip("no write-behind: this kernel's syncfs(2) does not report errors (before Linux 5.8), or the tree is the portable one (thunder_portable), which has no syncfs")
	}
	fx := &behindFixture{dir: dir, d: d, o: &owner{"c"}, ends: make([]uint64, behindFiles), want: make([]string, behindFiles)}
	for i := range behindFiles {
		s, _, _ := mustAttach(t, d, key("c", i), behindName(i), 0, fx.o)
		fx.streams = append(fx.streams, s)
	}
	for i := range behindFiles {
		fx.add(t, i, 0)
		if i%8 == 7 {
			mustCommit(t, d) // the open files become idle: room for the next 8
		}
	}
	mustCommit(t, d)
	return fx
}

// add appends round r's line to file i.
func (fx *behindFixture) add(t *testing.T, i, r int) {
	t.Helper()
	p := fmt.Sprintf("round %d of file %02d\n", r, i)
	fx.ends[i] = mustAppend(t, fx.d, fx.streams[i], fx.o, fx.ends[i], p)
	fx.want[i] += p
}

func (fx *behindFixture) check(t *testing.T, what string, want func(i int) string) {
	t.Helper()
	for i := range behindFiles {
		if got := readFile(t, filepath.Join(fx.dir, behindName(i))); got != want(i) {
			t.Fatalf("%s: %s = %q, want %q", what, behindName(i), got, want(i))
		}
	}
}

// TestWriteBehind: with more files than descriptors, an append to a file
// without one returns at once, its bytes kept in memory; the next commit
// writes each file once, within the budget, and acknowledges all. Before,
// such an append waited for a commit to make an open file idle, and with
// every open file written each waited through all its tries (seconds) and
// then opened past the budget.
func TestWriteBehind(t *testing.T) {
	fx := newBehindFixture(t)
	round0 := append([]string(nil), fx.want...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range behindFiles {
			fx.add(t, i, 1)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("appends to files without a descriptor waited for a commit that nobody ran")
	}
	if target.BehindBytes(fx.d) == 0 {
		t.Fatal("nothing was buffered")
	}
	if n := fdsUnder(fx.dir); n > behindBudget {
		t.Errorf("%d target descriptors open, budget %d", n, behindBudget)
	}
	// Buffered bytes are not in the files yet, or only for open ones.
	var behind int
	for i := range behindFiles {
		if readFile(t, filepath.Join(fx.dir, behindName(i))) == round0[i] {
			behind++
		}
	}
	if behind < behindFiles-behindBudget {
		t.Errorf("%d files lack round 1 before the commit, want at least %d", behind, behindFiles-behindBudget)
	}
	acks := mustCommit(t, fx.d)
	if target.BehindBytes(fx.d) != 0 {
		t.Errorf("%d bytes still buffered after the commit", target.BehindBytes(fx.d))
	}
	for i, s := range fx.streams {
		if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != fx.ends[i] {
			t.Fatalf("%s: ack %+v (found %v), want offset %d", behindName(i), a.At, ok, fx.ends[i])
		}
	}
	if n := fdsUnder(fx.dir); n > behindBudget {
		t.Errorf("%d target descriptors open after the commit, budget %d", n, behindBudget)
	}
	fx.check(t, "after the commit", func(i int) string { return fx.want[i] })
	crash(t, fx.d, fx.dir)
	d := mustOpen(t, fx.dir)
	fx.check(t, "after a crash past the commit", func(i int) string { return fx.want[i] })
	mustClose(t, d)
}

// TestWriteBehindRounds: buffers grow past 4 and 8 KiB within a commit,
// over six commits; every file holds exactly its own bytes after each, and
// the buffers hold about what they were given (maxBehind counts bytes).
func TestWriteBehindRounds(t *testing.T) {
	fx := newBehindFixture(t)
	for r := 1; r <= 6; r++ {
		for i := range behindFiles {
			// 0 to 4 appends of up to 3 KiB: some files stay empty, some
			// outgrow 4 and 8 KiB.
			for k := range (i + r) % 5 {
				line := fmt.Sprintf("round %d of file %02d, part %d %s\n", r, i, k, strings.Repeat(string(rune('a'+(i+r+k)%26)), (i*37+r*101+k*59)%3000))
				fx.ends[i] = mustAppend(t, fx.d, fx.streams[i], fx.o, fx.ends[i], line)
				fx.want[i] += line
			}
		}
		if c, n := target.BehindCap(fx.d), target.BehindBytes(fx.d); c > 2*n+4096 {
			t.Fatalf("round %d: buffers of %d bytes hold %d", r, c, n)
		}
		mustCommit(t, fx.d)
		if target.BehindBytes(fx.d) != 0 {
			t.Fatalf("round %d: %d bytes still buffered after the commit", r, target.BehindBytes(fx.d))
		}
		fx.check(t, fmt.Sprintf("after round %d", r), func(i int) string { return fx.want[i] })
	}
}

// TestWriteBehindCapacity: the write-behind buffers hold about what they
// were given, which is what maxBehind counts. A pooled 4 KiB per buffered
// file (tried on 7 Dec) held 4 KiB for each short line: 30,000 files of
// one 100-byte frame, ~3 MiB counted and ~120 MiB held.
func TestWriteBehindCapacity(t *testing.T) {
	fx := newBehindFixture(t)
	for i := range behindFiles {
		p := fmt.Sprintf("short line %02d\n", i)
		fx.ends[i] = mustAppend(t, fx.d, fx.streams[i], fx.o, fx.ends[i], p)
		fx.want[i] += p
	}
	n, c := target.BehindBytes(fx.d), target.BehindCap(fx.d)
	t.Logf("buffered %d bytes in buffers of %d bytes capacity", n, c)
	if n == 0 {
		t.Fatal("nothing was buffered")
	}
	if c > 2*n+1024 {
		t.Errorf("write-behind buffers hold %d bytes for %d buffered (%.0fx): maxBehind bounds bytes, not memory", c, n, float64(c)/float64(n))
	}
	mustCommit(t, fx.d)
	fx.check(t, "after commit", func(i int) string { return fx.want[i] })
}

// TestWriteBehindCrash: bytes buffered and not committed are lost in a
// crash like any uncommitted bytes: never acknowledged, and no file holds
// a part of them after recovery, so the collectors' resend is exact.
func TestWriteBehindCrash(t *testing.T) {
	fx := newBehindFixture(t)
	round0 := append([]string(nil), fx.want...)
	for i := range behindFiles {
		fx.add(t, i, 1)
	}
	crash(t, fx.d, fx.dir) // Close commits (and writes them), the state is put back
	d := mustOpen(t, fx.dir)
	fx.check(t, "after a crash before the commit", func(i int) string { return round0[i] })
	o := &owner{"c"}
	for i := range behindFiles {
		if _, off, _ := mustAttach(t, d, key("c", i), behindName(i), 0, o); off != uint64(len(round0[i])) {
			t.Fatalf("%s resumes at %d, want %d", behindName(i), off, len(round0[i]))
		}
	}
	mustClose(t, d)
}

// TestWriteBehindReplaced: a closed file replaced by an operator (renamed
// away, a new file at its name) gets none of the bytes buffered for it,
// and neither does the new file: the stream is rewound and its collector
// resends them, to the new file.
func TestWriteBehindReplaced(t *testing.T) {
	fx := newBehindFixture(t)
	victim := fx.closedFile(t)
	path := filepath.Join(fx.dir, behindName(victim))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("someone else's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := fx.want[victim]
	committed := fx.ends[victim]
	fx.bufferFor(t, victim)
	acks := mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, fx.streams[victim]); ok {
		t.Fatalf("the replaced file's stream was acknowledged at %d", a.At.Offset)
	}
	if got := readFile(t, path); got != "someone else's\n" {
		t.Fatalf("the new file at the name = %q", got)
	}
	if got := readFile(t, path+".1"); got != old {
		t.Fatalf("the renamed file = %q, want %q", got, old)
	}
	resent := fx.resendAfterRewind(t, victim, committed)
	if got := readFile(t, path); got != "someone else's\n"+resent {
		t.Fatalf("the new file after the resend = %q", got)
	}
	for i := range behindFiles {
		if i != victim {
			if got := readFile(t, filepath.Join(fx.dir, behindName(i))); got != fx.want[i] {
				t.Fatalf("%s = %q, want %q", behindName(i), got, fx.want[i])
			}
		}
	}
	mustClose(t, fx.d)
}

// TestWriteBehindSyncfsFails: when the syncfs that would make the written
// buffers durable fails, each file is opened again and fsynced on its own;
// only then are its streams acknowledged.
func TestWriteBehindSyncfsFails(t *testing.T) {
	fx := newBehindFixture(t)
	failed := 0
	target.SetSyncfs(t, func(int) error { failed++; return unix.EIO })
	for i := range behindFiles {
		fx.add(t, i, 1)
	}
	acks := mustCommit(t, fx.d)
	if failed == 0 {
		t.Fatal("the commit did not use syncfs")
	}
	for i, s := range fx.streams {
		if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != fx.ends[i] {
			t.Fatalf("%s: ack %+v (found %v), want offset %d", behindName(i), a.At, ok, fx.ends[i])
		}
	}
	fx.check(t, "after a commit whose syncfs failed", func(i int) string { return fx.want[i] })
	mustClose(t, fx.d)
}

// openByUs reports whether this process holds path open.
func openByUs(path string) bool {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.TrimSuffix(p, " (deleted)") == path {
			return true
		}
	}
	return false
}

// TestWriteBehindNameDeleted: a file deleted while closed with bytes
// buffered for it is not made again by the commit that would have written
// them (an operator's rm stays done); its stream rewinds, and only the
// resend makes the name again.
func TestWriteBehindNameDeleted(t *testing.T) {
	fx := newBehindFixture(t)
	victim := fx.closedFile(t)
	path := filepath.Join(fx.dir, behindName(victim))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	committed := fx.ends[victim]
	fx.bufferFor(t, victim)
	acks := mustCommit(t, fx.d)
	if a, ok := ackFor(t, acks, fx.streams[victim]); ok {
		t.Fatalf("the deleted file's stream was acknowledged at %d", a.At.Offset)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the commit made the deleted name again: %v", err)
	}
	resent := fx.resendAfterRewind(t, victim, committed)
	if got := readFile(t, path); got != resent {
		t.Fatalf("the name after the resend = %q, want %q", got, resent)
	}
}

// closedFile returns a file of fx that has no descriptor now.
func (fx *behindFixture) closedFile(t *testing.T) int {
	t.Helper()
	for i := range behindFiles {
		if !openByUs(filepath.Join(fx.dir, behindName(i))) {
			return i
		}
	}
	t.Fatal("every file is open: nothing to buffer")
	return -1
}

// bufferFor appends a round to every file, victim last: the others' appends
// take what descriptors are free, so victim's bytes are buffered.
func (fx *behindFixture) bufferFor(t *testing.T, victim int) {
	t.Helper()
	for i := range behindFiles {
		if i != victim {
			fx.add(t, i, 1)
		}
	}
	fx.add(t, victim, 1)
	if target.BehindBytes(fx.d) == 0 || openByUs(filepath.Join(fx.dir, behindName(victim))) {
		t.Fatal("the victim's bytes were not buffered")
	}
}

// resendAfterRewind checks that victim's stream was rewound (ErrNotOwner),
// re-attaches it at committed as its collector would, resends its last
// round, commits, and returns what it resent.
func (fx *behindFixture) resendAfterRewind(t *testing.T, victim int, committed uint64) string {
	t.Helper()
	p := []byte("round 2\n")
	if err := fx.streams[victim].Append(fx.o, chunk(fx.ends[victim], fx.ends[victim]+uint64(len(p)), p)); !errors.Is(err, target.ErrNotOwner) {
		t.Fatalf("append after the rewind: %v, want ErrNotOwner", err)
	}
	o := &owner{"c2"}
	s, off, _ := mustAttach(t, fx.d, key("c", victim), behindName(victim), 0, o)
	if off != committed {
		t.Fatalf("re-attached at %d, want the committed %d", off, committed)
	}
	resent := fmt.Sprintf("round 1 of file %02d\n", victim)
	mustAppend(t, fx.d, s, o, off, resent)
	mustCommit(t, fx.d)
	return resent
}
