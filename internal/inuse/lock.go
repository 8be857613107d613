//go:build unix

package inuse

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TryLockExclusive tries to take flock(LOCK_EX|LOCK_NB) on f. It returns
// ok=false, with a nil error, when another open file description holds a
// lock on the file (EWOULDBLOCK); ok=true when f now holds the exclusive
// lock. The lock is held until f is closed (or every descriptor sharing its
// open file description is), so a writer following the flock(LOCK_SH)
// contract cannot start appending meanwhile. Locks are advisory: a writer
// that does not lock is not excluded (see [OpenBy]).
func TryLockExclusive(f *os.File) (ok bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("inuse: flock %s: %w", f.Name(), err)
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if ferr != unix.EINTR {
				return
			}
		}
	})
	if err == nil {
		err = ferr
	}
	switch err {
	case nil:
		return true, nil
	case unix.EWOULDBLOCK:
		return false, nil
	}
	return false, fmt.Errorf("inuse: flock %s: %w", f.Name(), err)
}

// Unlock releases a lock taken with TryLockExclusive.
func Unlock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("inuse: unlock %s: %w", f.Name(), err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), unix.LOCK_UN) }); err != nil {
		return fmt.Errorf("inuse: unlock %s: %w", f.Name(), err)
	}
	if ferr != nil {
		return fmt.Errorf("inuse: unlock %s: %w", f.Name(), ferr)
	}
	return nil
}
