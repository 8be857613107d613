//go:build unix

package inuse_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/inuse"
)

// mustStartHolder starts `sleep 30` with path open as descriptor 3 (through
// ExtraFiles) or as its stdout, and kills it in cleanup.
func mustStartHolder(t *testing.T, path string, stdout bool) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	if stdout {
		cmd.Stdout = f
	} else {
		cmd.ExtraFiles = []*os.File{f}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close() // the child has its own descriptor
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // may have been killed by the test
		_ = cmd.Wait()         // the kill is the expected outcome
	})
	return cmd
}

func mustOpenBy(t *testing.T, path string, self bool) []int {
	t.Helper()
	pids, err := inuse.OpenBy(path, self)
	if errors.Is(err, inuse.ErrNoProcAccess) {
		t.Skipf("OpenBy: %v", err)
	}
	if err != nil {
		t.Fatalf("OpenBy(%s, %v) = %v", path, self, err)
	}
	return pids
}

func TestOpenByChild(t *testing.T) {
	for _, stdout := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdout=%v", stdout), func(t *testing.T) {
			path := mustCreate(t)
			cmd := mustStartHolder(t, path, stdout)
			pid := cmd.Process.Pid
			if pids := mustOpenBy(t, path, false); !slices.Contains(pids, pid) {
				t.Fatalf("OpenBy = %v, want it to contain child %d", pids, pid)
			}
			// Found by inode even after a rename, as after a rotation.
			rotated := path + ".1"
			if err := os.Rename(path, rotated); err != nil {
				t.Fatal(err)
			}
			if pids := mustOpenBy(t, rotated, false); !slices.Contains(pids, pid) {
				t.Fatalf("OpenBy(rotated) = %v, want it to contain child %d", pids, pid)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait() // killed
			harness.WaitFor(t, 5*time.Second, func() error {
				if pids := mustOpenBy(t, rotated, false); len(pids) != 0 {
					return fmt.Errorf("OpenBy after kill = %v, want none", pids)
				}
				return nil
			})
		})
	}
}

func TestOpenBySelf(t *testing.T) {
	path := mustCreate(t)
	mustOpen(t, path)
	me := os.Getpid()
	if pids := mustOpenBy(t, path, true); !slices.Contains(pids, me) {
		t.Errorf("OpenBy(self=true) = %v, want it to contain %d", pids, me)
	}
	if pids := mustOpenBy(t, path, false); slices.Contains(pids, me) {
		t.Errorf("OpenBy(self=false) = %v, want it without %d", pids, me)
	}
}

func TestOpenByNobody(t *testing.T) {
	path := mustCreate(t)
	if pids := mustOpenBy(t, path, true); len(pids) != 0 {
		t.Errorf("OpenBy(unopened file) = %v, want none", pids)
	}
}

func TestOpenByMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	if _, err := inuse.OpenBy(path, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenBy(%s) = %v, want %v", path, err, fs.ErrNotExist)
	}
}

// TestWritersOf: a process holding the file open for writing is a writer;
// one reading it (tail -f) is a holder, not a writer.
func TestWritersOf(t *testing.T) {
	path := mustCreate(t)
	writer := mustStartHolder(t, path, false)
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	reader := exec.Command("sleep", "30")
	reader.ExtraFiles = []*os.File{r}
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	_ = r.Close() // the child has its own descriptor
	t.Cleanup(func() {
		_ = reader.Process.Kill()
		_ = reader.Wait() // the kill is the expected outcome
	})
	held := mustOpenBy(t, path, false)
	if !slices.Contains(held, writer.Process.Pid) || !slices.Contains(held, reader.Process.Pid) {
		t.Fatalf("OpenBy = %v, want both %d and %d", held, writer.Process.Pid, reader.Process.Pid)
	}
	pids, err := inuse.WritersOf(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pids, []int{writer.Process.Pid}) {
		t.Errorf("WritersOf = %v, want only the writer %d (reader %d)", pids, writer.Process.Pid, reader.Process.Pid)
	}
}
