package processor

import (
	"errors"

	"golang.org/x/sys/windows"
)

// descriptorLimit reports none: Windows has no per-process limit like
// RLIMIT_NOFILE (a process may hold about 16 million handles), so the
// target files' budget is the configured --max-open-files and connections
// are bounded by --max-conns alone.
func descriptorLimit() (uint64, bool) { return 0, false }

// outOfDescriptors reports an accept that failed for want of sockets
// (WSAEMFILE) or handles: it is retried, not given up.
func outOfDescriptors(err error) bool {
	return errors.Is(err, windows.WSAEMFILE) || errors.Is(err, windows.ERROR_TOO_MANY_OPEN_FILES)
}
