//go:build unix

package target_test

import (
	"os"
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
