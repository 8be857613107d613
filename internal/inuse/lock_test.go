//go:build unix

package inuse_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/inuse"
)

func mustCreate(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte("line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() }) // read-only; may be closed already
	return f
}

func TestTryLockExclusive(t *testing.T) {
	tests := []struct {
		name   string
		holder int // lock taken by another open file description first; 0: none
		want   bool
	}{
		{"unlocked", 0, true},
		{"shared lock held", unix.LOCK_SH, false},
		{"exclusive lock held", unix.LOCK_EX, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := mustCreate(t)
			if tt.holder != 0 {
				writer := mustOpen(t, path)
				if err := unix.Flock(int(writer.Fd()), tt.holder); err != nil {
					t.Fatal(err)
				}
			}
			f := mustOpen(t, path)
			ok, err := inuse.TryLockExclusive(f)
			if ok != tt.want || err != nil {
				t.Errorf("TryLockExclusive = %v, %v, want %v, nil", ok, err, tt.want)
			}
		})
	}
}

func TestTryLockExclusiveAfterWriterCloses(t *testing.T) {
	path := mustCreate(t)
	writer := mustOpen(t, path)
	if err := unix.Flock(int(writer.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, path)
	if ok, err := inuse.TryLockExclusive(f); ok || err != nil {
		t.Fatalf("TryLockExclusive while shared lock held = %v, %v, want false, nil", ok, err)
	}
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := inuse.TryLockExclusive(f); !ok || err != nil {
		t.Fatalf("TryLockExclusive after writer closed = %v, %v, want true, nil", ok, err)
	}
	// The lock now excludes a writer following the LOCK_SH contract.
	other := mustOpen(t, path)
	if err := unix.Flock(int(other.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("writer flock(LOCK_SH|LOCK_NB) = %v, want %v", err, unix.EWOULDBLOCK)
	}
}

func TestTryLockExclusiveClosedFile(t *testing.T) {
	f, err := os.Open(mustCreate(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close() // read-only
	if ok, err := inuse.TryLockExclusive(f); ok || err == nil {
		t.Errorf("TryLockExclusive(closed) = %v, %v, want false, error", ok, err)
	}
}
