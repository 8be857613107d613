//go:build unix

package target

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// outOfFDs reports whether err is the process or system running out of
// descriptors (EMFILE, ENFILE): a shortage to wait out (budget.go).
func outOfFDs(err error) bool { return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) }

// reserve holds a few descriptors (copies of the target dir's) that are
// given up when the process runs out, so that a commit can still open the
// directories it must fsync, and taken again afterwards.
type reserve struct {
	mu  sync.Mutex
	fds []int
}

const reserveFDs = 8

func (r *reserve) take(of int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.fds) < reserveFDs {
		fd, err := unix.FcntlInt(uintptr(of), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return // taken again at the next shortage
		}
		r.fds = append(r.fds, fd)
	}
}

func (r *reserve) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.fds {
		_ = unix.Close(fd)
	}
	r.fds = r.fds[:0]
}
