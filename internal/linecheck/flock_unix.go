//go:build unix

package linecheck

import (
	"errors"
	"os"
	"syscall"
)

// lockShared takes flock(LOCK_SH) on f, as a writer of contract 2 does.
func lockShared(f *os.File) error { return flock(f, syscall.LOCK_SH) }

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	return errors.Join(err, ferr)
}
