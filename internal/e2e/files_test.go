//go:build unix

package e2e_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// quickArgs are collector flags for the tests of rotation and of files
// that change under the collector: an unterminated last line is flushed
// after half a second, and the safety-net rescan runs every second.
var quickArgs = []string{"--flush-idle=500ms", "--rescan-interval=1s"}

// withQuick returns quickArgs followed by extra; later flags win.
func withQuick(extra ...string) []string {
	return append(slices.Clone(quickArgs), extra...)
}

// addWriters starts linecheck writers configured beyond what a writerSpec
// holds (ReopenAfter, LineBytes). Each writer's target name is its path
// relative to src.
func (w *writers) addWriters(src string, lws ...linecheck.Writer) {
	w.t.Helper()
	for _, lw := range lws {
		rel, err := filepath.Rel(src, lw.Path)
		if err != nil {
			w.t.Fatal(err)
		}
		name := filepath.ToSlash(rel)
		w.wg.Go(func() {
			n, err := lw.Run(w.ctx)
			w.mu.Lock()
			defer w.mu.Unlock()
			w.expect = append(w.expect, linecheck.Expect{Writer: lw.ID, Name: name, Lines: n})
			if err != nil {
				w.errs = append(w.errs, fmt.Errorf("writer %s: %w", lw.ID, err))
			} else if n != lw.Lines {
				w.errs = append(w.errs, fmt.Errorf("writer %s: wrote %d of %d lines", lw.ID, n, lw.Lines))
			}
		})
	}
}

// logMatches returns the lines of every stderr file of d whose slog
// message is msg (text format: msg="two words" or msg=word).
func logMatches(d *Daemon, msg string) []string {
	keys := []string{"msg=" + strconv.Quote(msg), "msg=" + msg}
	var out []string
	for _, p := range d.Logs() {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a log file that cannot be read matches nothing
		}
		for line := range strings.Lines(string(b)) {
			line = strings.TrimSuffix(line, "\n")
			for _, k := range keys {
				if i := strings.Index(line, " "+k); i >= 0 {
					if rest := line[i+1+len(k):]; rest == "" || rest[0] == ' ' {
						out = append(out, line)
						break
					}
				}
			}
		}
	}
	return out
}

// logCount counts d's log lines whose message is msg.
func logCount(d *Daemon, msg string) int { return len(logMatches(d, msg)) }

// waitLog waits until d has logged msg at least n times.
func waitLog(t *testing.T, timeout time.Duration, d *Daemon, msg string, n int, running ...*Daemon) {
	t.Helper()
	harness.WaitFor(t, timeout, func() error {
		if got := logCount(d, msg); got < n {
			return fmt.Errorf("%s logged %q %d times, want %d", d.Name, msg, got, n)
		}
		return nil
	}, running...)
}

// sourceFiles lists the non-directory entries under dir (symlinks
// included, not followed) as sorted slash-separated relative paths.
func sourceFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	slices.Sort(out)
	return out
}

// targetFiles lists the files under a target dir, without the
// processor's state dir.
func targetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, rel := range sourceFiles(t, dir) {
		if !strings.HasPrefix(rel, linecheck.StateDir+"/") {
			out = append(out, rel)
		}
	}
	return out
}

// rotatedFiles lists the files under dir that the collector rotated.
func rotatedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, rel := range sourceFiles(t, dir) {
		if strings.HasSuffix(rel, ".rotated") {
			out = append(out, rel)
		}
	}
	return out
}

// seqLines returns lines from to from+n-1 of writer id, linecheck's
// default length each.
func seqLines(t *testing.T, id string, from, n uint64) []byte {
	t.Helper()
	b := make([]byte, 0, n*linecheck.DefaultLineBytes)
	for seq := from; seq < from+n; seq++ {
		var err error
		if b, err = linecheck.AppendLine(b, id, seq, linecheck.DefaultLineBytes); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// appendFile appends b to path with one open(O_APPEND)/write/close (the
// first write contract), creating the file and its parents if needed.
func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the write error is the one to report
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// appendLines appends lines from to from+n-1 of writer id to path.
func appendLines(t *testing.T, path, id string, from, n uint64) {
	t.Helper()
	appendFile(t, path, seqLines(t, id, from, n))
}

// waitTargetEqual waits until the file at path holds exactly want, failing
// at once if it holds anything that is not a prefix of want.
func waitTargetEqual(t *testing.T, timeout time.Duration, path string, want []byte, running ...*Daemon) {
	t.Helper()
	harness.WaitFor(t, timeout, func() error {
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(want, got) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: %d bytes differ from the expected %d at byte %d: got %q, want %q",
				path, len(got), len(want), i, excerpt(got, i), excerpt(want, i))
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s: %d bytes, want %d", path, len(got), len(want))
		}
		return nil
	}, running...)
}

// excerpt returns up to 40 bytes of b around i, for messages.
func excerpt(b []byte, i int) []byte {
	return b[max(0, i-20):min(len(b), i+20)]
}

// verifyOnly verifies the files names (missing ones are skipped) (slash-separated, relative to dir)
// as if they were alone in dir: linked into a scratch dir first.
func verifyOnly(t *testing.T, dir string, names []string, expect []linecheck.Expect) linecheck.Report {
	t.Helper()
	scratch := t.TempDir()
	for _, name := range names {
		from := filepath.Join(dir, filepath.FromSlash(name))
		to := filepath.Join(scratch, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(from, to); err != nil {
			b, rerr := os.ReadFile(from)
			if os.IsNotExist(rerr) {
				continue // not there yet: its lines count as lost
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			if err := os.WriteFile(to, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := linecheck.Verify(scratch, expect, linecheck.Options{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

// inode returns the inode number of path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// procUsage returns the number of open descriptors and the resident set
// size (VmRSS, in KiB) of process pid.
func procUsage(t *testing.T, pid int) (fds int, rssKiB int64) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return len(ents), rssKiB
}

// countRotated counts the rotated files under dir, ignoring errors: for
// sampling from a goroutine that must not fail the test.
func countRotated(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".rotated") {
			n++
		}
		return nil // a sample: skip what vanished
	})
	return n
}

// heldDeleted returns the deleted files under dir that process pid holds
// open, as /proc/PID/fd shows them.
func heldDeleted(pid int, dir string) []string {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(l, dir+"/") && strings.HasSuffix(l, " (deleted)") {
			out = append(out, l)
		}
	}
	return out
}

// createWithInode tries to create path as a new, empty file with inode
// number ino, just freed, so that a test can be sure an inode is reused:
// it creates files in spare (a dir on the same file system, outside the
// source dir) until the file system hands out ino, then renames that one
// to path. It reports whether it got ino; if not, path is a new file with
// another inode.
func createWithInode(t *testing.T, path string, ino uint64, spare string) bool {
	t.Helper()
	const tries = 2000
	var made []string
	defer func() {
		for _, p := range made {
			_ = os.Remove(p) // spares; their dir is removed with the test anyway
		}
	}()
	for i := range tries {
		p := filepath.Join(spare, fmt.Sprintf("spare-%d", i))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		_ = f.Close() // empty and unwritten
		if err != nil {
			t.Fatal(err)
		}
		if fi.Sys().(*syscall.Stat_t).Ino == ino {
			if err := os.Rename(p, path); err != nil {
				t.Fatal(err)
			}
			return true
		}
		made = append(made, p)
	}
	appendFile(t, path, nil)
	return false
}
