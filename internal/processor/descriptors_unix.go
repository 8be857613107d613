//go:build unix

package processor

import (
	"errors"
	"syscall"
)

// descriptorLimit returns the soft RLIMIT_NOFILE, which the Go runtime
// raises to the hard one at start.
func descriptorLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}

// outOfDescriptors reports an error of a process (EMFILE) or system (ENFILE)
// out of descriptors: Accept is retried, as net/http does, not given up.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
