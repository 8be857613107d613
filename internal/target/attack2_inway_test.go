//go:build linux

package target_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAttack2InTheWayWhileClosedDirty: the name of a file closed with
// bytes uncommitted is taken, the file renamed beside it, by a directory
// or a FIFO. The commit rewinds the streams and cuts the renamed file
// back; once the name is free again the resend lands there, once.
func TestAttack2InTheWayWhileClosedDirty(t *testing.T) {
	for _, tc := range []struct {
		name string
		put  func(string) error
	}{
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newBehindFixture(t)
			const i = 6
			committed := closeDirty(t, fx, i, 1)
			path := filepath.Join(fx.dir, behindName(i))
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			if err := tc.put(path); err != nil {
				t.Fatal(err)
			}
			acks, _ := fx.d.Commit()
			if a, ok := ackFor(t, acks, fx.streams[i]); ok {
				t.Fatalf("acked at %d a file whose name was taken", a.At.Offset)
			}
			if got := readFile(t, path+".1"); got != committed {
				t.Fatalf("the renamed file = %q, want the committed %q", got, committed)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			resent := fmt.Sprintf("round 1 of file %02d\n", i)
			resend(t, fx, i, committed, resent)
			if all := readFile(t, path+".1") + readFile(t, path); strings.Count(all, resent) != 1 {
				t.Fatalf("the line is not in the target once: %q", all)
			}
			mustClose(t, fx.d)
		})
	}
}
