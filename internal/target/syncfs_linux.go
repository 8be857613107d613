package target

import "golang.org/x/sys/unix"

// syncfs makes the whole file system of the descriptor durable with one
// syncfs(2) (a variable for a test that acts in the middle of one).
var syncfs = unix.Syncfs

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
