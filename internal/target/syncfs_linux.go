package target

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncfs makes the whole file system of dir durable with one syncfs(2).
func syncfs(dir *os.File) error { return unix.Syncfs(int(dir.Fd())) }

// syncfsReportsErrors reports whether this kernel's syncfs(2) returns
// writeback errors: before Linux 5.8 it always returned 0, and a commit
// must not take that for durability.
func syncfsReportsErrors() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	major, minor, ok := kernelVersion(unix.ByteSliceToString(u.Release[:]))
	return ok && (major > 5 || major == 5 && minor >= 8)
}
