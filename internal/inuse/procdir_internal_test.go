//go:build unix

package inuse

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenByWithoutProc forces on Linux what macOS and FreeBSD always get
// (procDir ""), and what a /proc that cannot be read gives: ErrNoProcAccess,
// never an empty list of holders, so the collector falls back to its quiet
// period instead of deleting a file a writer holds.
func TestOpenByWithoutProc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // a holder the probe cannot see
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "no-proc")} {
		pids, err := scan(dir, path, true, false)
		if !errors.Is(err, ErrNoProcAccess) || pids != nil {
			t.Errorf("scan(%q) = %v, %v, want nil, ErrNoProcAccess", dir, pids, err)
		}
	}
}
