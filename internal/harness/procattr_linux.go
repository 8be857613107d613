package harness

import "syscall"

// DiesWithParent returns process attributes that kill a child when the
// process that started it dies, so a test binary killed by its timeout
// leaves no daemon behind.
func DiesWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
