package target

import (
	"errors"

	"golang.org/x/sys/windows"
)

// outOfFDs reports whether err is the process running out of handles.
// Windows has no per-process limit like RLIMIT_NOFILE (a process may hold
// about 16 million handles), so this is rare; MaxOpenFiles is the budget
// that counts.
func outOfFDs(err error) bool { return errors.Is(err, windows.ERROR_TOO_MANY_OPEN_FILES) }

// reserve holds nothing here: there is no descriptor limit to run into
// below MaxOpenFiles, so a commit never lacks a handle for lack of one.
type reserve struct{}

func (*reserve) take(int) {}
func (*reserve) release() {}
