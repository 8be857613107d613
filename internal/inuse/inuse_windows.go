package inuse

import (
	"errors"
	"fmt"
	"os"
)

// ErrNoLocks: Windows has no advisory locks; its byte-range locks are
// mandatory, so a writer holding one would fail the collector's reads.
// The collector does not run there (see README, "Platforms").
var ErrNoLocks = fmt.Errorf("inuse: %w: no advisory file locks on windows", errors.ErrUnsupported)

// TryLockExclusive returns ErrNoLocks.
func TryLockExclusive(f *os.File) (bool, error) { return false, ErrNoLocks }

// Unlock returns ErrNoLocks.
func Unlock(f *os.File) error { return ErrNoLocks }

// ErrNoProcAccess: there is no /proc to read on Windows.
var ErrNoProcAccess = errors.New("inuse: cannot read other processes' open files in /proc")

// OpenBy returns ErrNoProcAccess.
func OpenBy(path string, self bool) ([]int, error) { return nil, ErrNoProcAccess }

// WritersOf returns ErrNoProcAccess.
func WritersOf(path string, self bool) ([]int, error) { return nil, ErrNoProcAccess }
