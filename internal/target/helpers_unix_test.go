//go:build unix

package target_test

import (
	"os"
	"sync"
	"syscall"
	"testing"
)

func inodeOf(t testing.TB, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// lowerNofile sets the soft RLIMIT_NOFILE to cur, skipping t if it cannot,
// and returns what restores it, also run at cleanup: a test that fails in
// between must not leave the others short of descriptors.
func lowerNofile(t testing.TB, cur uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	setCur(&low.Cur, cur)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	restore = sync.OnceFunc(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(restore)
	return restore
}

// setCur sets an rlimit field, uint64 on Linux and int64 on the BSDs.
func setCur[T int64 | uint64](p *T, v uint64) { *p = T(v) }
